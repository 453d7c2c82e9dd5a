//! An event publisher that keeps what it was given.

use std::sync::Mutex;

use async_trait::async_trait;

use super::Faults;
use crate::domain::CloudEvent;
use crate::ports::{EventPublisher, PortError};

/// The publisher operations of the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum EventsOp {
    /// `publish`.
    Publish,
}

/// Collects published events.
#[derive(Debug, Default)]
pub struct MemoryEvents {
    events: Mutex<Vec<CloudEvent>>,
    /// Failure injection (operation `publish`).
    pub faults: Faults<EventsOp>,
}

impl MemoryEvents {
    /// Every event published so far.
    pub fn published(&self) -> Vec<CloudEvent> {
        self.events.lock().expect("events lock").clone()
    }
}

#[async_trait]
impl EventPublisher for MemoryEvents {
    async fn publish(&self, event: &CloudEvent) -> Result<(), PortError> {
        self.faults.enter(EventsOp::Publish).await?;
        self.events.lock().expect("events lock").push(event.clone());
        Ok(())
    }
}
