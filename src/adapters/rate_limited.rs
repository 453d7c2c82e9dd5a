//! Client-side rate limits on the IoT registry, wrapped around any [`DeviceRegistry`]: every
//! call waits for a token of its operation's bucket, so that the workers stay within AWS IoT's per-operation quotas instead
//! of being throttled (a throttled bulk row is retried, but retries cost time and deliveries).
//!
//! One [`RateLimits`] serves every command of a process. The quotas are per account, so each
//! process takes its share of them (`CDF_IOT_RATE_SHARE`, 1 / the number of worker processes).
//! A paginated list counts as one call: its pages are few and the list quotas are generous
//! next to the calls that make devices.
//!
//! A call IoT throttles anyway (another client of the account, a lower quota than configured)
//! is repeated here after a short jittered pause, inside the command's attempt: a throttled
//! call did not run, so repeating it is safe even for the calls that create certificates, and
//! far cheaper than sending the whole command back to the queue.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;

use async_trait::async_trait;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::sync::Arc;

use crate::app::RetrySchedule;
use crate::domain::registry::{CertificateInfo, GroupInfo, IssuedCertificate, PolicyInfo, Registration, ThingInfo};
use crate::domain::{Arn, CertificateId, CertificateStatus, ThingName, Timestamp};
use crate::ports::{
    AwsGeneratedKey, Certificates, DeviceRegistry, ErrorKind, IotOperation, NewThing, Policies, PortError,
    ThingRegistration, Things,
};

/// One token bucket per IoT operation.
pub struct RateLimits {
    buckets: HashMap<IotOperation, DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").field("operations", &self.buckets.len()).finish()
    }
}

impl RateLimits {
    /// Buckets at `share` (0 to 1) of each operation's rate: AWS's default quota, or the
    /// override in `rates` (calls per second).
    pub fn new(share: f64, rates: &BTreeMap<IotOperation, u32>) -> Self {
        let buckets = IotOperation::ALL
            .iter()
            .map(|&op| {
                let full = rates.get(&op).copied().unwrap_or_else(|| op.default_rate());
                // At least one call a second, whatever the share: a process never stalls.
                let mine = (f64::from(full) * share.clamp(0.0, 1.0)).floor();
                let per_second = NonZeroU32::new(mine as u32).unwrap_or(NonZeroU32::MIN);
                // A burst of one second's worth at most: the quota is a rate, not a reserve.
                (op, RateLimiter::direct(Quota::per_second(per_second)))
            })
            .collect();
        Self { buckets }
    }

    /// Takes a token of `op` if one is there now (what a server enforcing the quota does).
    pub fn try_acquire(&self, op: IotOperation) -> bool {
        self.buckets.get(&op).is_none_or(|bucket| bucket.check().is_ok())
    }

    /// Waits until `op` may be called.
    pub async fn acquire(&self, op: IotOperation) {
        if let Some(bucket) = self.buckets.get(&op) {
            bucket.until_ready().await;
        }
    }
}

/// A registry whose calls wait for their operation's token first, and are repeated when IoT
/// throttles them all the same.
pub struct RateLimitedRegistry {
    inner: Arc<dyn DeviceRegistry>,
    limits: Arc<RateLimits>,
    retry: RetrySchedule,
}

impl RateLimitedRegistry {
    /// Limits `inner` with `limits`, repeating throttled calls as [`RetrySchedule::THROTTLING`].
    pub fn new(inner: Arc<dyn DeviceRegistry>, limits: Arc<RateLimits>) -> Self {
        Self { inner, limits, retry: RetrySchedule::THROTTLING }
    }

    /// The same with another schedule of repeats.
    #[must_use]
    pub fn with_retry(mut self, retry: RetrySchedule) -> Self {
        self.retry = retry;
        self
    }

    /// Calls `call` once `op`'s token is there; a throttled call takes a new token and goes
    /// again after a pause, until it passes or the repeats run out.
    async fn call<T, F, Fut>(&self, op: IotOperation, mut call: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        let attempt = || {
            let next = call();
            async move {
                self.limits.acquire(op).await;
                next.await
            }
        };
        self.retry.run_while(ErrorKind::Throttled, attempt).await
    }
}

impl std::fmt::Debug for RateLimitedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitedRegistry").field("limits", &self.limits).finish_non_exhaustive()
    }
}

#[async_trait]
impl Things for RateLimitedRegistry {
    async fn describe_thing(&self, thing: &ThingName) -> Result<ThingInfo, PortError> {
        self.call(IotOperation::DescribeThing, || self.inner.describe_thing(thing)).await
    }

    async fn create_thing(&self, thing: &NewThing) -> Result<String, PortError> {
        self.call(IotOperation::CreateThing, || self.inner.create_thing(thing)).await
    }

