//! # cdf-provisioning
//!
//! An event-driven AWS IoT provisioning service: a queue worker that runs provisioning
//! commands from SQS idempotently against AWS IoT, records outcomes in DynamoDB and publishes
//! CloudEvents, plus a REST facade serving the CDF Provisioning v1.0.0 API.
//!
//! # Layout
//!
//! - [`domain`]: pure types and rules. Commands are one serde-tagged enum
//!   ([`domain::Command`]), results one typed enum ([`domain::CommandResult`]), the steps a
//!   command has done a versioned enum that fails closed ([`domain::checkpoint`]); also
//!   records and the table's key layout, events, errors, templates and their evaluation.
//!   No I/O.
//! - [`ports`]: the traits the core needs, in domain types: the IoT registry split by what it
//!   manages, the state store, the command queue (consumer and producer), templates, secrets,
//!   CA keys, events, the clock.
//! - [`app`]: the use cases, written once against the ports; `app::dispatch` is the one
//!   dispatch from a command to its handler.
//! - [`adapters`]: `aws` (the only place the AWS SDK appears) and `memory` (fakes with typed
//!   failure injection, held to the same contract suite as the AWS adapters).
//! - [`worker`]: poll → decode → dispatch → delete / retry / dead-letter.
//! - [`api`]: the CDF v1.0.0 REST facade (axum).
//! - [`metrics`]: Prometheus metrics at `/metrics`.
//! - [`config`], [`wiring`], [`telemetry`], [`shutdown`], [`cli`]: the composition root's parts
//!   (the ports themselves are wired next to their adapters: `adapters::aws::ports`,
//!   `adapters::memory::MemoryPorts`).

pub mod adapters;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod metrics;
pub mod ports;
pub mod shutdown;
pub mod telemetry;
pub mod wiring;
pub mod worker;
