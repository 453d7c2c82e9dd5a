//! Configuration from environment variables, validated once at startup; a bad value stops
//! the process with a message naming every variable at fault.
//!
//! Each variable and its default are declared once, in [`Config::from_lookup`]. The settings
//! of the core, the worker and the REST facade have no defaults of their own: the composition
//! root ([`crate::wiring`]) derives them from a `Config`, and [`Config::default`] is the
//! configuration of an empty environment. This module knows nothing of the layers that use
//! it. A test checks the table in `docs/configuration.md` against the declared defaults, so
//! the documentation cannot drift either.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::domain::template::ProvisioningMode;
use crate::ports::IotOperation;

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
    /// `CDF_CA_KEY_CACHE_SECS`: how long a CA's private key read for signing is kept in
    /// memory (0: read for every signing).
    pub ca_key_cache: Duration,
    /// `CDF_SECRETS_KMS_KEY`: the KMS key generated private keys are encrypted with (SSE-KMS);
    /// unset: SSE-S3.
    pub secrets_kms_key: Option<String>,
    /// `CDF_CA_KEYS_PREFIX`: key prefix of CA private keys (`<prefix><CA certificate id>.pem`).
    pub ca_keys_prefix: String,
    /// `CDF_ROWS_PREFIX`: key prefix under which bulk rows files (`rowsObject`) must lie.
    pub rows_prefix: String,
    /// `CDF_CA_KEYS_DIR`: read CA private keys from this directory instead of S3.
    pub ca_keys_dir: Option<String>,
    /// `CDF_CERTIFICATE_EXPIRY_DAYS`: validity of certificates signed here by default.
    pub certificate_expiry_days: u32,
    /// `CDF_MAX_CERTIFICATE_DAYS`: the longest validity a request may ask of a certificate
    /// signed here (`certInfo.daysExpiry`).
    pub max_certificate_days: u32,
    /// `CDF_POLICY_ALLOWED_ACTIONS`: the actions a policy made by provisioning may allow
    /// (comma-separated); unset: any.
    pub policy_allowed_actions: Option<Vec<String>>,
    /// `CDF_POLICY_ALLOW_ANY_RESOURCE`: with the list above, whether a policy may allow on
    /// `Resource: "*"`.
    pub policy_allow_any_resource: bool,
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
    /// `CDF_MAX_FAILED_ATTEMPTS`: attempts ending in a failure that may pass later (throttling,
    /// an outage) before the command is given up, compensated and recorded FAILED.
    pub max_failed_attempts: u32,
    /// `CDF_RECORD_RETENTION_DAYS`: how long command records are kept (DynamoDB TTL), counted
    /// from a command's last attempt. Never shorter than `dead_letter_retention`.
    pub record_retention: Duration,
    /// `CDF_DEAD_LETTER_RETENTION_DAYS`: how long the dead-letter queue keeps a message (its
    /// `MessageRetentionPeriod`): a redriven message must still find its command's record.
    pub dead_letter_retention: Duration,
    /// `CDF_STALE_SWEEP_MINS`: how often the worker looks for stale command records (in
    /// progress, lease long expired) and sets `cdf_stale_records`; `None`: never.
    pub stale_sweep_interval: Option<Duration>,
    /// `CDF_DELETE_CERTIFICATES`: `deleteThing` default for certificates.
    pub delete_certificates: bool,
    /// `CDF_DELETE_POLICIES`: `deleteThing` default for policies.
    pub delete_policies: bool,
    /// `CDF_AWS_MAX_ATTEMPTS`: attempts per AWS call (the SDK's own retry).
    pub aws_max_attempts: u32,
    /// `CDF_IOT_RATE_SHARE`: the share of each IoT quota this process may use (1 / the number
    /// of processes calling IoT for the account).
    pub iot_rate_share: f64,
    /// `CDF_IOT_RATE_LIMITS`: per-operation quotas (calls per second) where the account's differ
    /// from AWS's defaults.
    pub iot_rate_limits: BTreeMap<IotOperation, u32>,
    /// `CDF_API_BIND`: address of the REST facade.
    pub api_bind: String,
    /// `CDF_API_TIMEOUT_SECS`: longest a REST request may take.
    pub api_timeout: Duration,
    /// `CDF_API_CORS_ORIGINS`: origins browsers may call the facade from (comma-separated, `*`
    /// for any); CORS is off when unset.
    pub api_cors_origins: Vec<String>,
    /// `CDF_API_BEARER_TOKEN`: when set, REST requests must carry it as a bearer token.
    pub api_bearer_token: Option<std::sync::Arc<crate::domain::secret::Secret>>,
    /// `CDF_API_ADMIN_TOKEN`: when set, template uploads and deletes need it (the admin scope).
    pub api_admin_token: Option<std::sync::Arc<crate::domain::secret::Secret>>,
    /// `CDF_API_INSECURE`: lets the facade serve without a bearer token on an address other
    /// hosts reach (it refuses to by default, and logs a warning when allowed).
    pub api_insecure: bool,
    /// `CDF_API_TEMPLATE_PRECONDITION`: a template upload must carry `If-Match` or
    /// `If-None-Match` (428 otherwise), so that no upload replaces a template blindly.
    pub api_template_precondition: bool,
    /// `CDF_API_READY_CACHE_SECS`: how long `/ready` answers from its last probe (0: every
    /// request probes).
    pub api_ready_cache: Duration,
    /// `CDF_METRICS_BIND`: where the worker serves `/metrics` (not served when unset; the REST
    /// facade always serves it).
    pub metrics_bind: Option<String>,
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

