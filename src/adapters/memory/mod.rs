//! Stateful in-memory fakes of every port, with failure injection, for fast tests of the
//! application and worker layers. They follow the AWS behaviours the core depends on (for
//! example IoT refusing to delete an ACTIVE certificate) but are not a product backend.
//! [`MemoryPorts`] wires them, for every test fixture and the benches.

mod bulk;
mod events;
mod faults;
mod queue;
mod registry;
mod state;
mod stores;
mod wiring;

pub use bulk::{BulkOp, MemoryBulkStore};
pub use events::{EventsOp, MemoryEvents};
pub use faults::Faults;
pub use queue::{MemoryQueue, QueueOp};
pub use registry::{IotOp, MemoryRegistry};
pub use state::{MemoryStateStore, StoreOp};
pub use stores::{MemoryCaKeys, MemoryRowSource, MemorySecrets, MemoryTemplates, ObjectOp};
pub use wiring::MemoryPorts;

use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::Timestamp;
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

/// A clock that follows tokio's time, so that paused-time tests move leases and visibility
/// timeouts together.
#[derive(Debug)]
pub struct TokioClock {
    start: tokio::time::Instant,
    base: Timestamp,
}

impl TokioClock {
    /// A clock showing `base_ms` now and moving with tokio's time from here.
    pub fn starting_at(base_ms: i64) -> Self {
        Self { start: tokio::time::Instant::now(), base: Timestamp::from_millis(base_ms) }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Timestamp {
        self.base + self.start.elapsed()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.0.load(Ordering::SeqCst))
    }
}
