//! The use cases, written once against the ports and driven by both the queue worker and
//! the REST facade.
//!
//! - [`core`]: [`App`], its ports and settings.
//! - [`dispatch`]: the use cases as the core offers them, and the one dispatch from a piece
//!   of work to its handler.
//! - [`engine`]: runs work exactly once per idempotency key: record, lease, outcome,
//!   completion event.
//! - [`describe`], [`delete`], [`certificates`]: one module per command, each an
//!   orchestration of calls to the registry parts it names ([`Things`](crate::ports::Things),
//!   [`Certificates`](crate::ports::Certificates), [`Policies`](crate::ports::Policies));
//!   [`provision`] uses all of [`DeviceRegistry`](crate::ports::DeviceRegistry);
//!   [`bulk`]: bulk tasks (accept, chunk, cancel).
//! - [`sweep`]: command records left in progress with no attempt coming (the operator's sweep).

pub mod bulk;
pub mod certificates;
pub mod core;
pub mod delete;
pub mod describe;
pub mod dispatch;
pub mod engine;
pub mod fence;
pub mod health;
pub mod lease;
pub mod progress;
pub mod provision;
pub mod retry;
pub mod sweep;
pub mod templates;

pub use core::{App, AppSettings, Ports};
pub use dispatch::KeyedProvision;
pub use engine::{Disposition, RetryReason};
pub use retry::RetrySchedule;

use crate::domain::{CommandError, ErrorCode, ThingName};
use crate::ports::{ErrorKind, PortError};

/// Maps a registry error on a call about `thing` to a command error, turning "not found"
/// into the thing-level answer callers expect.
fn thing_error(thing: &ThingName) -> impl Fn(PortError) -> CommandError + '_ {
    missing_as(move |_| CommandError::new(ErrorCode::ThingNotFound, format!("thing '{thing}' does not exist")))
}

/// A port failure as the command error it becomes, with "not found" answered by `missing`
/// (what the caller named does not exist, or the server lacks something of its own):
/// `.map_err(missing_as(|e| ...))`.
fn missing_as<'a>(missing: impl Fn(&PortError) -> CommandError + 'a) -> impl Fn(PortError) -> CommandError + 'a {
    move |e| if e.kind == ErrorKind::NotFound { missing(&e) } else { fail(e) }
}

/// A port failure as the command error it becomes (`.map_err(fail)`).
#[allow(clippy::needless_pass_by_value)] // used as `.map_err(fail)`
fn fail(e: PortError) -> CommandError {
    e.to_command_error()
}

/// Treats "not found" as success: the state the call wanted already holds.
fn ignore_not_found(result: Result<(), PortError>) -> Result<(), PortError> {
    match result {
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