/// An environment variable the service reads, and its default when it has one.
pub type Variable = (&'static str, Option<String>);

struct Reader<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<String>,
    /// Every variable read, with its default when it has one.
    declared: Vec<Variable>,
}

impl Reader<'_> {
    /// An optional variable without a default.
    fn text(&mut self, var: &'static str) -> Option<String> {
        self.declared.push((var, None));
        self.raw(var)
    }

    fn raw(&self, var: &str) -> Option<String> {
        (self.lookup)(var).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
    }

    /// A text variable with a default.
    fn text_or(&mut self, var: &'static str, default: &str) -> String {
        self.declared.push((var, Some(default.to_owned())));
        self.raw(var).unwrap_or_else(|| default.to_owned())
    }

    /// One of `choices` (the first is the default).
    fn choice<T: Copy>(&mut self, var: &'static str, choices: &[(&str, T)]) -> T {
        let (default_name, default) = choices[0];
        self.declared.push((var, Some(default_name.to_owned())));
        match self.raw(var) {
            None => default,
            Some(raw) => choices.iter().find(|(name, _)| *name == raw).map_or_else(
                || {
                    let names: Vec<_> = choices.iter().map(|(name, _)| *name).collect();
                    self.problems.push(format!("{var}={raw:?} is not one of {}", names.join(", ")));
                    default
                },
                |(_, value)| *value,
            ),
        }
    }

    fn parse<T>(&mut self, var: &'static str, default: T, range: std::ops::RangeInclusive<T>) -> T
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        self.declared.push((var, Some(default.to_string())));
        let Some(raw) = self.raw(var) else { return default };
        match raw.parse::<T>() {
            Ok(v) if range.contains(&v) => v,
            _ => {
                self.problems.push(format!("{var}={raw:?} is not a number from {} to {}", range.start(), range.end()));
                default
            }
        }
    }

    /// `Operation=calls per second` pairs, comma-separated.
    fn rates(&mut self, var: &'static str) -> BTreeMap<IotOperation, u32> {
        let mut rates = BTreeMap::new();
        for pair in self.text(var).unwrap_or_default().split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let parsed = pair.split_once('=').and_then(|(op, rate)| {
                Some((op.trim().parse::<IotOperation>().ok()?, rate.trim().parse::<u32>().ok().filter(|r| *r > 0)?))
            });
            match parsed {
                Some((op, rate)) => {
                    rates.insert(op, rate);
                }
                None => self.problems.push(format!(
                    "{var}: {:?} is not Operation=calls per second (an IoT API name, e.g. CreateThing=100)",
                    crate::domain::command::bounded(pair)
                )),
            }
        }
        rates
    }

    fn flag(&mut self, var: &'static str, default: bool) -> bool {
        self.declared.push((var, Some(default.to_string())));
        match self.raw(var).map(|v| v.to_ascii_lowercase()).as_deref() {
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
        Self::read(lookup).0
    }

    /// Every variable the service reads, with its default when it has one.
    pub fn variables() -> Vec<Variable> {
        Self::read(&|_| None).1
    }

    fn read(lookup: &dyn Fn(&str) -> Option<String>) -> (Result<Self, ConfigError>, Vec<Variable>) {
        let mut r = Reader { lookup, problems: Vec::new(), declared: Vec::new() };
        let events = r.text("CDF_EVENTS_DESTINATION").map(|d| {
            if d.starts_with("arn:aws:sns:") || d.starts_with("arn:aws-") && d.contains(":sns:") {
                EventsDestination::Sns(d)
            } else {
                EventsDestination::Sqs(d)
            }
        });
        let log_format = r.choice("CDF_LOG_FORMAT", &[("text", LogFormat::Text), ("json", LogFormat::Json)]);
        let secs = |v: u64| Duration::from_secs(v);
        let config = Self {
            command_queue: r.text("CDF_COMMAND_QUEUE"),
            dead_letter_queue: r.text("CDF_DEAD_LETTER_QUEUE"),
            table: r.text("CDF_TABLE"),
            bucket: r.text("CDF_BUCKET"),
            templates_prefix: r.text_or("CDF_TEMPLATES_PREFIX", "templates/"),
            templates_suffix: r.text_or("CDF_TEMPLATES_SUFFIX", ".json"),
            secrets_prefix: r.text_or("CDF_SECRETS_PREFIX", "secrets/"),
            secrets_kms_key: r.text("CDF_SECRETS_KMS_KEY"),
            ca_key_cache: secs(r.parse("CDF_CA_KEY_CACHE_SECS", 300, 0..=86_400)),
            ca_keys_prefix: r.text_or("CDF_CA_KEYS_PREFIX", "ca-keys/"),
            rows_prefix: r.text_or("CDF_ROWS_PREFIX", "rows/"),
            ca_keys_dir: r.text("CDF_CA_KEYS_DIR"),
            certificate_expiry_days: r.parse("CDF_CERTIFICATE_EXPIRY_DAYS", 365, 1..=36_500),
            max_certificate_days: r.parse("CDF_MAX_CERTIFICATE_DAYS", 3650, 1..=36_500),
            policy_allowed_actions: r
                .text("CDF_POLICY_ALLOWED_ACTIONS")
                .map(|list| list.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned).collect()),
            policy_allow_any_resource: r.flag("CDF_POLICY_ALLOW_ANY_RESOURCE", false),
            provisioning_mode: r.choice(
                "CDF_PROVISIONING_MODE",
                &[("steps", ProvisioningMode::Steps), ("registerThing", ProvisioningMode::RegisterThing)],
            ),
            events,
            event_source: r.text_or("CDF_EVENT_SOURCE", "urn:cdf-provisioning"),
            receivers: r.parse("CDF_RECEIVERS", 2, 1..=64),
            concurrency: r.parse("CDF_CONCURRENCY", 16, 1..=1024),
            wait_time: secs(r.parse("CDF_WAIT_TIME_SECS", 20, 0..=20)),
            visibility_timeout: secs(r.parse("CDF_VISIBILITY_TIMEOUT_SECS", 60, 5..=43_200)),
            shutdown_grace: secs(r.parse("CDF_SHUTDOWN_GRACE_SECS", 25, 0..=3_600)),
            max_retry_delay: secs(r.parse("CDF_MAX_RETRY_DELAY_SECS", 300, 1..=43_200)),
            max_failed_attempts: r.parse("CDF_MAX_FAILED_ATTEMPTS", 5, 1..=100),
            record_retention: secs(r.parse("CDF_RECORD_RETENTION_DAYS", 15, 1..=365) * 86_400),
            // SQS keeps a message 14 days at most.
            dead_letter_retention: secs(r.parse("CDF_DEAD_LETTER_RETENTION_DAYS", 14, 1..=14) * 86_400),
            stale_sweep_interval: Some(r.parse("CDF_STALE_SWEEP_MINS", 0, 0..=1_440))
                .filter(|mins| *mins > 0)
                .map(|mins| secs(mins * 60)),
            delete_certificates: r.flag("CDF_DELETE_CERTIFICATES", true),
            delete_policies: r.flag("CDF_DELETE_POLICIES", true),
            aws_max_attempts: r.parse("CDF_AWS_MAX_ATTEMPTS", 3, 1..=10),
            iot_rate_share: r.parse("CDF_IOT_RATE_SHARE", 1.0, 0.001..=1.0),
            iot_rate_limits: r.rates("CDF_IOT_RATE_LIMITS"),
            api_bind: r.text_or("CDF_API_BIND", "127.0.0.1:3004"),
            api_timeout: secs(r.parse("CDF_API_TIMEOUT_SECS", 30, 1..=900)),
            api_cors_origins: r
                .text("CDF_API_CORS_ORIGINS")
                .map(|o| o.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            api_bearer_token: r
                .text("CDF_API_BEARER_TOKEN")
                .map(|t| std::sync::Arc::new(crate::domain::secret::Secret::new(t))),
            api_admin_token: r
                .text("CDF_API_ADMIN_TOKEN")
                .map(|t| std::sync::Arc::new(crate::domain::secret::Secret::new(t))),
            api_insecure: r.flag("CDF_API_INSECURE", false),
            api_template_precondition: r.flag("CDF_API_TEMPLATE_PRECONDITION", false),
            api_ready_cache: secs(r.parse("CDF_API_READY_CACHE_SECS", 5, 0..=300)),
            metrics_bind: r.text("CDF_METRICS_BIND"),
            log_format,
            log_level: r.text_or("CDF_LOG_LEVEL", "info"),
        };
        if let Some(bind) = &config.metrics_bind
            && bind.parse::<std::net::SocketAddr>().is_err()
        {
            r.problems.push(format!("CDF_METRICS_BIND={bind:?} is not an address like 0.0.0.0:9464"));
        }
        if config.certificate_expiry_days > config.max_certificate_days {
            r.problems.push(format!(
                "CDF_CERTIFICATE_EXPIRY_DAYS={} is above CDF_MAX_CERTIFICATE_DAYS={}",
                config.certificate_expiry_days, config.max_certificate_days
            ));
        }
        if config.record_retention < config.dead_letter_retention {
            // A redrive after the record expired would meet a fresh record and run again.
            r.problems.push(format!(
                "CDF_RECORD_RETENTION_DAYS={} is shorter than CDF_DEAD_LETTER_RETENTION_DAYS={}: a command \
                 redriven from the dead-letter queue would run a second time",
                config.record_retention.as_secs() / 86_400,
                config.dead_letter_retention.as_secs() / 86_400
            ));
        }
        if config.api_bind.parse::<std::net::SocketAddr>().is_err() {
            r.problems.push(format!("CDF_API_BIND={:?} is not an address like 127.0.0.1:3004", config.api_bind));
        }
        let result = if r.problems.is_empty() { Ok(config) } else { Err(ConfigError(r.problems)) };
        (result, r.declared)
    }

    /// A variable a subcommand cannot run without.
    pub fn require<'a>(value: &'a Option<String>, var: &str, purpose: &str) -> Result<&'a str, ConfigError> {
        value.as_deref().ok_or_else(|| ConfigError(vec![format!("{var} is required {purpose}")]))
    }
}

