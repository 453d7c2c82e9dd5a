//! The in-memory wiring: every port on its fake, each fake kept typed so that a test can seed
//! it, inject failures into it and read back what the core did to it.

use std::sync::Arc;

use super::{
    MemoryBulkStore, MemoryCaKeys, MemoryEvents, MemoryQueue, MemoryRegistry, MemoryRowSource, MemorySecrets,
    MemoryStateStore, MemoryTemplates,
};
use crate::adapters::rate_limited::{RateLimitedRegistry, RateLimits};
use crate::app::Ports;
use crate::ports::Clock;

/// One fake per port, sharing what AWS shares (the bulk store keeps its row records in the
/// command-record store, as they share a table) and one clock.
#[derive(Clone)]
pub struct MemoryPorts {
    /// AWS IoT.
    pub registry: Arc<MemoryRegistry>,
    /// Command records.
    pub state: Arc<MemoryStateStore>,
    /// Bulk tasks and row results, in `state`'s records.
    pub bulk: Arc<MemoryBulkStore>,
    /// Rows files.
    pub rows: Arc<MemoryRowSource>,
    /// The command queue: where the core sends commands (a bulk task's chunks).
    pub queue: Arc<MemoryQueue>,
    /// Published events.
    pub events: Arc<MemoryEvents>,
    /// Templates.
    pub templates: Arc<MemoryTemplates>,
    /// Generated private keys.
    pub secrets: Arc<MemorySecrets>,
    /// CA private keys.
    pub ca_keys: Arc<MemoryCaKeys>,
    /// The time of the core, and of the certificates the registry makes.
    pub clock: Arc<dyn Clock>,
}

impl MemoryPorts {
    /// Empty fakes on `clock`, with `queue` as the command queue.
    pub fn new(clock: Arc<dyn Clock>, queue: MemoryQueue) -> Self {
        let state = Arc::new(MemoryStateStore::default());
        Self {
            registry: Arc::new(MemoryRegistry::with_clock(clock.clone())),
            bulk: Arc::new(MemoryBulkStore::sharing(state.clone())),
            state,
            rows: Arc::new(MemoryRowSource::default()),
            queue: Arc::new(queue),
            events: Arc::new(MemoryEvents::default()),
            templates: Arc::new(MemoryTemplates::default()),
            secrets: Arc::new(MemorySecrets::default()),
            ca_keys: Arc::new(MemoryCaKeys::default()),
            clock,
        }
    }

    /// The ports of a core running on these fakes.
    pub fn ports(&self) -> Ports {
        Ports {
            registry: self.registry.clone(),
            state: self.state.clone(),
            events: self.events.clone(),
            templates: self.templates.clone(),
            secrets: self.secrets.clone(),
            ca_keys: self.ca_keys.clone(),
            bulk: self.bulk.clone(),
            rows: self.rows.clone(),
            commands: self.queue.clone(),
            clock: self.clock.clone(),
        }
    }

    /// The ports with every IoT call waiting for a token of `limits`, as the product's
    /// registry does.
    pub fn rate_limited_ports(&self, limits: Arc<RateLimits>) -> Ports {
        Ports { registry: Arc::new(RateLimitedRegistry::new(self.registry.clone(), limits)), ..self.ports() }
    }
}
