//! `provisionThing`: load the template, plan it (every template error reported before any
//! AWS call), then make the resources step by step with IoT's primitive APIs, checkpointing
//! each step so that a crash or redelivery resumes instead of making a second certificate.
//!
//! Certificates are created INACTIVE and activated as the very last step, so a device is never
//! half-provisioned with a live certificate, and a plan that fails permanently is compensated:
//! what this command made is detached and deleted again.

use std::collections::BTreeMap;

use super::progress::Progress;
use crate::crypto::{self, Secret};
use crate::domain::checkpoint::{
    CertificateRequested, CertificateStep, Checkpoint, KeyStep, PolicyStep, Registration, ThingStep,
};
pub use crate::domain::command::ProvisionRequest;
pub use crate::domain::result::{ProvisionResult, ResourceArns};
use crate::domain::template::plan::{CertificateSource, InitialStatus, Override, Plan, ThingSpec};
use crate::domain::template::{Culprit, Template, TemplateError};
use crate::domain::{Arn, CertificateId, CertificateStatus, CommandError, ErrorCode, ThingName};
use crate::ports::{
    AwsGeneratedKey, CaKeyStore, Clock, DeviceRegistry, ErrorKind, IssuedCertificate, NewThing, PortError, SecretSink,
    TemplateStore,
};

/// How templates are executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProvisioningMode {
    /// Evaluated here, executed with IoT's step APIs, checkpointed (the default).
    #[default]
    Steps,
    /// Validated here, then handed to `iot:RegisterThing` for AWS's own evaluation (CDF's
    /// way; 10 TPS, and a crash mid-call cannot be resumed step by step).
    RegisterThing,
}

/// Deployment settings of provisioning.
#[derive(Debug, Clone)]
pub struct ProvisionSettings {
    /// Validity of certificates signed here when `certInfo.daysExpiry` is absent (365).
    pub certificate_days: u32,
    /// Execution mode.
    pub mode: ProvisioningMode,
}

impl Default for ProvisionSettings {
    fn default() -> Self {
        Self { certificate_days: 365, mode: ProvisioningMode::default() }
    }
}

/// What provisioning needs.
pub struct Provisioner<'a> {
    /// IoT.
    pub registry: &'a dyn DeviceRegistry,
    /// Templates.
    pub templates: &'a dyn TemplateStore,
    /// Where generated keys go.
    pub secrets: &'a dyn SecretSink,
    /// CA keys for `createDeviceCertificate`.
    pub ca_keys: &'a dyn CaKeyStore,
    /// Settings.
    pub settings: &'a ProvisionSettings,
    /// Time (certificate validity, the adoption window).
    pub clock: &'a dyn Clock,
}

/// A provisioned device: the result, and the private key for callers that return it inline.
#[derive(Debug)]
pub struct Provisioned {
    /// The result document.
    pub result: ProvisionResult,
    /// The key made here or by AWS, if any.
    pub private_key: Option<Secret>,
}

#[allow(clippy::needless_pass_by_value)] // used as `.map_err(fail)`
fn fail(e: PortError) -> CommandError {
    e.to_command_error()
}

/// Parses and plans a request against a template text. Every problem becomes one error
/// naming the first path and listing all. Returns the plan and the template body IoT's
/// RegisterThing would receive.
pub fn plan_request(template: &str, request: &ProvisionRequest) -> Result<(Plan, String), CommandError> {
    let template = Template::parse(template).map_err(validation_error)?;
    let plan = template.plan(&request.parameters, &request.cdf_provisioning_parameters).map_err(validation_error)?;
    Ok((plan, template.body_text()))
}

#[allow(clippy::needless_pass_by_value)] // used as `.map_err(validation_error)`
fn validation_error(errors: Vec<TemplateError>) -> CommandError {
    let first = &errors[0];
    let path = match first.culprit {
        Culprit::Template => format!("template:{}", first.path),
        Culprit::Request => format!("/payload{}", first.path),
    };
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    CommandError::new(ErrorCode::ValidationFailed, all.join("; ")).at(path)
}

