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
use crate::app::{AppSettings, RetrySchedule};
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
}
