//! Implementations of the ports: [`aws`] for the product, [`memory`] for fast tests.

pub mod aws;
pub mod file;
pub mod memory;
