//! The fast suites, in one test binary: the core, the worker and the REST facade against the
//! in-memory fakes, the parsers against hostile and arbitrary input, the templates and
//! schemas. Nothing here needs AWS or the emulator (the end-to-end tests are `tests/e2e/`).
#![allow(clippy::unwrap_used, clippy::needless_pass_by_value)]

#[path = "../support/mod.rs"]
mod support;

mod api;
mod app_commands;
mod bulk_memory;
mod contract_memory;
mod fencing;
mod hostile_input;
mod locations;
mod policy_injection;
mod properties;
mod provision_memory;
mod record_retention;
mod schemas;
mod template_errors;
mod worker_memory;
