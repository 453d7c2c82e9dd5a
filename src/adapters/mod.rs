//! Implementations of the ports: [`aws`] for the product, [`memory`] for fast tests,
//! [`rate_limited`], which keeps any registry within AWS IoT's per-operation quotas, and
//! [`cached_ca_keys`], which reads a CA's key once per period rather than once per signing.

pub mod aws;
pub mod cached_ca_keys;
pub mod file;
pub mod memory;
pub mod rate_limited;