    async fn update_thing(
        &self,
        thing: &ThingName,
        thing_type: Option<&str>,
        attributes: &BTreeMap<String, String>,
        merge: bool,
    ) -> Result<(), PortError> {
        self.call(IotOperation::UpdateThing, || self.inner.update_thing(thing, thing_type, attributes, merge)).await
    }

    async fn delete_thing(&self, thing: &ThingName) -> Result<(), PortError> {
        self.call(IotOperation::DeleteThing, || self.inner.delete_thing(thing)).await
    }

    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<Arn>, PortError> {
        self.call(IotOperation::ListThingPrincipals, || self.inner.list_thing_principals(thing)).await
    }

    async fn list_principal_things(&self, principal: &Arn) -> Result<Vec<String>, PortError> {
        self.call(IotOperation::ListPrincipalThings, || self.inner.list_principal_things(principal)).await
    }

    async fn attach_thing_principal(&self, thing: &ThingName, principal: &Arn) -> Result<(), PortError> {
        self.call(IotOperation::AttachThingPrincipal, || self.inner.attach_thing_principal(thing, principal)).await
    }

    async fn detach_thing_principal(&self, thing: &ThingName, principal: &Arn) -> Result<(), PortError> {
        self.call(IotOperation::DetachThingPrincipal, || self.inner.detach_thing_principal(thing, principal)).await
    }

    async fn list_thing_groups_for_thing(&self, thing: &ThingName) -> Result<Vec<String>, PortError> {
        self.call(IotOperation::ListThingGroupsForThing, || self.inner.list_thing_groups_for_thing(thing)).await
    }

    async fn describe_thing_group(&self, group: &str) -> Result<GroupInfo, PortError> {
        self.call(IotOperation::DescribeThingGroup, || self.inner.describe_thing_group(group)).await
    }

    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.call(IotOperation::AddThingToThingGroup, || self.inner.add_thing_to_thing_group(thing, group)).await
    }

    async fn remove_thing_from_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.call(IotOperation::RemoveThingFromThingGroup, || self.inner.remove_thing_from_thing_group(thing, group))
            .await
    }

    async fn add_thing_to_billing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.call(IotOperation::AddThingToBillingGroup, || self.inner.add_thing_to_billing_group(thing, group)).await
    }
}

#[async_trait]
impl Certificates for RateLimitedRegistry {
    async fn describe_certificate(&self, id: &CertificateId) -> Result<CertificateInfo, PortError> {
        self.call(IotOperation::DescribeCertificate, || self.inner.describe_certificate(id)).await
    }

    async fn update_certificate_status(&self, id: &CertificateId, status: CertificateStatus) -> Result<(), PortError> {
        self.call(IotOperation::UpdateCertificate, || self.inner.update_certificate_status(id, status)).await
    }

    async fn delete_certificate(&self, id: &CertificateId) -> Result<(), PortError> {
        self.call(IotOperation::DeleteCertificate, || self.inner.delete_certificate(id)).await
    }

    async fn create_certificate_from_csr(&self, csr_pem: &str, active: bool) -> Result<IssuedCertificate, PortError> {
        self.call(IotOperation::CreateCertificateFromCsr, || self.inner.create_certificate_from_csr(csr_pem, active))
            .await
    }

    async fn create_keys_and_certificate(&self, active: bool) -> Result<AwsGeneratedKey, PortError> {
        self.call(IotOperation::CreateKeysAndCertificate, || self.inner.create_keys_and_certificate(active)).await
    }

    async fn register_certificate(
        &self,
        certificate_pem: &str,
        ca_certificate_pem: Option<&str>,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        self.call(IotOperation::RegisterCertificate, || {
            self.inner.register_certificate(certificate_pem, ca_certificate_pem, active)
        })
        .await
    }

    async fn register_certificate_without_ca(
        &self,
        certificate_pem: &str,
        active: bool,
    ) -> Result<IssuedCertificate, PortError> {
        self.call(IotOperation::RegisterCertificateWithoutCA, || {
            self.inner.register_certificate_without_ca(certificate_pem, active)
        })
        .await
    }

    async fn ca_certificate_pem(&self, ca_certificate_id: &str) -> Result<String, PortError> {
        self.call(IotOperation::DescribeCACertificate, || self.inner.ca_certificate_pem(ca_certificate_id)).await
    }

    async fn recent_inactive_certificates(&self, since: Timestamp) -> Result<Vec<CertificateInfo>, PortError> {
        self.call(IotOperation::ListCertificates, || self.inner.recent_inactive_certificates(since)).await
    }
}

