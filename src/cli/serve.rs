//! The long-running processes: the queue worker (with its metrics listener) and the REST
//! facade. Both stop gracefully on SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use super::context::Aws;
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
    Worker::new(app, Arc::new(queue), wiring::worker_settings(&aws.config)).run(token).await;
    Ok(ExitCode::SUCCESS)
}

/// `api`: serves the REST facade until a signal.
pub(super) async fn api(aws: &Aws, bind: Option<String>) -> anyhow::Result<ExitCode> {
    let app = aws.app().await?;
    let bind = bind.unwrap_or_else(|| aws.config.api_bind.clone());
    let listener = tokio::net::TcpListener::bind(&bind).await.with_context(|| format!("binding {bind}"))?;
    tracing::info!(address = %listener.local_addr()?, "REST facade listening");
    let token = shutdown::on_signal();
    let router = api::router_with(app, wiring::api_settings(&aws.config));
    axum::serve(listener, router).with_graceful_shutdown(token.cancelled_owned()).await?;
    Ok(ExitCode::SUCCESS)
}
