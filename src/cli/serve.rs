//! The long-running processes: the queue worker (with its metrics listener) and the REST
//! facade. Both stop gracefully on SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use super::context::Aws;
use crate::app::App;
use crate::ports::CommandQueue as _;
use crate::worker::Worker;
use crate::{api, shutdown, wiring};

/// `worker`: runs the queue worker until a signal.
pub(super) async fn worker(aws: &Aws) -> anyhow::Result<ExitCode> {
    let queue = aws.command_queue("to run the worker").await?;
    tracing::info!(queue = queue.url(), dead_letter_queue = queue.dead_letter_url(), "using queues");
    let app = aws.app().await?;
    let token = shutdown::on_signal();
    if let Some(bind) = &aws.config.metrics_bind {
        let listener =
            tokio::net::TcpListener::bind(bind).await.with_context(|| format!("binding {bind} for metrics"))?;
        tracing::info!(address = %listener.local_addr()?, "metrics at /metrics");
        let router = axum::Router::new().route("/metrics", axum::routing::get(crate::metrics::handler));
        let stop = token.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await {
                tracing::error!(error = %e, "the metrics server stopped");
            }
        });
    }
    if let Some(every) = aws.config.stale_sweep_interval {
        let older_than = wiring::stale_after(&aws.config, queue.max_deliveries());
        tokio::spawn(sweep_stale_records(app.clone(), every, older_than, token.clone()));
    }
    Worker::new(app, Arc::new(queue), wiring::worker_settings(&aws.config)).run(token).await;
    Ok(ExitCode::SUCCESS)
}

/// Every `every`, counts the stale command records ([`App::stale_records`]) into
/// `cdf_stale_records` and logs them, until `stop`.
async fn sweep_stale_records(app: App, every: Duration, older_than: Duration, stop: CancellationToken) {
    // Enough to set the gauge and name a few; `records stale` lists them all.
    const LIMIT: usize = 1000;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match app.stale_records(older_than, LIMIT).await {
            Ok(found) => {
                crate::metrics::global().stale_records.set(i64::try_from(found.records.len()).unwrap_or(i64::MAX));
                if let Some(first) = found.records.first() {
                    tracing::warn!(
                        count = found.records.len(),
                        truncated = found.truncated,
                        first = %first.idempotency_key,
                        "stale command records: in progress, no delivery of their messages coming (dead-lettered \
                         or deleted); list them with `cdf-provisioning records stale` and see the runbook"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not sweep for stale command records"),
        }
    }
}

/// `api`: serves the REST facade until a signal. Refuses to start open (without a bearer token
/// on an address other hosts reach) unless `CDF_API_INSECURE=true` ([`api::startup_check`]).
pub(super) async fn api(aws: &Aws, bind: Option<String>) -> anyhow::Result<ExitCode> {
    let bind = bind.unwrap_or_else(|| aws.config.api_bind.clone());
    let listener = tokio::net::TcpListener::bind(&bind).await.with_context(|| format!("binding {bind}"))?;
    let address = listener.local_addr()?;
    let mut settings = wiring::api_settings(&aws.config);
    if address.ip().to_canonical().is_loopback() {
        // Only this host's names: a page that rebinds its own name to 127.0.0.1 gets 421.
        settings.loopback_port = Some(address.port());
    }
    match api::startup_check(address, settings.bearer_token.as_deref(), aws.config.api_insecure) {
        Err(why) => anyhow::bail!(why),
        Ok(api::Exposure::Insecure) => tracing::warn!(
            %address,
            "INSECURE: the REST API serves without a bearer token on an address other hosts reach \
             (CDF_API_INSECURE=true); every route, template uploads and deletes included, is open to \
             whoever reaches it. Keep it behind an authorizer of your own"
        ),
        Ok(api::Exposure::Loopback) => {
            tracing::info!(%address, "no bearer token: the REST API answers this host only");
        }
        Ok(api::Exposure::Guarded) => {}
    }
    api::admin_token_check(settings.admin_token.as_deref(), settings.bearer_token.as_deref())
        .map_err(anyhow::Error::msg)?;
    if settings.admin_token.is_none() {
        tracing::warn!(
            "no CDF_API_ADMIN_TOKEN: every caller of the REST API may upload and delete templates, \
             which decide the policies of every device made from them"
        );
    }
    let app = aws.app().await?;
    tracing::info!(%address, "REST facade listening");
    let token = shutdown::on_signal();
    let router = api::router_with(app, settings);
    axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await?;
    Ok(ExitCode::SUCCESS)
}
