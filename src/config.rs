//! Configuration from environment variables, validated once at startup. Every variable,
//! its default and its meaning is listed in the README's configuration table; a bad value
//! stops the process with a message naming the variable.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::app::provision::{ProvisionSettings, ProvisioningMode};
use crate::app::{AppSettings, ConflictRetry};
use crate::worker::WorkerSettings;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where completion events go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventsDestination {
    /// An SQS queue (URL, name or ARN).
    Sqs(String),
    /// An SNS topic (ARN).
    Sns(String),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `CDF_COMMAND_QUEUE`: the command queue (URL, name or ARN).
    pub command_queue: Option<String>,
    /// `CDF_DEAD_LETTER_QUEUE`: where refused messages go; default: the redrive target.
    pub dead_letter_queue: Option<String>,
    /// `CDF_TABLE`: the DynamoDB table of command records.
    pub table: Option<String>,
    /// `CDF_BUCKET`: the bucket of templates, generated secrets and CA keys.
    pub bucket: Option<String>,
    /// `CDF_TEMPLATES_PREFIX`: key prefix of templates.
    pub templates_prefix: String,
    /// `CDF_TEMPLATES_SUFFIX`: key suffix of templates.
    pub templates_suffix: String,
    /// `CDF_SECRETS_PREFIX`: key prefix of generated private keys.
    pub secrets_prefix: String,
    /// `CDF_CA_KEYS_PREFIX`: key prefix of CA private keys (`<prefix><CA certificate id>.pem`).
    pub ca_keys_prefix: String,
    /// `CDF_CA_KEYS_DIR`: read CA private keys from this directory instead of S3.
    pub ca_keys_dir: Option<String>,
    /// `CDF_CERTIFICATE_EXPIRY_DAYS`: validity of certificates signed here by default.
    pub certificate_expiry_days: u32,
    /// `CDF_PROVISIONING_MODE`: `steps` or `registerThing`.
    pub provisioning_mode: ProvisioningMode,
    /// `CDF_EVENTS_DESTINATION`: SQS queue or SNS topic ARN for completion events.
    pub events: Option<EventsDestination>,
    /// `CDF_EVENT_SOURCE`: CloudEvents `source`.
    pub event_source: String,
    /// `CDF_RECEIVERS`: concurrent long-polling receivers.
    pub receivers: usize,
    /// `CDF_CONCURRENCY`: commands processed at once.
    pub concurrency: usize,
    /// `CDF_WAIT_TIME_SECS`: long-poll wait (0-20).
    pub wait_time: Duration,
    /// `CDF_VISIBILITY_TIMEOUT_SECS`: visibility timeout kept by the heartbeat; also the lease.
    pub visibility_timeout: Duration,
    /// `CDF_SHUTDOWN_GRACE_SECS`: time in-flight commands get after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// `CDF_MAX_RETRY_DELAY_SECS`: cap of the retry backoff.
    pub max_retry_delay: Duration,
    /// `CDF_RECORD_RETENTION_DAYS`: how long command records are kept (DynamoDB TTL).
    pub record_retention: Duration,
    /// `CDF_DELETE_CERTIFICATES`: `deleteThing` default for certificates.
    pub delete_certificates: bool,
    /// `CDF_DELETE_POLICIES`: `deleteThing` default for policies.
    pub delete_policies: bool,
    /// `CDF_AWS_MAX_ATTEMPTS`: attempts per AWS call (the SDK's own retry).
    pub aws_max_attempts: u32,
    /// `CDF_API_BIND`: address of the REST facade.
    pub api_bind: String,
    /// `CDF_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `CDF_LOG_LEVEL`: a tracing filter (`RUST_LOG` wins when set).
    pub log_level: String,
}

/// Everything wrong with the environment, one line per variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:\n  {}", self.0.join("\n  "))
    }
}

impl std::error::Error for ConfigError {}

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
}