impl Provisioner<'_> {
    /// Provisions `request`; `secret_name` names the generated key in the secret sink.
    pub async fn provision(
        &self,
        request: &ProvisionRequest,
        secret_name: &str,
        progress: &mut Progress<'_>,
    ) -> Result<Provisioned, CommandError> {
        let plan: Plan = match progress.saved().plan.clone() {
            Some(plan) => plan,
            None => {
                let text = self.templates.template(&request.provisioning_template_id).await.map_err(|e| {
                    if e.kind == ErrorKind::NotFound {
                        CommandError::new(
                            ErrorCode::NotFound,
                            format!("template {:?} not found: {}", request.provisioning_template_id, e.message),
                        )
                        .at("/payload/provisioningTemplateId")
                    } else {
                        fail(e)
                    }
                })?;
                let (plan, body) = plan_request(&text, request)?;
                if self.settings.mode == ProvisioningMode::RegisterThing {
                    progress.save(Checkpoint::TemplateBody(body)).await?;
                }
                progress.save(Checkpoint::Plan(Box::new(plan.clone()))).await?;
                plan
            }
        };
        let outcome = match self.settings.mode {
            ProvisioningMode::Steps => self.run(&plan, secret_name, progress).await,
            ProvisioningMode::RegisterThing => self.register_thing(&plan, request, secret_name, progress).await,
        };
        match outcome {
            Ok(done) => Ok(done),
            Err(error) if error.is_retryable() => Err(error),
            Err(error) => {
                let undone = self.compensate(&plan, secret_name, progress).await;
                let mut error = error;
                if !undone.is_empty() {
                    error.message = format!("{} (undone: {})", error.message, undone.join(", "));
                }
                Err(error)
            }
        }
    }

    async fn run(
        &self,
        plan: &Plan,
        secret_name: &str,
        progress: &mut Progress<'_>,
    ) -> Result<Provisioned, CommandError> {
        let thing_name = plan.thing.as_ref().map(|t| t.thing_name.clone());
        let mut private_key = None;
        let certificate = match &plan.certificate {
            None => None,
            Some(spec) => Some(
                self.certificate(&spec.source, thing_name.as_deref(), secret_name, progress, &mut private_key).await?,
            ),
        };
        let key: Option<KeyStep> = progress.saved().key.clone();

        let thing = match &plan.thing {
            None => None,
            Some(spec) => Some(self.thing(spec, progress).await?),
        };

        let mut attached = Vec::new();
        if let Some(cert) = &certificate {
            for policy in &plan.policies {
                if !progress.saved().policies.contains_key(&policy.policy_name) {
                    let mut created = false;
                    if let Some(document) = &policy.document {
                        match self.registry.create_policy(&policy.policy_name, document).await {
                            Ok(()) => created = true,
                            Err(e) if e.kind == ErrorKind::AlreadyExists => {}
                            Err(e) => return Err(fail(e)),
                        }
                    }
                    self.registry.attach_policy(&policy.policy_name, &cert.certificate.arn).await.map_err(|e| {
                        if e.kind == ErrorKind::NotFound {
                            CommandError::new(
                                ErrorCode::NotFound,
                                format!("policy {:?} does not exist", policy.policy_name),
                            )
                            .at(format!("template:/Resources/{}", policy.logical_name))
                        } else {
                            fail(e)
                        }
                    })?;
                    progress.save(Checkpoint::Policy(PolicyStep { name: policy.policy_name.clone(), created })).await?;
                }
                attached.push(policy.policy_name.clone());
            }
            if let (Some(spec), Some(_)) = (&plan.thing, &thing)
                && !progress.saved().attached
            {
                let name = thing_name_of(spec)?;
                self.registry.attach_thing_principal(&name, &cert.certificate.arn).await.map_err(fail)?;
                progress.save(Checkpoint::Attached).await?;
            }
            // The last step, and idempotent: a resumed attempt simply activates again.
            let wanted = plan.certificate.as_ref().map(|c| c.status);
            if cert.created && wanted == Some(InitialStatus::Active) {
                self.registry
                    .update_certificate_status(&cert.certificate.certificate_id, CertificateStatus::Active)
                    .await
                    .map_err(fail)?;
            }
        }

        // A thing made here is in exactly the template's groups; only an existing one needs a look.
        let thing_groups = match (&plan.thing, &thing) {
            (Some(spec), Some(step)) if step.created => spec.thing_groups.clone(),
            (Some(spec), Some(_)) => {
                self.registry.list_thing_groups_for_thing(&thing_name_of(spec)?).await.map_err(fail)?
            }
            _ => Vec::new(),
        };
        let policy_arn = plan.policies.iter().find(|p| !p.is_cdf_extension()).map(|p| {
            let account = certificate.as_ref().map(|c| arn_prefix(c.certificate.arn.as_str())).unwrap_or_default();
            format!("{account}:policy/{}", p.policy_name)
        });
        Ok(Provisioned {
            result: ProvisionResult {
                certificate_pem: certificate.as_ref().map(|c| c.certificate.certificate_pem.clone()),
                public_key: key.as_ref().map(|k| k.public_key_pem.clone()),
                private_key_secret: key.map(|k| k.secret),
                resource_arns: ResourceArns {
                    thing: thing.map(|t| t.arn),
                    certificate: certificate.as_ref().map(|c| c.certificate.arn.to_string()),
                    policy_logical_name: policy_arn,
                },
                thing_name,
                certificate_id: certificate.map(|c| c.certificate.certificate_id),
                policies: attached,
                thing_groups,
            },
            private_key: private_key.take(),
        })
    }

    /// `RegisterThing` mode: CDF's certificate extensions run here, IoT evaluates the template,
    /// CDF's extra policies are attached afterwards.
    async fn register_thing(
        &self,
        plan: &Plan,
        request: &ProvisionRequest,
        secret_name: &str,
        progress: &mut Progress<'_>,
    ) -> Result<Provisioned, CommandError> {
        let mut parameters = request.parameters.clone();
        let mut private_key = None;
        let thing_name = plan.thing.as_ref().map(|t| t.thing_name.clone());
        if let Some(spec) = &plan.certificate {
            match &spec.source {
                CertificateSource::CaSigned { ca_id, cert_info, key_algorithm } => {
                    let (pem, ca_pem) = self
                        .ca_signed(
                            ca_id,
                            cert_info,
                            *key_algorithm,
                            thing_name.as_deref(),
                            secret_name,
                            progress,
                            &mut private_key,
                        )
                        .await?;
                    parameters.insert("CertificatePem".into(), pem);
                    parameters.insert("CaCertificatePem".into(), ca_pem);
                }
                CertificateSource::AwsIssued { .. } | CertificateSource::WithoutCa { .. } => {
                    let cert = self
                        .certificate(&spec.source, thing_name.as_deref(), secret_name, progress, &mut private_key)
                        .await?;
                    parameters.insert("CertificateId".into(), cert.certificate.certificate_id.to_string());
                    parameters.insert("CertificateArn".into(), cert.certificate.arn.to_string());
                    // CDF passed the device certificate under this name too.
                    parameters.insert("CaCertificatePem".into(), cert.certificate.certificate_pem);
                }
                _ => {}
            }
        }
        let Registration { certificate_pem, resource_arns: arns } = match progress.saved().registered.clone() {
            Some(done) => done,
            None => {
                let body = progress.saved().template_body.clone().unwrap_or_default();
                let done = self.registry.register_thing(&body, &parameters).await.map_err(|e| {
                    if e.is_retryable() || e.kind == ErrorKind::Permanent {
                        fail(e)
                    } else {
                        CommandError::new(ErrorCode::InvalidRequest, format!("IoT refused the registration: {e}"))
                    }
                })?;
                progress.save(Checkpoint::Registered(done.clone())).await?;
                done
            }
        };
        let find = |shape: &str| arns.values().find(|a| a.contains(shape)).cloned();
        let certificate_arn = find(":cert/");
        let mut attached = Vec::new();
        if let Some(cert_arn) = &certificate_arn {
            // The template's own policies were attached by IoT; CDF's extras are ours.
            for policy in plan.policies.iter().filter(|p| p.is_cdf_extension()) {
                if let Some(document) = &policy.document {
                    match self.registry.create_policy(&policy.policy_name, document).await {
                        Ok(()) => {}
                        Err(e) if e.kind == ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(fail(e)),
                    }
                }
                self.registry.attach_policy(&policy.policy_name, &Arn::new(cert_arn)).await.map_err(fail)?;
                attached.push(policy.policy_name.clone());
            }
        }
        let key: Option<KeyStep> = progress.saved().key.clone();
        Ok(Provisioned {
            result: ProvisionResult {
                certificate_pem,
                public_key: key.as_ref().map(|k| k.public_key_pem.clone()),
                private_key_secret: key.map(|k| k.secret),
                resource_arns: ResourceArns {
                    thing: find(":thing/"),
                    certificate: certificate_arn.clone(),
                    policy_logical_name: arns.get("PolicyLogicalName").cloned().or_else(|| find(":policy/")),
                },
                thing_name,
                certificate_id: certificate_arn.and_then(|a| Arn::new(a).certificate_id()),
                policies: attached,
                thing_groups: Vec::new(),
            },
            private_key,
        })
    }

    /// Obtains the certificate (checkpoint `certificate`), making and delivering a key first
    /// when the source needs one (checkpoint `key`).
    async fn certificate(
        &self,
        source: &CertificateSource,
        thing_name: Option<&str>,
        secret_name: &str,
        progress: &mut Progress<'_>,
        private_key: &mut Option<Secret>,
    ) -> Result<CertificateStep, CommandError> {
        if let Some(done) = progress.saved().certificate.clone() {
            return Ok(done);
        }
        let issued = match source {
            CertificateSource::Csr { csr } => self.certificate_from_csr(csr, progress).await?,
            CertificateSource::Existing { certificate_id } => {
                let info =
                    self.registry.describe_certificate(&CertificateId::new(certificate_id)).await.map_err(|e| {
                        if e.kind == ErrorKind::NotFound {
                            CommandError::new(
                                ErrorCode::NotFound,
                                format!("certificate {certificate_id} does not exist"),
                            )
                        } else {
                            fail(e)
                        }
                    })?;
                CertificateStep {
                    certificate: IssuedCertificate {
                        certificate_id: info.certificate_id,
                        arn: info.arn,
                        certificate_pem: info.certificate_pem.unwrap_or_default(),
                    },
                    created: false,
                }
            }
            CertificateSource::Register { certificate_pem, ca_certificate_pem } => {
                self.register(certificate_pem, ca_certificate_pem.as_deref(), true).await?
            }
            CertificateSource::WithoutCa { certificate_pem } => self.register(certificate_pem, None, false).await?,
            CertificateSource::AwsIssued { key_algorithm: None, .. } => {
                let AwsGeneratedKey { certificate, private_key: key, public_key_pem } =
                    self.registry.create_keys_and_certificate(false).await.map_err(fail)?;
                // AWS shows this key once: deliver it before anything else can fail.
                let secret = self.secrets.store(secret_name, &key).await.map_err(fail)?;
                progress.save(Checkpoint::Key(KeyStep { public_key_pem, csr_pem: None, secret })).await?;
                *private_key = Some(key);
                created(certificate)
            }
            CertificateSource::AwsIssued { key_algorithm: Some(algorithm), cert_info } => {
                let key = self.key(*algorithm, cert_info, thing_name, secret_name, progress, private_key).await?;
                let csr = key.csr_pem.unwrap_or_default();
                self.certificate_from_csr(&csr, progress).await?
            }
            CertificateSource::CaSigned { ca_id, cert_info, key_algorithm } => {
                let (pem, ca_pem) = self
                    .ca_signed(ca_id, cert_info, *key_algorithm, thing_name, secret_name, progress, private_key)
                    .await?;
                self.register(&pem, Some(&ca_pem), true).await?
            }
        };
        progress.save(Checkpoint::Certificate(issued.clone())).await?;
        Ok(issued)
    }

    /// CDF `createDeviceCertificate`: a key and CSR made here, signed with the deployment's CA
    /// (checkpoint `signedCertificate`). Returns the device and CA certificates (PEM).
    #[allow(clippy::too_many_arguments)]
    async fn ca_signed(
        &self,
        ca_id: &str,
        cert_info: &crate::domain::template::plan::CertInfo,
        key_algorithm: crate::domain::template::plan::KeyAlgorithm,
        thing_name: Option<&str>,
        secret_name: &str,
        progress: &mut Progress<'_>,
        private_key: &mut Option<Secret>,
    ) -> Result<(String, String), CommandError> {
        let ca_pem = self.registry.ca_certificate_pem(ca_id).await.map_err(|e| {
            if e.kind == ErrorKind::NotFound {
                CommandError::new(ErrorCode::NotFound, format!("CA certificate {ca_id} is not registered in IoT"))
                    .at("/payload/cdfProvisioningParameters/caId")
            } else {
                fail(e)
            }
        })?;
        if let Some(pem) = progress.saved().signed_certificate.clone() {
            return Ok((pem, ca_pem));
        }
        let ca_key = self.ca_keys.ca_private_key(ca_id).await.map_err(fail)?;
        let key = self.key(key_algorithm, cert_info, thing_name, secret_name, progress, private_key).await?;
        let days = cert_info.days_expiry.unwrap_or(self.settings.certificate_days);
        let csr = key.csr_pem.unwrap_or_default();
        let pem = crypto::sign_csr(&csr, &ca_pem, &ca_key, days, self.now())
            .map_err(|e| CommandError::new(ErrorCode::PermanentFailure, format!("cannot sign with CA {ca_id}: {e}")))?;
        // Registering is idempotent by certificate id, so a resumed attempt registers this very
        // certificate instead of signing a second one.
        progress.save(Checkpoint::SignedCertificate(pem.clone())).await?;
        Ok((pem, ca_pem))
    }

    /// `CreateCertificateFromCsr` is not idempotent: the request is noted first (checkpoint
    /// `certificateRequested`), and a resumed attempt that finds the note adopts the INACTIVE
    /// certificate its predecessor obtained for the same public key instead of asking again.
    async fn certificate_from_csr(
        &self,
        csr: &str,
        progress: &mut Progress<'_>,
    ) -> Result<CertificateStep, CommandError> {
        let public_key = crypto::csr_public_key(csr).ok().map(hex::encode);
        if let (Some(requested), Some(public_key)) = (progress.saved().certificate_requested.clone(), &public_key)
            && &requested.public_key == public_key
        {
            // Certificates listed a little before the note still count: clocks differ.
            let candidates =
                self.registry.recent_inactive_certificates(requested.at_ms - 300_000).await.map_err(fail)?;
            let ours = candidates.into_iter().find(|c| {
                c.certificate_pem
                    .as_deref()
                    .and_then(|pem| crypto::certificate_public_key(pem).ok())
                    .is_some_and(|key| hex::encode(key) == *public_key)
            });
            if let Some(cert) = ours {
                tracing::info!(certificate_id = %cert.certificate_id, "adopting the certificate an interrupted attempt obtained");
                return Ok(created(IssuedCertificate {
                    certificate_id: cert.certificate_id,
                    arn: cert.arn,
                    certificate_pem: cert.certificate_pem.unwrap_or_default(),
                }));
            }
        }
        if let Some(public_key) = public_key {
            let at_ms = self.clock.now_ms();
            progress.save(Checkpoint::CertificateRequested(CertificateRequested { public_key, at_ms })).await?;
        }
        Ok(created(self.registry.create_certificate_from_csr(csr, false).await.map_err(fail)?))
    }

    /// Makes a key and CSR and delivers the key to the secret sink (checkpoint `key`).
    async fn key(
        &self,
        algorithm: crate::domain::template::plan::KeyAlgorithm,
        info: &crate::domain::template::plan::CertInfo,
        thing_name: Option<&str>,
        secret_name: &str,
        progress: &mut Progress<'_>,
        private_key: &mut Option<Secret>,
    ) -> Result<KeyStep, CommandError> {
        if let Some(step) = progress.saved().key.clone() {
            return Ok(step);
        }
        let info = info.clone();
        let cn = thing_name.unwrap_or("device").to_owned();
        // RSA key generation takes tens of milliseconds: keep it off the async workers.
        let key = tokio::task::spawn_blocking(move || crypto::generate_key_and_csr(algorithm, &info, &cn))
            .await
            .map_err(|e| CommandError::new(ErrorCode::Transient, e.to_string()))?
            .map_err(|e| CommandError::new(ErrorCode::PermanentFailure, format!("cannot make a key: {e}")))?;
        let secret = self.secrets.store(secret_name, &key.private_key).await.map_err(fail)?;
        let step = KeyStep { public_key_pem: key.public_key_pem, csr_pem: Some(key.csr_pem), secret };
        progress.save(Checkpoint::Key(step.clone())).await?;
        *private_key = Some(key.private_key);
        Ok(step)
    }

    async fn register(&self, pem: &str, ca_pem: Option<&str>, with_ca: bool) -> Result<CertificateStep, CommandError> {
        let result = if with_ca {
            self.registry.register_certificate(pem, ca_pem, false).await
        } else {
            self.registry.register_certificate_without_ca(pem, false).await
        };
        match result {
            Ok(cert) => Ok(created(cert)),
            Err(e) if e.kind == ErrorKind::AlreadyExists => {
                // Registered by an earlier attempt (or before): the id is the DER's hash.
                let id = crypto::certificate_id(pem)
                    .map_err(|e| CommandError::new(ErrorCode::ValidationFailed, e.to_string()))?;
                let info = self.registry.describe_certificate(&id).await.map_err(fail)?;
                Ok(CertificateStep {
                    certificate: IssuedCertificate {
                        certificate_id: id,
                        arn: info.arn,
                        certificate_pem: pem.to_owned(),
                    },
                    created: info.certificate_status != CertificateStatus::Active,
                })
            }
            Err(e) => Err(fail(e)),
        }
    }

    /// Creates the thing or reconciles an existing one per its OverrideSettings (checkpoint
    /// `thing`), then its groups (checkpoint `groups`).
    async fn thing(&self, spec: &ThingSpec, progress: &mut Progress<'_>) -> Result<ThingStep, CommandError> {
        let name = thing_name_of(spec)?;
        let step = match progress.saved().thing.clone() {
            Some(step) => step,
            None => {
                let step = match self.registry.describe_thing(&name).await {
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        let new = NewThing {
                            name: name.clone(),
                            thing_type: spec.thing_type.clone(),
                            attributes: spec.attributes.clone(),
                        };
                        let arn = self.registry.create_thing(&new).await.map_err(|e| {
                            if e.kind == ErrorKind::NotFound {
                                CommandError::new(ErrorCode::NotFound, e.message)
                                    .at(format!("template:/Resources/{}/Properties/ThingTypeName", spec.logical_name))
                            } else {
                                fail(e)
                            }
                        })?;
                        ThingStep { arn, created: true }
                    }
                    Err(e) => return Err(fail(e)),
                    Ok(existing) => {
                        let conflict = |what: &str| {
                            CommandError::new(
                                ErrorCode::InvalidState,
                                format!("thing {name} exists with other {what} and OverrideSettings say FAIL"),
                            )
                            .at(format!("template:/Resources/{}/OverrideSettings", spec.logical_name))
                        };
                        let attributes_differ = existing.attributes != spec.attributes;
                        let type_differs = spec.thing_type.is_some() && existing.thing_type != spec.thing_type;
                        if attributes_differ && spec.overrides.attribute_payload == Override::Fail {
                            return Err(conflict("attributes"));
                        }
                        if type_differs && spec.overrides.thing_type_name == Override::Fail {
                            return Err(conflict("thing type"));
                        }
                        let set_type = (type_differs && spec.overrides.thing_type_name == Override::Replace)
                            .then_some(spec.thing_type.as_deref())
                            .flatten();
                        let attributes = match spec.overrides.attribute_payload {
                            _ if !attributes_differ => None,
                            Override::Replace => Some(false),
                            Override::Merge => Some(true),
                            _ => None,
                        };
                        if set_type.is_some() || attributes.is_some() {
                            let (attrs, merge) = match attributes {
                                Some(merge) => (spec.attributes.clone(), merge),
                                None => (BTreeMap::new(), true),
                            };
                            self.registry.update_thing(&name, set_type, &attrs, merge).await.map_err(fail)?;
                        }
                        // A thing identical to the spec is taken as this command's own work (a
                        // resumed attempt), so compensation may remove it; any other is not ours.
                        ThingStep {
                            arn: existing.arn,
                            created: progress.is_retry && !attributes_differ && !type_differs,
                        }
                    }
                };
                progress.save(Checkpoint::Thing(step.clone())).await?;
                step
            }
        };
        let nothing_to_do = spec.thing_groups.is_empty()
            && spec.billing_group.is_none()
            && (step.created || matches!(spec.overrides.thing_groups, Override::DoNothing | Override::Merge));
        if !nothing_to_do && !progress.saved().groups {
            let add_all = step.created || matches!(spec.overrides.thing_groups, Override::Merge | Override::Replace);
            if !step.created && spec.overrides.thing_groups != Override::DoNothing {
                let current = self.registry.list_thing_groups_for_thing(&name).await.map_err(fail)?;
                let mut wanted = spec.thing_groups.clone();
                wanted.sort();
                let mut have = current.clone();
                have.sort();
                if spec.overrides.thing_groups == Override::Fail && have != wanted {
                    return Err(CommandError::new(
                        ErrorCode::InvalidState,
                        format!("thing {name} is in other groups and OverrideSettings say FAIL"),
                    ));
                }
                if spec.overrides.thing_groups == Override::Replace {
                    for group in current.iter().filter(|g| !spec.thing_groups.contains(g)) {
                        self.registry.remove_thing_from_thing_group(&name, group).await.map_err(fail)?;
                    }
                }
            }
            if add_all {
                for group in &spec.thing_groups {
                    self.registry.add_thing_to_thing_group(&name, group).await.map_err(|e| {
                        if e.kind == ErrorKind::NotFound {
                            CommandError::new(ErrorCode::NotFound, format!("thing group {group:?} does not exist"))
                                .at(format!("template:/Resources/{}/Properties/ThingGroups", spec.logical_name))
                        } else {
                            fail(e)
                        }
                    })?;
                }
            }
            if let Some(billing) = &spec.billing_group {
                self.registry.add_thing_to_billing_group(&name, billing).await.map_err(fail)?;
            }
            progress.save(Checkpoint::Groups).await?;
        }
        Ok(step)
    }

    /// Undoes what this command made, newest first. Returns what was undone; failures are
    /// logged (certificates stay INACTIVE until the last step, so none is left ACTIVE).
    async fn compensate(&self, plan: &Plan, secret_name: &str, progress: &Progress<'_>) -> Vec<String> {
        let mut undone = Vec::new();
        let mut note = |what: String, result: Result<(), PortError>| match result {
            Ok(()) => undone.push(what),
            Err(e) if e.kind == ErrorKind::NotFound => undone.push(what),
            Err(e) => tracing::warn!(error = %e, step = %what, "compensation step failed"),
        };
        let saved = progress.saved();
        let certificate = &saved.certificate;
        let thing = &saved.thing;
        let name = plan.thing.as_ref().and_then(|t| ThingName::parse(&t.thing_name).ok());
        if let (Some(cert), Some(name)) = (certificate, &name)
            && saved.attached
        {
            note(
                format!("detached {}", cert.certificate.certificate_id),
                self.registry.detach_thing_principal(name, &cert.certificate.arn).await,
            );
        }
        if let Some(cert) = certificate {
            for policy in &plan.policies {
                let Some(step) = saved.policies.get(&policy.policy_name) else { continue };
                note(
                    format!("detached policy {}", policy.policy_name),
                    self.registry.detach_policy(&policy.policy_name, &cert.certificate.arn).await,
                );
                if step.created {
                    let unused = self
                        .registry
                        .list_policy_targets(&policy.policy_name)
                        .await
                        .map(|t| t.is_empty())
                        .unwrap_or(false);
                    if unused {
                        note(
                            format!("deleted policy {}", policy.policy_name),
                            self.registry.delete_policy(&policy.policy_name).await,
                        );
                    }
                }
            }
            if cert.created {
                let id = &cert.certificate.certificate_id;
                let _ = self.registry.update_certificate_status(id, CertificateStatus::Inactive).await;
                note(format!("deleted certificate {id}"), self.registry.delete_certificate(id).await);
            }
        }
        if let (Some(step), Some(name)) = (thing, &name)
            && step.created
        {
            note(format!("deleted thing {name}"), self.registry.delete_thing(name).await);
        }
        if saved.key.is_some() {
            note("deleted the generated key".into(), self.secrets.delete(secret_name).await);
        }
        undone
    }
}

/// The "sink" of a synchronous call: the caller gets the key in the response, nothing is
/// stored.
#[derive(Debug)]
pub struct InlineSecret;

#[async_trait::async_trait]
impl SecretSink for InlineSecret {
    async fn store(&self, _name: &str, _secret: &Secret) -> Result<String, PortError> {
        Ok("inline".into())
    }

    async fn delete(&self, _name: &str) -> Result<(), PortError> {
        Ok(())
    }
}

fn created(certificate: IssuedCertificate) -> CertificateStep {
    CertificateStep { certificate, created: true }
}

impl Provisioner<'_> {
    fn now(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.clock.now_ms()) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    }
}

fn thing_name_of(spec: &ThingSpec) -> Result<ThingName, CommandError> {
    ThingName::parse(&spec.thing_name).map_err(|m| CommandError::new(ErrorCode::ValidationFailed, m))
}

/// `arn:aws:iot:<region>:<account>` of an IoT ARN.
fn arn_prefix(arn: &str) -> String {
    arn.splitn(6, ':').take(5).collect::<Vec<_>>().join(":")
}
