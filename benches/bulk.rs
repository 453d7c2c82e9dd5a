//! Bulk provisioning against the in-memory registry playing AWS IoT's default quotas: how
//! close a task runs to the binding quota with the client-side rate limits, and what happens
//! without them. Also the app-side cost of accepting a large task.
//!
//! `cargo bench --bench bulk` (release), or `cargo test --release --bench bulk` ; `ROWS=400`
//! and `WORKERS=4` change the task. The registry is in memory, so the numbers measure the
//! service's pacing and overhead, not AWS's latency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdf_provisioning::adapters::memory::{MemoryPorts, MemoryQueue, MemoryRegistry};
use cdf_provisioning::adapters::rate_limited::RateLimits;
use cdf_provisioning::app::App;
use cdf_provisioning::config::Config;
use cdf_provisioning::domain::bulk::TaskId;
use cdf_provisioning::domain::command::BulkRequest;
use cdf_provisioning::domain::{CommandEnvelope, IdempotencyKey};
use cdf_provisioning::ports::{CommandQueue, IotOperation, SystemClock};
use cdf_provisioning::wiring;

#[path = "../tests/support/examples.rs"]
mod examples;

struct Bench {
    app: App,
    registry: Arc<MemoryRegistry>,
    queue: Arc<MemoryQueue>,
}

fn bench(limited: bool) -> Bench {
    let config = Config::default();
    let limits = || Arc::new(RateLimits::new(config.iot_rate_share, &config.iot_rate_limits));
    let fakes = MemoryPorts::new(Arc::new(SystemClock), MemoryQueue::new(Duration::from_secs(300), 5));
    fakes.registry.throttle_at(limits());
    fakes.registry.add_policy(examples::DEVICE_POLICY);
    fakes.templates.put("aws-issued", &examples::template("aws-issued"));
    let ports = if limited { fakes.rate_limited_ports(limits()) } else { fakes.ports() };
    Bench { app: App::new(ports, wiring::app_settings(&config)), registry: fakes.registry, queue: fakes.queue }
}

fn request(rows: usize) -> BulkRequest {
    BulkRequest {
        provisioning_template_id: "aws-issued".into(),
        parameters: (0..rows).map(|i| BTreeMap::from([("ThingName".to_owned(), format!("bench-{i}"))])).collect(),
        rows_object: None,
        cdf_provisioning_parameters: serde_json::Value::Null,
        strict: false,
        row_events: false,
    }
}

/// Runs a task of `rows` rows with `workers` concurrent chunk runners; prints the rate.
async fn run(limited: bool, rows: usize, workers: usize) {
    let b = bench(limited);
    let key = IdempotencyKey::new(format!("bench-{limited}"));
    b.app.accept_bulk(&key, &request(rows)).await.expect("accepted");
    let started = Instant::now();
    let mut runners = Vec::new();
    for w in 0..workers {
        let (app, queue) = (b.app.clone(), b.queue.clone());
        runners.push(tokio::spawn(async move {
            loop {
                let batch = queue.receive(1, Duration::ZERO).await.expect("receive");
                let Some(message) = batch.into_iter().next() else { break };
                let envelope = CommandEnvelope::decode(&message.body, &message.message_id).expect("chunk");
                app.handle(&envelope, &format!("bench-{w}-{}", message.message_id)).await;
            }
        }));
    }
    for runner in runners {
        runner.await.expect("runner");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let task = b.app.bulk_task(&TaskId::for_key(&key)).await.expect("task");
    // The binding quota: the operation a row calls most for its rate (calls that went through).
    let calls: BTreeMap<IotOperation, usize> = IotOperation::ALL
        .iter()
        .map(|&op| (op, b.registry.faults.count(op) - usize::try_from(b.registry.throttled(Some(op))).unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let (binding, bound) = calls
        .iter()
        .map(|(op, n)| (*op, f64::from(op.default_rate()) * rows as f64 / *n as f64))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("calls were made");
    let rate = f64::from(task.success_count) / elapsed;
    println!(
        "{:<26} {rows} rows, {workers} workers: {:.1} s, {rate:.2} rows/s = {:.2} of the binding quota ({binding:?}, {bound:.1} rows/s); succeeded {}, failed {}, throttled calls {}",
        if limited { "with client rate limits" } else { "without client rate limits" },
        elapsed,
        rate / bound,
        task.success_count,
        task.failure_count,
        b.registry.throttled(None),
    );
}

/// The app-side cost of accepting a task: every row planned, chunks sent to the (memory) queue.
async fn accept(rows: usize) {
    let b = bench(true);
    let request = request(rows);
    let started = Instant::now();
    b.app.accept_bulk(&IdempotencyKey::new("accept"), &request).await.expect("accepted");
    let elapsed = started.elapsed();
    println!(
        "accepting {rows} rows: {:.0} ms ({:.0} rows/s), {} chunk messages",
        elapsed.as_secs_f64() * 1e3,
        rows as f64 / elapsed.as_secs_f64(),
        rows.div_ceil(100)
    );
}

fn main() {
    let rows = std::env::var("ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let workers = std::env::var("WORKERS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        accept(10_000).await;
        run(true, rows, workers).await;
        run(false, rows, workers).await;
    });
}
