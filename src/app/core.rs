//! The application core: the ports it runs on, the settings it needs, and [`App`], which the
//! worker and the REST facade share. Its methods live with what they do: [`dispatch`](super::dispatch)
//! (the use cases and the one dispatch), [`engine`](super::engine) (exactly once per key),
//! [`bulk`](super::bulk) (bulk tasks).

use std::sync::Arc;
use std::time::Duration;

use super::provision::ProvisionSettings;
use super::retry::RetrySchedule;
use crate::domain::Timestamp;
use crate::ports::{
    BulkStore, CaKeyStore, Clock, CommandSender, DeviceRegistry, EventPublisher, RowSource, SecretSink, StateStore,
    TemplateStore,
};

/// Deployment choices the use cases need.
#[derive(Debug, Clone)]
pub struct AppSettings {
    /// CloudEvents `source` of every event.
    pub event_source: String,
    /// How long an attempt's lease protects it; renewed by the worker's heartbeat.
    pub lease: Duration,
    /// How long records are kept (DynamoDB TTL).
    pub record_retention: Duration,
    /// `deleteThing` default for `deleteCertificates`.
    pub delete_certificates: bool,
    /// `deleteThing` default for `deletePolicies`.
    pub delete_policies: bool,
    /// Retry of IoT's eventual-consistency conflicts.
    pub conflict_retry: RetrySchedule,
    /// Attempts that may end in a failure that could pass later before the command is given
    /// up. Crashed attempts and redeliveries do not count: only failures the attempt saw.
    pub max_failed_attempts: u32,
    /// Provisioning settings.
    pub provision: ProvisionSettings,
    /// Key prefix under which bulk tasks' rows files must lie.
    pub rows_prefix: String,
}

/// The adapters the core runs on.
#[derive(Clone)]
pub struct Ports {
    /// AWS IoT: where the commands act.
    pub registry: Arc<dyn DeviceRegistry>,
    /// Command records: what makes each command run once, and resume after a crash.
    pub state: Arc<dyn StateStore>,
    /// Where completion events go, for the systems waiting on an outcome.
    pub events: Arc<dyn EventPublisher>,
    /// Provisioning templates, by id.
    pub templates: Arc<dyn TemplateStore>,
    /// Where generated private keys go, so that they never reach a record or an event.
    pub secrets: Arc<dyn SecretSink>,
    /// The private keys of the CAs that sign device certificates here.
    pub ca_keys: Arc<dyn CaKeyStore>,
    /// Bulk tasks and their row results.
    pub bulk: Arc<dyn BulkStore>,
    /// Rows files of large bulk tasks.
    pub rows: Arc<dyn RowSource>,
    /// The command queue, as a producer: where a bulk task's chunks are sent.
    pub commands: Arc<dyn CommandSender>,
    /// Time, injected so that tests move leases and retention at will.
    pub clock: Arc<dyn Clock>,
}

/// The application core, shared by the worker and the REST facade.
#[derive(Clone)]
pub struct App {
    pub(super) ports: Ports,
    pub(super) settings: AppSettings,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl App {
    /// Wires the core to its ports.
    pub fn new(ports: Ports, settings: AppSettings) -> Self {
        Self { ports, settings }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AppSettings {
        &self.settings
    }

    /// The time, from the clock port.
    pub(super) fn now(&self) -> Timestamp {
        self.ports.clock.now()
    }
}
