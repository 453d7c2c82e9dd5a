//! An in-memory IoT registry: things, certificates, policies, groups and their attachments,
//! with IoT's refusals (deleting an attached thing, an ACTIVE certificate, a policy in use,
//! re-activating a revoked certificate) so that the use cases meet them in tests.

mod certificates;
mod policies;
mod registration;
mod things;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use super::Faults;
use crate::domain::registry::{CertificateInfo, GroupInfo, IssuedCertificate, PolicyInfo, ThingInfo};
use crate::domain::secret::Secret;
use crate::domain::{Arn, CertificateId, CertificateStatus, Timestamp};
use crate::ports::{Clock, ErrorKind, IotOperation, PortError, SystemClock};

/// The IoT operations of the fake, for failure injection and call counts.
pub type IotOp = IotOperation;

const ARN_PREFIX: &str = "arn:aws:iot:us-east-1:123456789012";

#[derive(Debug, Default)]
struct Registry {
    things: BTreeMap<String, ThingInfo>,
    certificates: BTreeMap<String, CertificateInfo>,
    policies: BTreeMap<String, PolicyInfo>,
    groups: BTreeMap<String, GroupInfo>,
    /// (thing, principal ARN)
    thing_principals: BTreeSet<(String, String)>,
    /// (policy, target ARN)
    policy_targets: BTreeSet<(String, String)>,
    /// (thing, group)
    memberships: BTreeSet<(String, String)>,
    thing_types: BTreeSet<String>,
    billing_groups: BTreeSet<String>,
    /// (thing, billing group)
    billing: BTreeSet<(String, String)>,
    /// CA certificate id → PEM
    cas: BTreeMap<String, String>,
    /// RegisterThing calls: (template body, parameters)
    registered: Vec<(String, BTreeMap<String, String>)>,
    next_id: u64,
}

impl Registry {
    fn new_certificate(&mut self, id: Option<String>, pem: String, active: bool, now: Timestamp) -> IssuedCertificate {
        self.next_id += 1;
        let id = id.unwrap_or_else(|| format!("{:064x}", self.next_id));
        let arn = format!("{ARN_PREFIX}:cert/{id}");
        let status = if active { CertificateStatus::Active } else { CertificateStatus::Inactive };
        let issued =
            IssuedCertificate { certificate_id: CertificateId::new(&id), arn: Arn::new(arn), certificate_pem: pem };
        self.certificates.insert(
            id,
            CertificateInfo {
                certificate_id: issued.certificate_id.clone(),
                arn: issued.arn.clone(),
                certificate_status: status,
                certificate_pem: Some(issued.certificate_pem.clone()),
                created_at: Some(now),
            },
        );
        issued
    }
}

/// The fake registry.
pub struct MemoryRegistry {
    inner: Mutex<Registry>,
    /// Failure injection, by IoT operation.
    pub faults: Faults<IotOp>,
    /// The CA that signs CSRs, made once.
    ca: std::sync::OnceLock<(String, Secret)>,
    /// Creation times of certificates.
    clock: Arc<dyn Clock>,
    /// AWS's quotas, when the fake plays them: a call beyond its operation's rate is throttled.
    quotas: Mutex<Option<Arc<crate::adapters::rate_limited::RateLimits>>>,
    /// Calls answered with a throttle, by operation.
    throttled: Mutex<BTreeMap<IotOp, u64>>,
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl std::fmt::Debug for MemoryRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRegistry").field("inner", &self.inner).finish_non_exhaustive()
    }
}

fn not_found(op: IotOp, what: &str) -> PortError {
    PortError::new(ErrorKind::NotFound, op.into(), format!("{what} does not exist"))
}

