//! The secret type: text that must never reach a log, a record or an event (a private key).

use std::fmt;

/// Text that must never be logged or stored in records or events (a private key).
/// `Debug` and `Display` print a placeholder; there is no `Serialize`. Not `Clone`, so that
/// every copy is deliberate ([`Secret::duplicate`]); its bytes are zeroed when it is dropped.
#[derive(PartialEq, Eq)]
pub struct Secret(String);

impl Drop for Secret {
    fn drop(&mut self) {
        self.wipe();
    }
}

impl Secret {
    /// Wraps secret text.
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// A second copy, for the places that must keep one (a store's own copy); zeroed on drop
    /// as the first. A secret shared by several owners (the bearer token) is an `Arc<Secret>`.
    pub fn duplicate(&self) -> Self {
        Self(self.0.clone())
    }

    /// Overwrites the text's bytes (its spare capacity included) with zeros and empties it.
    fn wipe(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles only while `Secret` is not `Clone`: with `Clone`, both impls apply and the
    /// type parameter is ambiguous (the `assert_not_impl_any!` construction).
    trait AmbiguousIfClone<A> {
        fn check() {}
    }
    impl<T> AmbiguousIfClone<()> for T {}
    impl<T: Clone> AmbiguousIfClone<u8> for T {}

    #[test]
    fn a_secret_is_not_clone_and_is_wiped_on_drop() {
        <Secret as AmbiguousIfClone<_>>::check();
        let mut secret = Secret::new("-----BEGIN PRIVATE KEY-----".to_owned());
        let copy = secret.duplicate();
        secret.wipe();
        assert_eq!(secret.expose(), "");
        assert_eq!(copy.expose(), "-----BEGIN PRIVATE KEY-----", "a duplicate is its own copy");
        assert_eq!(format!("{copy:?}"), "Secret([redacted])");
    }
}
