//! Stateful in-memory fakes of every port, with failure injection, for fast tests of the
//! application and worker layers. They follow the AWS behaviours the core depends on (for
//! example IoT refusing to delete an ACTIVE certificate) but are not a product backend.

mod events;
mod faults;
mod queue;
mod registry;
mod state;

pub use events::MemoryEvents;
pub use faults::Faults;
pub use queue::MemoryQueue;
pub use registry::MemoryRegistry;
pub use state::MemoryStateStore;

use std::sync::atomic::{AtomicI64, Ordering};

use crate::ports::Clock;

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock showing `now_ms`.
    pub fn at(now_ms: i64) -> Self {
        Self(AtomicI64::new(now_ms))
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
