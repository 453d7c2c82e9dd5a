//! What both test crates share (`tests/it/`, the fast suites, and `tests/e2e/`, against the
//! emulator), included by each as `mod support`: this directory has no `main.rs`, so it is no
//! test target of its own.
//!
//! - [`Fixture`]: a core on the in-memory fakes, and command envelopes to give it.
//! - [`results`]: typed command results, each checked against the published schema.
//! - [`contract`]: the port contracts every adapter keeps, fake or AWS.
//! - [`examples`]: the shipped example templates and requests, and what they refer to.
//! - [`binary`]: the service's binary, for the tests that need a real process.
#![allow(dead_code, unreachable_pub, clippy::needless_pass_by_value)]

pub mod binary;
pub mod contract;
pub mod examples;
pub mod results;

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cdf_provisioning::adapters::memory::{ManualClock, MemoryPorts, MemoryQueue, TokioClock};
use cdf_provisioning::app::{App, AppSettings, RetrySchedule};
use cdf_provisioning::config::Config;
use cdf_provisioning::domain::{CommandEnvelope, IdempotencyKey};
use cdf_provisioning::ports::Clock;
use cdf_provisioning::wiring;

pub const LEASE: Duration = Duration::from_secs(60);

/// A core on the in-memory fakes; the fakes are reached through it (`f.registry`, `f.state`,
/// ...: see [`MemoryPorts`]).
pub struct Fixture {
    /// The fakes the core runs on.
    pub fakes: MemoryPorts,
    /// A clock tests move by hand; the core's own when the fixture is not on tokio's time.
    pub clock: Arc<ManualClock>,
    pub app: App,
}

impl Deref for Fixture {
    type Target = MemoryPorts;

    fn deref(&self) -> &MemoryPorts {
        &self.fakes
    }
}

impl Fixture {
    /// Runs `envelope` with lease `token` until `gate` shuts (a fault armed with
    /// `shut_after`), then drops the attempt as if the process died there: every fake hangs
    /// while the gate is shut. Opens the gate again and lets the leases run out. `point` names
    /// the crash point for the failure message.
    pub async fn die_at(&self, envelope: &CommandEnvelope, token: &str, gate: Arc<AtomicBool>, point: &str) {
        self.registry.faults.hang_while(gate.clone());
        self.secrets.faults.hang_while(gate.clone());
        self.events.faults.hang_while(gate.clone());
        self.state.faults.hang_while(gate.clone());
        self.bulk.faults.hang_while(gate.clone());
        let dead = async {
            while !gate.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::select! {
            d = self.app.handle(envelope, token) => panic!("finished ({d:?}) instead of dying after {point}"),
            () = dead => {}
        }
        gate.store(false, Ordering::SeqCst);
        self.clock.advance_ms(61_000);
    }

    pub fn new() -> Self {
        let clock = Arc::new(ManualClock::at(1_764_000_000_000));
        Self::with_clock(clock.clone(), clock, |_| {})
    }

    /// A fixture whose settings `adjust` changes.
    pub fn with_settings(adjust: impl FnOnce(&mut AppSettings)) -> Self {
        let clock = Arc::new(ManualClock::at(1_764_000_000_000));
        Self::with_clock(clock.clone(), clock, adjust)
    }

    /// Leases follow tokio's (paused) time; `clock` is then only a dummy.
    pub fn on_tokio_time() -> Self {
        Self::with_clock(Arc::new(ManualClock::at(0)), Arc::new(TokioClock::starting_at(1_764_000_000_000)), |_| {})
    }

    fn with_clock(clock: Arc<ManualClock>, app_clock: Arc<dyn Clock>, adjust: impl FnOnce(&mut AppSettings)) -> Self {
        let mut settings = AppSettings {
            event_source: "urn:test".into(),
            lease: LEASE,
            conflict_retry: RetrySchedule {
                first_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(2),
                max_retries: 5,
            },
            ..wiring::app_settings(&Config::default())
        };
        adjust(&mut settings);
        let fakes = MemoryPorts::new(app_clock, MemoryQueue::new(Duration::from_secs(30), 5));
        let app = App::new(fakes.ports(), settings);
        Self { fakes, clock, app }
    }

    /// Stores the example templates `names` where the core reads templates, and makes the
    /// policy they attach.
    pub fn with_examples(self, names: &[&str]) -> Self {
        for name in names {
            self.templates.put(name, &examples::template(name));
        }
        self.registry.add_policy(examples::DEVICE_POLICY);
        self
    }

    /// The record of `key`; its result, if any, is checked against the result schema.
    pub fn record(&self, key: &str) -> cdf_provisioning::domain::CommandRecord {
        let record = self
            .state
            .records()
            .into_iter()
            .find(|r| r.idempotency_key == IdempotencyKey::new(key))
            .expect("record exists");
        if let Some(result) = &record.result {
            results::assert_matches_schema(result);
        }
        record
    }
}

#[allow(unused_imports)]
pub use results::*;

pub fn envelope(body: serde_json::Value) -> CommandEnvelope {
    CommandEnvelope::from_value(&body, "message-id").expect("valid command")
}

pub fn get_thing(key: &str, thing: &str) -> CommandEnvelope {
    envelope(
        serde_json::json!({"schemaVersion": 1, "type": "getThing", "idempotencyKey": key, "payload": {"thingName": thing}}),
    )
}

pub fn delete_thing(key: &str, thing: &str) -> CommandEnvelope {
    envelope(
        serde_json::json!({"schemaVersion": 1, "type": "deleteThing", "idempotencyKey": key, "payload": {"thingName": thing}}),
    )
}

pub fn update_certificates(key: &str, thing: &str, status: &str) -> CommandEnvelope {
    envelope(serde_json::json!({
        "schemaVersion": 1, "type": "updateThingCertificates", "idempotencyKey": key,
        "payload": {"thingName": thing, "certificateStatus": status}
    }))
}
