//! Metrics in the Prometheus text format, served at `/metrics` by the REST facade and, with
//! `CDF_METRICS_BIND`, by the worker. Prometheus rather than CloudWatch's embedded format: it
//! is scraped the same way wherever the service runs, and CloudWatch's agent can scrape it too.
//!
//! What an operator asks first is answered by `cdf_aws_throttles_total{operation}`: which AWS
//! quota the service ran into.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a command's counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// The command type (`provisionThing`, ...).
    pub command: String,
    /// `done`, `retried`, `rejected` or `abandoned`.
    pub outcome: &'static str,
}

/// The command type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabel {
    /// The command type.
    pub command: String,
}

/// An AWS operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    /// The operation, as `service:Operation`.
    pub operation: String,
}

/// An error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The code.
    pub code: String,
}

/// A bulk row's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `SUCCEEDED`, `FAILED` or `SKIPPED`.
    pub outcome: String,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    /// Messages handled, by command and what became of them.
    pub commands: Family<CommandLabels, Counter>,
    /// Time a message took to handle, by command.
    pub duration: Family<CommandLabel, Histogram>,
    /// Messages being handled now.
    pub in_flight: Gauge,
    /// Messages dead-lettered, by error code.
    pub dead_lettered: Family<CodeLabel, Counter>,
    /// Calls AWS answered with a throttle, by operation.
    pub throttles: Family<OperationLabel, Counter>,
    /// Bulk rows counted, by outcome.
    pub bulk_rows: Family<OutcomeLabel, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("cdf");
        let commands = Family::<CommandLabels, Counter>::default();
        let duration = Family::<CommandLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        let in_flight = Gauge::default();
        let dead_lettered = Family::<CodeLabel, Counter>::default();
        let throttles = Family::<OperationLabel, Counter>::default();
        let bulk_rows = Family::<OutcomeLabel, Counter>::default();
        registry.register("commands", "Messages handled, by command and outcome", commands.clone());
        registry.register("command_duration_seconds", "Time to handle a message, by command", duration.clone());
        registry.register("commands_in_flight", "Messages being handled", in_flight.clone());
        registry.register("dead_lettered", "Messages dead-lettered, by error code", dead_lettered.clone());
        registry.register("aws_throttles", "AWS calls answered with a throttle, by operation", throttles.clone());
        registry.register("bulk_rows", "Bulk rows counted, by outcome", bulk_rows.clone());
        Self { registry, commands, duration, in_flight, dead_lettered, throttles, bulk_rows }
    }

    /// Counts a handled message.
    pub fn command(&self, command: &str, outcome: &'static str, took: Duration) {
        self.commands.get_or_create(&CommandLabels { command: command.to_owned(), outcome }).inc();
        self.duration.get_or_create(&CommandLabel { command: command.to_owned() }).observe(took.as_secs_f64());
    }

    /// Counts a call AWS throttled.
    pub fn throttled(&self, operation: &str) {
        self.throttles.get_or_create(&OperationLabel { operation: operation.to_owned() }).inc();
    }

    /// Counts a dead-lettered message.
    pub fn dead_lettered(&self, code: &str) {
        self.dead_lettered.get_or_create(&CodeLabel { code: code.to_owned() }).inc();
    }

    /// Counts a bulk row.
    pub fn bulk_row(&self, outcome: &str) {
        self.bulk_rows.get_or_create(&OutcomeLabel { outcome: outcome.to_owned() }).inc();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// The `/metrics` route's answer.
pub async fn handler() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], global().render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_in_the_text_format() {
        let m = Metrics::new();
        m.command("getThing", "done", Duration::from_millis(30));
        m.throttled("iot:CreateThing");
        let text = m.render();
        assert!(text.contains(r#"cdf_commands_total{command="getThing",outcome="done"} 1"#), "{text}");
        assert!(text.contains(r#"cdf_aws_throttles_total{operation="iot:CreateThing"} 1"#), "{text}");
        assert!(text.contains("cdf_command_duration_seconds_bucket"), "{text}");
    }
}
