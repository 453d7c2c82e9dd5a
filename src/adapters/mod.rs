//! Implementations of the ports: [`aws`] for the product, [`memory`] for fast tests, and
//! [`rate_limited`], which keeps any registry within AWS IoT's per-operation quotas.

pub mod aws;
pub mod file;
pub mod memory;
pub mod rate_limited;
