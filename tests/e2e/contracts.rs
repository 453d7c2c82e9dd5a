//! The port contracts (`tests/support/contract.rs`) against the AWS adapters on the emulator;
//! the same cases run against the in-memory fakes in the fast suites.

use cdf_provisioning::adapters::aws::{IotRegistry, S3TemplateStore};
use cdf_provisioning::ports::{Clock, SystemClock};

use crate::stack::Stack;
use crate::support::contract;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_adapters_keep_the_port_contracts() {
    let s = Stack::deploy().await;
    contract::state_store_contract(&s.state(), &s.name).await;
    contract::bulk_store_contract(&s.state(), &s.state(), &s.name).await;
    let key = cdf_provisioning::crypto::generate_key_and_csr(
        cdf_provisioning::domain::template::plan::KeyAlgorithm::EcdsaP256,
        &Default::default(),
        &s.thing("contract"),
    )
    .unwrap();
    let registry = IotRegistry::new(&s.clients);
    contract::certificate_window_contract(&registry, &key.csr_pem, SystemClock.now()).await;
    let queue = s.queue().await;
    contract::queue_contract(&queue, &queue).await;
    let templates = S3TemplateStore::new(
        &s.clients,
        s.output("BucketName"),
        &s.config.templates_prefix,
        &s.config.templates_suffix,
    );
    contract::template_store_contract(&templates, &s.name).await;
}
