//! The error every command can end with: a stable code, a human message, the JSON path at
//! fault when the input is to blame, and whether trying again later may succeed.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::location::Location;

/// Stable, machine-readable error codes; published in events and stored in records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The message is not JSON, or not a command envelope.
    InvalidMessage,
    /// The envelope names a command type this version does not run.
    UnsupportedCommand,
    /// A field of the payload breaks a rule (see the path).
    ValidationFailed,
    /// The idempotency key was used before with a different payload.
    IdempotencyKeyReused,
    /// The thing does not exist.
    ThingNotFound,
    /// Another referenced resource does not exist.
    NotFound,
    /// IoT refused a state change (for example re-activating a revoked certificate), or a
    /// resource exists in a state the command may not change.
    InvalidState,
    /// AWS refused the request as invalid and the caller's input is to blame (a malformed
    /// policy document, a template IoT rejects).
    InvalidRequest,
    /// Retrying will not help and the caller is not to blame: access denied, a deployment
    /// misconfiguration (a CA key missing from its store), a defect.
    PermanentFailure,
    /// A checkpoint in the command's record cannot be read by this version; the command is
    /// stopped rather than risk repeating a step.
    CheckpointUnreadable,
    /// The command's record cannot be read by this version.
    RecordUnreadable,
    /// The command kept failing for a reason that may pass (throttling, an outage) until its
    /// last delivery; it was stopped, and what it made undone, rather than left half-done.
    RetriesExhausted,
    /// IoT throttled us; retried with backoff.
    Throttled,
    /// A network or service fault; retried with backoff.
    Transient,
    /// The attempt lost its command's lease to another attempt and stopped; never recorded
    /// nor published: the attempt holding the lease records the outcome.
    LeaseLost,
}

impl ErrorCode {
    /// The code's spelling (`THING_NOT_FOUND`, ...), as serialized.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Whether the command may succeed if run again later.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Throttled | Self::Transient)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest message an error keeps (characters): an error repeats bits of its input (a value
/// that breaks a rule), and no record, event or log line may repeat an unbounded input.
pub const MAX_MESSAGE: usize = 2_000;
/// Longest path an error keeps (characters).
pub const MAX_PATH: usize = 300;

/// At most 64 characters of an input echoed in an error, so a huge value is never repeated.
pub fn bounded(text: &str) -> String {
    bounded_to(text, 64)
}

/// At most `max` characters of `text`, the cut marked with the full length: the one way an
/// input is shortened wherever it is echoed (errors, logs, answers).
pub fn bounded_to(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}… (cut from {} bytes)", &text[..cut], text.len()),
    }
}

/// Why a command did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{code}: {message}{}", path.as_ref().map(|p| format!(" (at {p})")).unwrap_or_default())]
pub struct CommandError {
    /// What kind of failure this is.
    pub code: ErrorCode,
    /// A sentence an operator can act on.
    pub message: String,
    /// Where the input is at fault, when the input is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Location>,
}

impl CommandError {
    /// An error without a path.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: bounded_to(&message.into(), MAX_MESSAGE), path: None }
    }

    /// Names the location at fault.
    #[must_use]
    pub fn at(mut self, path: impl Into<Location>) -> Self {
        self.path = Some(path.into().capped(MAX_PATH));
        self
    }

    /// Whether the command may succeed if run again later.
    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    /// A retryable error met on a command's last delivery: final, saying why.
    #[must_use]
    pub fn exhausted(self) -> Self {
        if !self.is_retryable() {
            return self;
        }
        CommandError::new(ErrorCode::RetriesExhausted, format!("gave up on the last delivery: {self}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_code_message_and_path() {
        let e = CommandError::new(ErrorCode::ValidationFailed, "bad").at(Location::payload().child("thingName"));
        assert_eq!(e.to_string(), "VALIDATION_FAILED: bad (at /payload/thingName)");
        assert!(!e.is_retryable());
        assert!(CommandError::new(ErrorCode::Throttled, "slow down").is_retryable());
    }

    #[test]
    fn an_error_never_repeats_an_unbounded_input() {
        let huge = "x".repeat(300_000);
        let e = CommandError::new(ErrorCode::ValidationFailed, format!("{huge:?} is longer than 128 characters"))
            .at(Location::payload().child("parameters").child(&huge));
        assert!(e.message.chars().count() < MAX_MESSAGE + 40, "{}", e.message.len());
        assert!(e.message.ends_with("(cut from 300032 bytes)"), "{}", &e.message[e.message.len() - 40..]);
        assert!(e.path.unwrap().chars().count() < MAX_PATH + 40);
    }

    #[test]
    fn serializes_as_camel_case_without_empty_path() {
        let e = CommandError::new(ErrorCode::ThingNotFound, "no such thing");
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"code": "THING_NOT_FOUND", "message": "no such thing"})
        );
    }
}