impl Default for Config {
    /// The configuration of an empty environment: every default, nothing required set.
    fn default() -> Self {
        Self::from_lookup(&|_| None).expect("the defaults are valid")
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
    fn the_default_certificate_validity_may_not_exceed_the_maximum() {
        let err = load(&[("CDF_CERTIFICATE_EXPIRY_DAYS", "400"), ("CDF_MAX_CERTIFICATE_DAYS", "397")]).unwrap_err();
        assert!(err.to_string().contains("CDF_MAX_CERTIFICATE_DAYS=397"), "{err}");
        let c = load(&[("CDF_MAX_CERTIFICATE_DAYS", "397")]).unwrap();
        assert_eq!((c.certificate_expiry_days, c.max_certificate_days), (365, 397));
        assert_eq!(Config::default().max_certificate_days, 3650);
        assert_eq!(Config::default().api_ready_cache, Duration::from_secs(5));
    }

    #[test]
    fn records_are_kept_at_least_as_long_as_dead_lettered_messages() {
        let c = Config::default();
        assert_eq!(c.record_retention, Duration::from_secs(15 * 86_400));
        assert_eq!(c.dead_letter_retention, Duration::from_secs(14 * 86_400));
        assert_eq!(c.stale_sweep_interval, None);
        let err = load(&[("CDF_RECORD_RETENTION_DAYS", "7")]).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(
            err.0[0].contains("CDF_RECORD_RETENTION_DAYS=7") && err.0[0].contains("CDF_DEAD_LETTER_RETENTION_DAYS=14")
        );
        let c = load(&[("CDF_RECORD_RETENTION_DAYS", "7"), ("CDF_DEAD_LETTER_RETENTION_DAYS", "7")]).unwrap();
        assert_eq!(c.record_retention, c.dead_letter_retention);
        assert!(load(&[("CDF_DEAD_LETTER_RETENTION_DAYS", "15")]).is_err(), "SQS keeps messages 14 days at most");
        let c = load(&[("CDF_STALE_SWEEP_MINS", "10")]).unwrap();
        assert_eq!(c.stale_sweep_interval, Some(Duration::from_secs(600)));
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
    fn the_readme_documents_every_variable_with_its_default() {
        let readme = include_str!("../docs/configuration.md");
        let rows: HashMap<&str, &str> = readme
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let var = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                var.starts_with("CDF_").then(|| (var, *cells.get(2).unwrap_or(&"")))
            })
            .collect();
        for (var, default) in Config::variables() {
            let documented = rows.get(var).unwrap_or_else(|| panic!("{var} is missing from docs/configuration.md"));
            if let Some(default) = default {
                assert_eq!(*documented, format!("`{default}`"), "documented default of {var}");
            }
        }
        assert_eq!(rows.len(), Config::variables().len(), "docs/configuration.md lists variables not read");
    }

    #[test]
    fn iot_rates_are_read_by_operation_name() {
        let c = load(&[("CDF_IOT_RATE_LIMITS", "CreateThing=50, AttachPolicy=100"), ("CDF_IOT_RATE_SHARE", "0.5")])
            .unwrap();
        assert_eq!(c.iot_rate_limits.get(&IotOperation::CreateThing), Some(&50));
        assert_eq!(c.iot_rate_limits.len(), 2);
        assert!((c.iot_rate_share - 0.5).abs() < f64::EPSILON);
        let err = load(&[("CDF_IOT_RATE_LIMITS", "CreateThings=5,AttachPolicy=0")]).unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn events_destination_is_sns_for_topic_arns() {
        let c = load(&[("CDF_EVENTS_DESTINATION", "arn:aws:sns:us-east-1:1:topic")]).unwrap();
        assert_eq!(c.events, Some(EventsDestination::Sns("arn:aws:sns:us-east-1:1:topic".into())));
        let c = load(&[("CDF_EVENTS_DESTINATION", "events-queue")]).unwrap();
        assert_eq!(c.events, Some(EventsDestination::Sqs("events-queue".into())));
    }
}
