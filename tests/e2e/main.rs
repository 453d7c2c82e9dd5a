//! End to end against the local AWS emulator (moto server): each test deploys
//! `infra/cloudformation.yaml` as its own stack ([`stack`]), runs the worker (in-process on the
//! product's wiring, or the real binary for the signal and kill tests) and drives commands
//! through SQS and the REST facade, checking IoT, DynamoDB, S3, the events queue and the
//! dead-letter queue.
//!
//! Run through `scripts/test.sh`, which starts moto and sets `AWS_ENDPOINT_URL`.
#![cfg(feature = "e2e")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::needless_pass_by_value)]

#[path = "../support/mod.rs"]
mod support;

mod http;
mod stack;

mod bulk;
mod commands;
mod contracts;
mod crashes;
mod provisioning;
mod rest;