#[async_trait]
impl Policies for RateLimitedRegistry {
    async fn get_policy(&self, policy: &str) -> Result<PolicyInfo, PortError> {
        self.call(IotOperation::GetPolicy, || self.inner.get_policy(policy)).await
    }

    async fn create_policy(&self, policy: &str, document: &str) -> Result<(), PortError> {
        self.call(IotOperation::CreatePolicy, || self.inner.create_policy(policy, document)).await
    }

    async fn delete_policy(&self, policy: &str) -> Result<(), PortError> {
        self.call(IotOperation::DeletePolicy, || self.inner.delete_policy(policy)).await
    }

    async fn attach_policy(&self, policy: &str, target: &Arn) -> Result<(), PortError> {
        self.call(IotOperation::AttachPolicy, || self.inner.attach_policy(policy, target)).await
    }

    async fn detach_policy(&self, policy: &str, target: &Arn) -> Result<(), PortError> {
        self.call(IotOperation::DetachPolicy, || self.inner.detach_policy(policy, target)).await
    }

    async fn list_attached_policies(&self, target: &Arn) -> Result<Vec<String>, PortError> {
        self.call(IotOperation::ListAttachedPolicies, || self.inner.list_attached_policies(target)).await
    }

    async fn list_policy_targets(&self, policy: &str) -> Result<Vec<Arn>, PortError> {
        self.call(IotOperation::ListTargetsForPolicy, || self.inner.list_policy_targets(policy)).await
    }
}

#[async_trait]
impl ThingRegistration for RateLimitedRegistry {
    async fn register_thing(
        &self,
        template_body: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Registration, PortError> {
        self.call(IotOperation::RegisterThing, || self.inner.register_thing(template_body, parameters)).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::adapters::memory::MemoryRegistry;

    #[tokio::test]
    async fn calls_beyond_the_rate_wait_for_their_token() {
        let limits = RateLimits::new(1.0, &BTreeMap::from([(IotOperation::CreateThing, 40)]));
        let started = Instant::now();
        // A second's burst goes at once; the next 20 wait half a second at 40 a second.
        for _ in 0..60 {
            limits.acquire(IotOperation::CreateThing).await;
        }
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(450) && took < Duration::from_secs(3), "{took:?}");
        // Another operation's bucket is untouched.
        let other = Instant::now();
        limits.acquire(IotOperation::DescribeThing).await;
        assert!(other.elapsed() < Duration::from_millis(50));
    }

    fn limited(faults: impl FnOnce(&MemoryRegistry)) -> (Arc<MemoryRegistry>, RateLimitedRegistry) {
        let memory = Arc::new(MemoryRegistry::default());
        faults(&memory);
        let retry = RetrySchedule {
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_retries: 3,
        };
        let limits = Arc::new(RateLimits::new(1.0, &BTreeMap::new()));
        (memory.clone(), RateLimitedRegistry::new(memory, limits).with_retry(retry))
    }

    #[tokio::test]
    async fn a_throttled_call_is_repeated_even_when_it_makes_a_certificate() {
        let (memory, registry) =
            limited(|m| m.faults.fail_next(IotOperation::CreateKeysAndCertificate, ErrorKind::Throttled, 3));
        registry.create_keys_and_certificate(true).await.expect("the fourth call passes");
        assert_eq!(memory.faults.count(IotOperation::CreateKeysAndCertificate), 4);
        assert_eq!(memory.certificates().len(), 1, "throttled calls made nothing");
    }

    #[tokio::test]
    async fn throttling_beyond_the_repeats_is_left_to_the_command() {
        let (memory, registry) = limited(|m| m.faults.fail_next(IotOperation::DescribeThing, ErrorKind::Throttled, 4));
        let err = registry.describe_thing(&ThingName::parse("t1").unwrap()).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Throttled);
        assert_eq!(memory.faults.count(IotOperation::DescribeThing), 4, "the call and three repeats");
    }

    #[tokio::test]
    async fn other_failures_are_not_repeated() {
        let (memory, registry) =
            limited(|m| m.faults.fail_next(IotOperation::CreateKeysAndCertificate, ErrorKind::Transient, 1));
        let err = registry.create_keys_and_certificate(true).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transient, "a timeout may have made a certificate: never repeated blindly");
        assert_eq!(memory.faults.count(IotOperation::CreateKeysAndCertificate), 1);
    }

    #[test]
    fn a_share_divides_every_quota_but_never_to_nothing() {
        assert_eq!(IotOperation::CreateCertificateFromCsr.default_rate(), 15);
        let limits = RateLimits::new(0.01, &BTreeMap::new());
        assert_eq!(limits.buckets.len(), IotOperation::ALL.len());
    }
}
