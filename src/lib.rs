//! # cdf-provisioning
//!
//! An event-driven AWS IoT provisioning service: a queue worker that runs provisioning
//! commands from SQS idempotently against AWS IoT, records outcomes in DynamoDB and publishes
//! CloudEvents, plus a REST facade serving the CDF Provisioning v1.0.0 API.
//!
//! # Layout
//!
//! - [`domain`]: pure types and rules (commands, records, events, errors). No I/O.
//! - [`ports`]: the traits the core needs (registry, state store, events, queue, clock).
//! - [`app`]: the use cases, written once against the ports.
//! - [`adapters`]: `aws` (the only place the AWS SDK appears) and `memory` (fakes for tests).
//! - [`worker`]: poll → decode → dispatch → delete / retry / dead-letter.
//! - [`api`]: the CDF v1.0.0 REST facade (axum).
//! - [`config`], [`telemetry`], [`shutdown`], [`cli`]: the composition root's parts.

pub mod adapters;
pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod ports;
pub mod shutdown;
pub mod telemetry;
pub mod worker;