impl Reader<'_> {
    fn text(&self, var: &str) -> Option<String> {
        (self.lookup)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    fn parse<T>(&mut self, var: &str, default: T, range: std::ops::RangeInclusive<T>) -> T
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.text(var) else { return default };
        match raw.parse::<T>() {
            Ok(v) if range.contains(&v) => v,
            _ => {
                self.problems.push(format!("{var}={raw:?} is not a number from {} to {}", range.start(), range.end()));
                default
            }
        }
    }

    fn flag(&mut self, var: &str, default: bool) -> bool {
        match self.text(var).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => default,
            Some("true" | "1" | "yes") => true,
            Some("false" | "0" | "no") => false,
            Some(other) => {
                self.problems.push(format!("{var}={other:?} is not true or false"));
                default
            }
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&|var| std::env::var(var).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader { lookup, problems: Vec::new() };
        let events = r.text("CDF_EVENTS_DESTINATION").map(|d| {
            if d.starts_with("arn:aws:sns:") || d.starts_with("arn:aws-") && d.contains(":sns:") {
                EventsDestination::Sns(d)
            } else {
                EventsDestination::Sqs(d)
            }
        });
        let log_format = match r.text("CDF_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                r.problems.push(format!("CDF_LOG_FORMAT={other:?} is not text or json"));
                LogFormat::Text
            }
        };
        let secs = |v: u64| Duration::from_secs(v);
        let config = Self {
            command_queue: r.text("CDF_COMMAND_QUEUE"),
            dead_letter_queue: r.text("CDF_DEAD_LETTER_QUEUE"),
            table: r.text("CDF_TABLE"),
            bucket: r.text("CDF_BUCKET"),
            templates_prefix: r.text("CDF_TEMPLATES_PREFIX").unwrap_or_else(|| "templates/".into()),
            templates_suffix: r.text("CDF_TEMPLATES_SUFFIX").unwrap_or_else(|| ".json".into()),
            secrets_prefix: r.text("CDF_SECRETS_PREFIX").unwrap_or_else(|| "secrets/".into()),
            ca_keys_prefix: r.text("CDF_CA_KEYS_PREFIX").unwrap_or_else(|| "ca-keys/".into()),
            ca_keys_dir: r.text("CDF_CA_KEYS_DIR"),
            certificate_expiry_days: r.parse("CDF_CERTIFICATE_EXPIRY_DAYS", 365, 1..=36_500),
            provisioning_mode: match r.text("CDF_PROVISIONING_MODE").as_deref() {
                None | Some("steps") => ProvisioningMode::Steps,
                Some("registerThing") => ProvisioningMode::RegisterThing,
                Some(other) => {
                    r.problems.push(format!("CDF_PROVISIONING_MODE={other:?} is not steps or registerThing"));
                    ProvisioningMode::Steps
                }
            },
            events,
            event_source: r.text("CDF_EVENT_SOURCE").unwrap_or_else(|| "urn:cdf-provisioning".into()),
            receivers: r.parse("CDF_RECEIVERS", 2, 1..=64),
            concurrency: r.parse("CDF_CONCURRENCY", 16, 1..=1024),
            wait_time: secs(r.parse("CDF_WAIT_TIME_SECS", 20, 0..=20)),
            visibility_timeout: secs(r.parse("CDF_VISIBILITY_TIMEOUT_SECS", 60, 5..=43_200)),
            shutdown_grace: secs(r.parse("CDF_SHUTDOWN_GRACE_SECS", 25, 0..=3_600)),
            max_retry_delay: secs(r.parse("CDF_MAX_RETRY_DELAY_SECS", 300, 1..=43_200)),
            record_retention: secs(r.parse("CDF_RECORD_RETENTION_DAYS", 7, 1..=365) * 86_400),
            delete_certificates: r.flag("CDF_DELETE_CERTIFICATES", true),
            delete_policies: r.flag("CDF_DELETE_POLICIES", true),
            aws_max_attempts: r.parse("CDF_AWS_MAX_ATTEMPTS", 3, 1..=10),
            api_bind: r.text("CDF_API_BIND").unwrap_or_else(|| "127.0.0.1:3004".into()),
            log_format,
            log_level: r.text("CDF_LOG_LEVEL").unwrap_or_else(|| "info".into()),
        };
        if config.api_bind.parse::<std::net::SocketAddr>().is_err() {
            r.problems.push(format!("CDF_API_BIND={:?} is not an address like 127.0.0.1:3004", config.api_bind));
        }
        if r.problems.is_empty() { Ok(config) } else { Err(ConfigError(r.problems)) }
    }

    /// A variable a subcommand cannot run without.
    pub fn require<'a>(value: &'a Option<String>, var: &str, purpose: &str) -> Result<&'a str, ConfigError> {
        value.as_deref().ok_or_else(|| ConfigError(vec![format!("{var} is required {purpose}")]))
    }

    /// Settings of the application core.
    pub fn app_settings(&self) -> AppSettings {
        AppSettings {
            event_source: self.event_source.clone(),
            lease: self.visibility_timeout,
            record_retention: self.record_retention,
            delete_certificates: self.delete_certificates,
            delete_policies: self.delete_policies,
            conflict_retry: ConflictRetry::default(),
            provision: ProvisionSettings {
                certificate_days: self.certificate_expiry_days,
                mode: self.provisioning_mode,
            },
        }
    }

    /// Settings of the worker loop.
    pub fn worker_settings(&self) -> WorkerSettings {
        WorkerSettings {
            receivers: self.receivers,
            concurrency: self.concurrency,
            wait_time: self.wait_time,
            visibility_timeout: self.visibility_timeout,
            shutdown_grace: self.shutdown_grace,
            max_retry_delay: self.max_retry_delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let c = load(&[]).unwrap();
        assert_eq!(c.receivers, 2);
        assert_eq!(c.concurrency, 16);
        assert_eq!(c.wait_time, Duration::from_secs(20));
        assert_eq!(c.visibility_timeout, Duration::from_secs(60));
        assert!(c.delete_certificates && c.delete_policies);
        assert_eq!(c.log_format, LogFormat::Text);
        assert!(c.command_queue.is_none());
    }

    #[test]
    fn every_bad_value_is_reported_by_name() {
        let err = load(&[
            ("CDF_WAIT_TIME_SECS", "30"),
            ("CDF_CONCURRENCY", "many"),
            ("CDF_DELETE_POLICIES", "maybe"),
            ("CDF_LOG_FORMAT", "xml"),
            ("CDF_API_BIND", "nowhere"),
        ])
        .unwrap_err();
        let text = err.to_string();
        for var in ["CDF_WAIT_TIME_SECS", "CDF_CONCURRENCY", "CDF_DELETE_POLICIES", "CDF_LOG_FORMAT", "CDF_API_BIND"] {
            assert!(text.contains(var), "{var} missing from {text}");
        }
        assert_eq!(err.0.len(), 5);
    }

    #[test]
    fn events_destination_is_sns_for_topic_arns() {
        let c = load(&[("CDF_EVENTS_DESTINATION", "arn:aws:sns:us-east-1:1:topic")]).unwrap();
        assert_eq!(c.events, Some(EventsDestination::Sns("arn:aws:sns:us-east-1:1:topic".into())));
        let c = load(&[("CDF_EVENTS_DESTINATION", "events-queue")]).unwrap();
        assert_eq!(c.events, Some(EventsDestination::Sqs("events-queue".into())));
    }
}