impl MemoryRegistry {
    /// A registry that stamps certificates with `clock`'s time.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Mutex::default(),
            faults: Faults::default(),
            ca: std::sync::OnceLock::new(),
            clock,
            quotas: Mutex::default(),
            throttled: Mutex::default(),
        }
    }

    /// Plays AWS's per-operation quotas: from now on a call beyond its operation's rate (these
    /// buckets) is answered `Throttled`, as IoT answers `ThrottlingException`.
    pub fn throttle_at(&self, quotas: Arc<crate::adapters::rate_limited::RateLimits>) {
        *self.quotas.lock().expect("quotas lock") = Some(quotas);
    }

    /// How many calls of `op` were throttled (all operations when `None`).
    pub fn throttled(&self, op: Option<IotOp>) -> u64 {
        let counts = self.throttled.lock().expect("throttle counts lock");
        match op {
            Some(op) => counts.get(&op).copied().unwrap_or(0),
            None => counts.values().sum(),
        }
    }

    /// Every call's entry: the planned faults, then the quota.
    async fn enter(&self, op: IotOp) -> Result<(), PortError> {
        self.faults.enter(op).await?;
        let quotas = self.quotas.lock().expect("quotas lock").clone();
        if let Some(quotas) = quotas
            && !quotas.try_acquire(op)
        {
            *self.throttled.lock().expect("throttle counts lock").entry(op).or_default() += 1;
            return Err(PortError::new(ErrorKind::Throttled, op.into(), "Rate exceeded"));
        }
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.inner.lock().expect("registry lock"))
    }

    /// Creates a thing.
    pub fn add_thing(&self, name: &str, thing_type: Option<&str>, attributes: &[(&str, &str)]) -> String {
        self.with(|r| {
            let arn = format!("{ARN_PREFIX}:thing/{name}");
            r.things.insert(
                name.to_owned(),
                ThingInfo {
                    thing_name: name.to_owned(),
                    arn: arn.clone(),
                    thing_type: thing_type.map(str::to_owned),
                    attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                },
            );
            arn
        })
    }

    /// Creates a certificate; returns its ARN.
    pub fn add_certificate(&self, status: CertificateStatus) -> String {
        let now = self.clock.now();
        self.with(|r| {
            r.next_id += 1;
            let id = format!("{:064x}", r.next_id);
            let arn = format!("{ARN_PREFIX}:cert/{id}");
            r.certificates.insert(
                id.clone(),
                CertificateInfo {
                    certificate_id: CertificateId::new(id),
                    arn: Arn::new(&arn),
                    certificate_status: status,
                    certificate_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
                    created_at: Some(now),
                },
            );
            arn
        })
    }

    /// Creates a policy.
    pub fn add_policy(&self, name: &str) {
        self.with(|r| {
            r.policies.insert(
                name.to_owned(),
                PolicyInfo {
                    policy_name: name.to_owned(),
                    arn: format!("{ARN_PREFIX}:policy/{name}"),
                    policy_document: Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into()),
                },
            );
        });
    }

    /// Creates a thing group.
    pub fn add_group(&self, name: &str, attributes: &[(&str, &str)]) {
        self.with(|r| {
            r.groups.insert(
                name.to_owned(),
                GroupInfo {
                    group_name: name.to_owned(),
                    arn: format!("{ARN_PREFIX}:thinggroup/{name}"),
                    attributes: attributes.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                },
            );
        });
    }

    /// Attaches a principal to a thing.
    pub fn attach_thing_principal(&self, thing: &str, principal: &str) {
        self.with(|r| r.thing_principals.insert((thing.to_owned(), principal.to_owned())));
    }

    /// Attaches a policy to a target.
    pub fn attach_policy(&self, policy: &str, target: &str) {
        self.with(|r| r.policy_targets.insert((policy.to_owned(), target.to_owned())));
    }

    /// Adds a thing to a group.
    pub fn add_thing_to_group(&self, thing: &str, group: &str) {
        self.with(|r| r.memberships.insert((thing.to_owned(), group.to_owned())));
    }

    /// Creates a thing type.
    pub fn add_thing_type(&self, name: &str) {
        self.with(|r| r.thing_types.insert(name.to_owned()));
    }

    /// Creates a billing group.
    pub fn add_billing_group(&self, name: &str) {
        self.with(|r| r.billing_groups.insert(name.to_owned()));
    }

    /// Registers a CA certificate under `id`.
    pub fn add_ca(&self, id: &str, pem: &str) {
        self.with(|r| r.cas.insert(id.to_owned(), pem.to_owned()));
    }

    /// Every RegisterThing call: (template body, parameters).
    pub fn register_thing_calls(&self) -> Vec<(String, BTreeMap<String, String>)> {
        self.with(|r| r.registered.clone())
    }

    /// Every certificate, for assertions.
    pub fn certificates(&self) -> Vec<CertificateInfo> {
        self.with(|r| r.certificates.values().cloned().collect())
    }

    /// A thing as stored.
    pub fn thing(&self, name: &str) -> Option<ThingInfo> {
        self.with(|r| r.things.get(name).cloned())
    }

    /// The groups a thing belongs to.
    pub fn groups_of(&self, thing: &str) -> Vec<String> {
        self.with(|r| r.memberships.iter().filter(|(t, _)| t == thing).map(|(_, g)| g.clone()).collect())
    }

    /// The principals attached to a thing.
    pub fn principals_of(&self, thing: &str) -> Vec<String> {
        self.with(|r| r.thing_principals.iter().filter(|(t, _)| t == thing).map(|(_, p)| p.clone()).collect())
    }

    /// The policies attached to a target.
    pub fn policies_of(&self, target: &str) -> Vec<String> {
        self.with(|r| r.policy_targets.iter().filter(|(_, t)| t == target).map(|(p, _)| p.clone()).collect())
    }

    /// Whether a thing exists.
    pub fn has_thing(&self, name: &str) -> bool {
        self.with(|r| r.things.contains_key(name))
    }

    /// Whether a policy exists.
    pub fn has_policy(&self, name: &str) -> bool {
        self.with(|r| r.policies.contains_key(name))
    }

    /// A certificate's status, if it exists.
    pub fn certificate_status(&self, arn: &str) -> Option<CertificateStatus> {
        let id = arn.rsplit('/').next().unwrap_or_default().to_owned();
        self.with(|r| r.certificates.get(&id).map(|c| c.certificate_status))
    }
}
