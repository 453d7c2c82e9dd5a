//! Throughput of the pure provisioning engine on this machine: template evaluation and
//! planning, and device key + CSR generation (ECDSA P-256, RSA-2048). Run with
//! `cargo bench --bench engine` (or `scripts/bench.sh`, which adds openssl and end-to-end
//! numbers).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cdf_provisioning::crypto;
use cdf_provisioning::domain::template::Template;
use cdf_provisioning::domain::template::plan::{CertInfo, KeyAlgorithm};

#[path = "../tests/support/examples.rs"]
mod examples;

/// Runs `f` repeatedly for about `budget` and returns (iterations, elapsed).
fn measure(budget: Duration, mut f: impl FnMut()) -> (u64, Duration) {
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < budget {
        f();
        n += 1;
    }
    (n, start.elapsed())
}

fn report(name: &str, (n, elapsed): (u64, Duration)) {
    let per_sec = n as f64 / elapsed.as_secs_f64();
    let per_op_us = elapsed.as_secs_f64() * 1e6 / n as f64;
    println!("{name:<48} {per_sec:>12.1} /s  {per_op_us:>10.1} µs/op  (n={n})");
}

fn main() {
    let template = examples::template("group-and-type");
    let request = examples::request("group-and-type");
    let parameters: BTreeMap<String, String> =
        serde_json::from_value(request["parameters"].clone()).expect("parameters");
    let budget = Duration::from_secs(3);

    report(
        "template parse + evaluate + plan (group-and-type)",
        measure(budget, || {
            let plan = Template::parse(&template).and_then(|t| t.plan(&parameters, &serde_json::Value::Null));
            assert!(plan.is_ok());
        }),
    );
    let parsed = Template::parse(&template).expect("valid template");
    report(
        "evaluate + plan only (template parsed once)",
        measure(budget, || {
            assert!(parsed.plan(&parameters, &serde_json::Value::Null).is_ok());
        }),
    );
    let info = CertInfo { common_name: Some("sensor-0001".into()), country: Some("DE".into()), ..CertInfo::default() };
    report(
        "ECDSA P-256 key + CSR",
        measure(budget, || {
            crypto::generate_key_and_csr(KeyAlgorithm::EcdsaP256, &info, "x").expect("key");
        }),
    );
    report(
        "RSA-2048 key + CSR",
        measure(Duration::from_secs(10), || {
            crypto::generate_key_and_csr(KeyAlgorithm::Rsa2048, &info, "x").expect("key");
        }),
    );
    let (ca_pem, ca_key) = crypto::test_ca("Bench CA").expect("CA");
    let key = crypto::generate_key_and_csr(KeyAlgorithm::EcdsaP256, &info, "x").expect("key");
    report(
        "sign a device CSR with a P-256 CA",
        measure(budget, || {
            crypto::sign_csr(&key.csr_pem, &ca_pem, &ca_key, 365, time::OffsetDateTime::now_utc()).expect("signed");
        }),
    );
}
