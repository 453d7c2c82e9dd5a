//! The port contracts (`tests/support/contract.rs`) against the in-memory fakes; the same
//! cases run against the AWS adapters on the emulator in the end-to-end tests (`tests/e2e/`).

use std::sync::Arc;

use crate::support::contract::{
    bulk_store_contract, certificate_window_contract, queue_contract, state_store_contract, template_store_contract,
};
use cdf_provisioning::adapters::memory::{
    ManualClock, MemoryBulkStore, MemoryQueue, MemoryRegistry, MemoryStateStore, MemoryTemplates,
};
use cdf_provisioning::crypto;
use cdf_provisioning::domain::template::plan::{CertInfo, KeyAlgorithm};
use cdf_provisioning::ports::Clock;

#[tokio::test]
async fn the_memory_state_store_keeps_the_contract() {
    state_store_contract(&MemoryStateStore::default(), "memory").await;
}

#[tokio::test]
async fn the_memory_registry_keeps_the_certificate_window_contract() {
    let clock = Arc::new(ManualClock::at(1_764_000_000_000));
    let registry = MemoryRegistry::with_clock(clock.clone());
    let key = crypto::generate_key_and_csr(KeyAlgorithm::EcdsaP256, &CertInfo::default(), "contract").unwrap();
    certificate_window_contract(&registry, &key.csr_pem, clock.now()).await;
}

#[tokio::test]
async fn the_memory_queue_keeps_the_contract() {
    let queue = MemoryQueue::new(std::time::Duration::from_secs(30), 5);
    queue_contract(&queue, &queue).await;
}

#[tokio::test]
async fn the_memory_bulk_store_keeps_the_contract() {
    let records = std::sync::Arc::new(MemoryStateStore::default());
    bulk_store_contract(&MemoryBulkStore::sharing(records.clone()), records.as_ref(), "memory").await;
}

#[tokio::test]
async fn the_memory_template_store_keeps_the_contract() {
    template_store_contract(&MemoryTemplates::default(), "memory").await;
}
