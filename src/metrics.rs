//! Metrics in the Prometheus text format, served at `/metrics` by the REST facade and, with
//! `CDF_METRICS_BIND`, by the worker. Prometheus rather than CloudWatch's embedded format: it
//! is scraped the same way wherever the service runs, and CloudWatch's agent can scrape it too.
//!
//! What an operator asks first is answered by `cdf_aws_throttles_total{operation}`: which AWS
//! quota the service ran into.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use strum::VariantArray;

use crate::domain::bulk::RowOutcome;
use crate::domain::{CommandType, ErrorCode};

/// What became of a handled message (the `outcome` label of `cdf_commands_total`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, strum::IntoStaticStr, strum::VariantArray)]
#[strum(serialize_all = "lowercase")]
pub enum CommandOutcome {
    /// Its outcome is recorded; the message is deleted.
    Done,
    /// Left on the queue for a later attempt.
    Retried,
    /// Refused for good: dead-lettered with its reason.
    Rejected,
    /// Abandoned at shutdown; the queue redelivers it.
    Abandoned,
}

/// Label values spelled as the domain spells them everywhere else.
macro_rules! label_values {
    ($($label:ty => $spelling:expr),* $(,)?) => {$(
        impl EncodeLabelValue for $label {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
                let spelling: fn(&$label) -> &'static str = $spelling;
                EncodeLabelValue::encode(&spelling(self), encoder)
            }
        }
    )*};
}

label_values! {
    CommandOutcome => |o| o.into(),
    CommandType => |t| t.as_str(),
    ErrorCode => |c| c.as_str(),
    RowOutcome => |o| o.as_str(),
}

/// Labels of a command's counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// The command type (`provisionThing`, ...).
    pub command: CommandType,
    /// What became of the message.
    pub outcome: CommandOutcome,
}

/// The command type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabel {
    /// The command type.
    pub command: CommandType,
}

/// An AWS operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    /// The operation, as `service:Operation`.
    pub operation: &'static str,
}

/// An error code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The code.
    pub code: ErrorCode,
}

/// A bulk row's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `SUCCEEDED`, `FAILED` or `SKIPPED`.
    pub outcome: RowOutcome,
}

/// Every metric of the process (or of one worker in tests: each [`Metrics`] is its own).
pub struct Metrics {
    registry: Registry,
    /// Messages received from the command queue.
    pub received: Counter,
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
    /// Command records in progress whose lease expired longer ago than their message could
    /// still come back (the worker's sweep, `CDF_STALE_SWEEP_MINS`): their messages are in the
    /// dead-letter queue or gone.
    pub stale_records: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cdf");
        let received = Counter::default();
        let commands = Family::<CommandLabels, Counter>::default();
        let duration = Family::<CommandLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        let in_flight = Gauge::default();
        let dead_lettered = Family::<CodeLabel, Counter>::default();
        let throttles = Family::<OperationLabel, Counter>::default();
        let bulk_rows = Family::<OutcomeLabel, Counter>::default();
        let stale_records = Gauge::default();
        registry.register("messages_received", "Messages received from the command queue", received.clone());
        registry.register("commands", "Messages handled, by command and outcome", commands.clone());
        registry.register("command_duration_seconds", "Time to handle a message, by command", duration.clone());
        registry.register("commands_in_flight", "Messages being handled", in_flight.clone());
        registry.register("dead_lettered", "Messages dead-lettered, by error code", dead_lettered.clone());
        registry.register("aws_throttles", "AWS calls answered with a throttle, by operation", throttles.clone());
        registry.register("bulk_rows", "Bulk rows counted, by outcome", bulk_rows.clone());
        registry.register(
            "stale_records",
            "Command records in progress, lease long expired, no delivery coming (last sweep)",
            stale_records.clone(),
        );
        Self { registry, received, commands, duration, in_flight, dead_lettered, throttles, bulk_rows, stale_records }
    }

    /// Counts a handled message and the time it took.
    pub fn command(&self, command: CommandType, outcome: CommandOutcome, took: Duration) {
        self.commands.get_or_create(&CommandLabels { command, outcome }).inc();
        self.duration.get_or_create(&CommandLabel { command }).observe(took.as_secs_f64());
    }

    /// Counts a call AWS throttled.
    pub fn throttled(&self, operation: &'static str) {
        self.throttles.get_or_create(&OperationLabel { operation }).inc();
    }

    /// Counts a dead-lettered message.
    pub fn dead_lettered(&self, code: ErrorCode) {
        self.dead_lettered.get_or_create(&CodeLabel { code }).inc();
    }

    /// Counts a bulk row.
    pub fn bulk_row(&self, outcome: RowOutcome) {
        self.bulk_rows.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Messages handled with `outcome`, over every command type.
    pub fn commands_ended(&self, outcome: CommandOutcome) -> u64 {
        CommandType::VARIANTS
            .iter()
            .filter_map(|&command| self.commands.get(&CommandLabels { command, outcome }).map(|c| c.get()))
            .sum()
    }

    /// Messages dead-lettered, over every error code.
    pub fn dead_lettered_total(&self) -> u64 {
        ErrorCode::VARIANTS
            .iter()
            .filter_map(|&code| self.dead_lettered.get(&CodeLabel { code }).map(|c| c.get()))
            .sum()
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String does not fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// The process's metrics: what `/metrics` serves.
pub fn global() -> &'static Arc<Metrics> {
    static METRICS: LazyLock<Arc<Metrics>> = LazyLock::new(|| Arc::new(Metrics::new()));
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
        m.command(CommandType::GetThing, CommandOutcome::Done, Duration::from_millis(30));
        m.throttled(crate::ports::IotOperation::CreateThing.op());
        let text = m.render();
        assert!(text.contains(r#"cdf_commands_total{command="getThing",outcome="done"} 1"#), "{text}");
        assert!(text.contains(r#"cdf_aws_throttles_total{operation="iot:CreateThing"} 1"#), "{text}");
        assert!(text.contains("cdf_command_duration_seconds_bucket"), "{text}");
    }

    #[test]
    fn label_values_are_the_domain_spellings_and_totals_add_up() {
        let m = Metrics::new();
        m.command(CommandType::ProvisionThing, CommandOutcome::Retried, Duration::from_millis(5));
        m.command(CommandType::GetThing, CommandOutcome::Retried, Duration::from_millis(5));
        m.command(CommandType::GetThing, CommandOutcome::Abandoned, Duration::from_millis(5));
        m.dead_lettered(ErrorCode::InvalidMessage);
        m.dead_lettered(ErrorCode::ThingNotFound);
        m.bulk_row(RowOutcome::Succeeded);
        m.stale_records.set(3);
        let text = m.render();
        assert!(text.contains("cdf_stale_records 3"), "{text}");
        assert!(text.contains(r#"cdf_commands_total{command="provisionThing",outcome="retried"} 1"#), "{text}");
        assert!(text.contains(r#"cdf_commands_total{command="getThing",outcome="abandoned"} 1"#), "{text}");
        assert!(text.contains(r#"cdf_dead_lettered_total{code="THING_NOT_FOUND"} 1"#), "{text}");
        assert!(text.contains(r#"cdf_bulk_rows_total{outcome="SUCCEEDED"} 1"#), "{text}");
        assert_eq!(m.commands_ended(CommandOutcome::Retried), 2);
        assert_eq!(m.commands_ended(CommandOutcome::Abandoned), 1);
        assert_eq!(m.commands_ended(CommandOutcome::Done), 0);
        assert_eq!(m.dead_lettered_total(), 2);
    }
}
