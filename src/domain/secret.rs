//! The secret type: text that must never reach a log, a record or an event (a private key).

use std::fmt;

/// Text that must never be logged or stored in records or events (a private key).
/// `Debug` and `Display` print a placeholder; there is no `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps secret text.
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// The secret itself, for the one place that must deliver it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}
