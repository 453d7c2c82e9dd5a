//! The composition root's settings: what the core ([`AppSettings`]), the worker loop
//! ([`WorkerSettings`]) and the REST facade ([`ApiSettings`]) are given, derived from a
//! validated [`Config`].
//!
//! The ports are wired once per backend, next to the adapters they pick
//! ([`crate::adapters::aws::ports`] for the product, [`crate::adapters::memory::MemoryPorts`]
//! for the fast tests and the benches). The settings are not tied to a backend: the product,
//! the in-memory fixtures and the benches all derive theirs from a `Config` here (the tests
//! from [`Config::default`], adjusting what they must), so they live in neither adapter. They
//! do not live in [`config`](crate::config) either, which sits below every layer and imports
//! none of them, nor in the command line, which is one entry point among several (tests,
//! benches) that need them.

use std::time::Duration;

use crate::api::ApiSettings;
use crate::app::provision::ProvisionSettings;
use crate::app::{AppSettings, RetrySchedule, sweep};
use crate::config::Config;
use crate::domain::template::policy_allow::PolicyAllowList;
use crate::worker::WorkerSettings;

/// Settings of the application core.
pub fn app_settings(config: &Config) -> AppSettings {
    AppSettings {
        event_source: config.event_source.clone(),
        // A little shorter than the message's invisibility, so that a message coming back
        // after a crash finds its lease expired, instead of spending a delivery on waiting.
        lease: config.visibility_timeout - (config.visibility_timeout / 10).max(Duration::from_secs(1)),
        record_retention: config.record_retention,
        delete_certificates: config.delete_certificates,
        delete_policies: config.delete_policies,
        conflict_retry: RetrySchedule::CONFLICTS,
        max_failed_attempts: config.max_failed_attempts,
        provision: ProvisionSettings {
            certificate_days: config.certificate_expiry_days,
            max_certificate_days: config.max_certificate_days,
            policy_allow: config.policy_allowed_actions.as_ref().map(|actions| {
                PolicyAllowList::new(actions.iter().map(String::as_str), config.policy_allow_any_resource)
            }),
            mode: config.provisioning_mode,
        },
        rows_prefix: config.rows_prefix.clone(),
    }
}

/// The queue's deliveries assumed when its redrive policy does not say (the stack's
/// `MaxReceiveCount` default).
pub const ASSUMED_MAX_DELIVERIES: u32 = 20;

/// How long after its lease expired a command record in progress is reported stale: longer
/// than every delivery of its message could take ([`sweep::stale_after`]). `max_deliveries`
/// is the command queue's `maxReceiveCount`, [`ASSUMED_MAX_DELIVERIES`] when unknown.
pub fn stale_after(config: &Config, max_deliveries: Option<u32>) -> Duration {
    sweep::stale_after(
        config.visibility_timeout,
        config.max_retry_delay,
        max_deliveries.unwrap_or(ASSUMED_MAX_DELIVERIES),
    )
}

/// Settings of the REST facade's guards.
pub fn api_settings(config: &Config) -> ApiSettings {
    ApiSettings {
        request_timeout: config.api_timeout,
        cors_origins: config.api_cors_origins.clone(),
        bearer_token: config.api_bearer_token.clone(),
        admin_token: config.api_admin_token.clone(),
        template_precondition: config.api_template_precondition,
        ready_cache: config.api_ready_cache,
        loopback_port: None,
    }
}

/// Settings of the worker loop.
pub fn worker_settings(config: &Config) -> WorkerSettings {
    WorkerSettings {
        receivers: config.receivers,
        concurrency: config.concurrency,
        wait_time: config.wait_time,
        visibility_timeout: config.visibility_timeout,
        shutdown_grace: config.shutdown_grace,
        max_retry_delay: config.max_retry_delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Config {
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_lookup(&move |k| vars.iter().find(|(var, _)| var == k).map(|(_, v)| v.clone())).unwrap()
    }

    #[test]
    fn a_lease_ends_before_its_message_becomes_visible_again() {
        for secs in ["5", "60", "900"] {
            let c = load(&[("CDF_VISIBILITY_TIMEOUT_SECS", secs)]);
            let lease = app_settings(&c).lease;
            assert!(lease < c.visibility_timeout && lease >= c.visibility_timeout * 8 / 10, "{secs}: {lease:?}");
        }
    }

    #[test]
    fn a_record_is_stale_once_every_delivery_of_its_message_could_have_come() {
        let c = Config::default();
        assert_eq!(stale_after(&c, Some(20)), Duration::from_secs(300 * 20), "the retry backoff, 20 times");
        assert_eq!(stale_after(&c, None), stale_after(&c, Some(ASSUMED_MAX_DELIVERIES)));
        let c = load(&[("CDF_VISIBILITY_TIMEOUT_SECS", "900")]);
        assert_eq!(stale_after(&c, Some(3)), Duration::from_secs(2_700));
    }
}
