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
//!   command has done a versioned enum that fails closed ([`domain::checkpoint`]); the ids
//!   ([`domain::ids`]), typed error locations ([`domain::location`]: a document and an
//!   RFC 6901 pointer), certificate and CSR checks ([`domain::certificate`]); also records
//!   and the table's key layout, events, errors, templates and their evaluation. No I/O.
//! - [`ports`]: the traits the core needs, in domain types: the IoT registry split by what it
//!   manages, the state store, the command queue (consumer and producer), templates, secrets,
//!   CA keys, events, the clock.
//! - [`app`]: the use cases, written once against the ports: [`app::core`] (`App`, its
//!   ports and settings), [`app::dispatch`] (the one dispatch from a command to its
//!   handler), [`app::engine`] (exactly once per idempotency key), [`app::bulk`] (accept,
//!   chunk, cancel).
//! - [`adapters`]: `aws` (the only place the AWS SDK appears), `memory` (fakes with typed
//!   failure injection, held to the same contract suite as the AWS adapters) and
//!   [`adapters::rate_limited`] (the IoT registry within AWS's per-operation quotas).
//! - [`worker`]: poll → decode → dispatch → delete / retry / dead-letter; each outcome is
//!   logged and counted in one place (`worker::outcome`).
//! - [`api`]: the CDF v1.0.0 REST facade (axum).
//! - [`metrics`]: Prometheus metrics at `/metrics`.
//! - The composition root: [`config`] (the environment, read once), [`wiring`] (the core's,
//!   worker's and facade's settings from a `Config`), [`telemetry`], [`shutdown`] and [`cli`]
//!   (one module per concern: serving, commands, bulk, templates, stack, offline checks). The
//!   ports are wired next to their adapters: `adapters::aws::ports` for the product,
//!   `adapters::memory::MemoryPorts` in memory.

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
