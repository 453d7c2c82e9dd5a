//! `provisionThing`: load the template, plan it (every template error reported before any
//! AWS call), then make the resources step by step with IoT's primitive APIs, checkpointing
//! each step so that a crash or redelivery resumes instead of making a second certificate.
//!
//! Certificates are created INACTIVE and activated as the very last step, so a device is never
//! half-provisioned with a live certificate, and a plan that fails permanently is compensated:
//! what this command made is detached and deleted again.

mod certificate;
mod compensate;
mod register_thing;
mod steps;
mod thing;

use super::progress::Progress;
use super::{fail, missing_as};
use crate::crypto::Secret;
use crate::domain::checkpoint::{CertificateStep, Checkpoint};
pub use crate::domain::command::ProvisionRequest;
pub use crate::domain::result::{ProvisionResult, ResourceArns};
pub use crate::domain::template::ProvisioningMode;
use crate::domain::template::plan::{Plan, ThingSpec};
use crate::domain::template::policy_allow::PolicyAllowList;
use crate::domain::template::{Culprit, Template, TemplateError};
use crate::domain::{CommandError, ErrorCode, Location, TemplateId, ThingName};
use crate::ports::{CaKeyStore, Clock, DeviceRegistry, IssuedCertificate, PortError, SecretSink, TemplateStore};

/// Deployment settings of provisioning.
#[derive(Debug, Clone)]
pub struct ProvisionSettings {
    /// Validity of certificates signed here when `certInfo.daysExpiry` is absent (365).
    pub certificate_days: u32,
    /// The longest validity `certInfo.daysExpiry` may ask (3650); never beyond the signing
    /// CA's own `notAfter` either.
    pub max_certificate_days: u32,
    /// What a policy made here may grant (`CDF_POLICY_ALLOWED_ACTIONS`); `None`: anything.
    pub policy_allow: Option<PolicyAllowList>,
    /// Whether templates run as checkpointed steps here or through `RegisterThing`.
    pub mode: ProvisioningMode,
}

/// What provisioning needs, borrowed from the [`App`](crate::app::App) for one command.
pub struct Provisioner<'a> {
    /// AWS IoT, where the device is made.
    pub registry: &'a dyn DeviceRegistry,
    /// Where the template is read from.
    pub templates: &'a dyn TemplateStore,
    /// Where a generated key is delivered (the S3 sink, or nowhere for an inline answer).
    pub secrets: &'a dyn SecretSink,
    /// CA keys for `createDeviceCertificate`.
    pub ca_keys: &'a dyn CaKeyStore,
    /// The deployment's choices.
    pub settings: &'a ProvisionSettings,
    /// Time (certificate validity, the adoption window).
    pub clock: &'a dyn Clock,
    /// The template's text when the caller has it already (a bulk task's snapshot); read from
    /// the template store otherwise.
    pub template: Option<&'a str>,
}

/// A provisioned device: the result, and the private key for callers that return it inline.
#[derive(Debug)]
pub struct Provisioned {
    /// The result document.
    pub result: ProvisionResult,
    /// The key made here or by AWS, if any.
    pub private_key: Option<Secret>,
}

/// Reads template `id`; a malformed id or a missing template is the request's fault.
pub async fn load_template(templates: &dyn TemplateStore, id: &str) -> Result<String, CommandError> {
    let at = || Location::payload().child("provisioningTemplateId");
    let id = TemplateId::parse(id).map_err(|e| e.at(at()))?;
    let id = id.as_str();
    templates.template(id).await.map_err(missing_as(|_| {
        CommandError::new(ErrorCode::NotFound, format!("template {id:?} does not exist")).at(at())
    }))
}

/// Parses and plans a request against a template text. Every problem becomes one error
/// naming the first path and listing all. Returns the plan and the template body IoT's
/// RegisterThing would receive.
pub fn plan_request(template: &str, request: &ProvisionRequest) -> Result<(Plan, String), CommandError> {
    let template = Template::parse(template).map_err(|e| validation_error(&e, in_payload))?;
    let plan = template
        .plan(&request.parameters, &request.cdf_provisioning_parameters)
        .map_err(|e| validation_error(&e, in_payload))?;
    Ok((plan, template.body_text()))
}

/// Template errors as one command error naming the first path and listing all. A path into
/// the request is placed by `request_at` (into the payload for a command, [`in_payload`];
/// under the row's own parameters for a bulk row).
pub(crate) fn validation_error(errors: &[TemplateError], request_at: impl FnOnce(&str) -> Location) -> CommandError {
    let first = &errors[0];
    let path = match first.culprit {
        Culprit::Template => Location::template().join(&first.path),
        Culprit::Request => request_at(&first.path),
    };
    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
    CommandError::new(ErrorCode::ValidationFailed, all.join("; ")).at(path)
}

/// A resource of the template, by its logical name.
pub(crate) fn resource_at(logical_name: &str) -> Location {
    Location::template().child("Resources").child(logical_name)
}

/// A template error's request path, as a location in the command's payload.
pub(crate) fn in_payload(pointer: &str) -> Location {
    Location::payload().join(pointer)
}

/// Where a request's `certInfo.daysExpiry` is.
pub(crate) fn days_expiry_at() -> Location {
    Location::payload().child("cdfProvisioningParameters").child("certInfo").child("daysExpiry")
}

impl Provisioner<'_> {
    /// Refuses, before any AWS call, a certificate signed here for longer than the
    /// deployment's `CDF_MAX_CERTIFICATE_DAYS`.
    fn check_days_expiry(&self, plan: &Plan) -> Result<(), CommandError> {
        use crate::domain::template::plan::CertificateSource;
        let max = self.settings.max_certificate_days;
        if let Some(spec) = &plan.certificate
            && let CertificateSource::CaSigned { cert_info, .. } = &spec.source
            && let Some(days) = cert_info.days_expiry
            && days > max
        {
            return Err(CommandError::new(
                ErrorCode::ValidationFailed,
                format!("daysExpiry {days} is above this deployment's maximum of {max} days"),
            )
            .at(days_expiry_at()));
        }
        Ok(())
    }

    /// Refuses, before any AWS call, a policy to be made here that grants what the deployment's
    /// allow-list does not: the template is to blame.
    fn check_policies(&self, plan: &Plan) -> Result<(), CommandError> {
        let Some(allow) = &self.settings.policy_allow else { return Ok(()) };
        for policy in &plan.policies {
            let Some(document) = &policy.document else { continue };
            if let Err(why) = allow.check(document) {
                let at = if policy.is_cdf_extension() {
                    Location::template().child("CDF")
                } else {
                    resource_at(&policy.logical_name).child("Properties").child("PolicyDocument")
                };
                return Err(CommandError::new(
                    ErrorCode::ValidationFailed,
                    format!("policy {}: {why}", crate::domain::error::bounded(&policy.policy_name)),
                )
                .at(at));
            }
        }
        Ok(())
    }

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
                let text = match self.template {
                    Some(text) => text.to_owned(),
                    None => load_template(self.templates, &request.provisioning_template_id).await?,
                };
                let (plan, body) = plan_request(&text, request)?;
                self.check_days_expiry(&plan)?;
                self.check_policies(&plan)?;
                if self.settings.mode == ProvisioningMode::RegisterThing {
                    progress.save(Checkpoint::TemplateBody(body)).await?;
                }
                if self.template.is_some() {
                    // A snapshot (a bulk task's): a resumed attempt plans the same again.
                    progress.defer(Checkpoint::Plan(Box::new(plan.clone())));
                } else {
                    // The stored template may change before a resumed attempt: keep this plan.
                    progress.save(Checkpoint::Plan(Box::new(plan.clone()))).await?;
                }
                plan
            }
        };
        let outcome = match self.settings.mode {
            ProvisioningMode::Steps => self.run(&plan, secret_name, progress).await,
            ProvisioningMode::RegisterThing => self.register_thing(&plan, request, secret_name, progress).await,
        };
        match outcome {
            Ok(done) => Ok(done),
            Err(error) if error.is_retryable() && !progress.attempt.last => Err(error),
            // What was made may be the new holder's now: never compensated by this attempt.
            Err(error) if error.code == ErrorCode::LeaseLost => Err(error),
            Err(error) => {
                // The command's one key name of earlier versions: the per-attempt name less its
                // attempt (see `engine::secret_name`).
                let legacy = secret_name.rsplit_once('/').map_or(secret_name, |(base, _)| base);
                let undone = self.compensate(&plan, legacy, progress).await;
                if undone.lost {
                    return Err(CommandError::new(
                        ErrorCode::LeaseLost,
                        format!("the lease was lost while undoing after: {error}"),
                    ));
                }
                let mut error = error.exhausted();
                if !undone.done.is_empty() {
                    error.message = format!("{} (undone: {})", error.message, undone.done.join(", "));
                }
                if !undone.left.is_empty() {
                    error.message = format!("{} (could not undo: {})", error.message, undone.left.join(", "));
                }
                Err(error)
            }
        }
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

    async fn read(&self, _name: &str) -> Result<Secret, PortError> {
        Err(PortError::new(crate::ports::ErrorKind::NotFound, "inline:read", "an inline key is kept nowhere"))
    }
}

fn created(certificate: IssuedCertificate) -> CertificateStep {
    CertificateStep { certificate, created: true }
}

impl Provisioner<'_> {
    fn now(&self) -> time::OffsetDateTime {
        self.clock.now().to_datetime()
    }
}

fn thing_name_of(spec: &ThingSpec) -> Result<ThingName, CommandError> {
    ThingName::parse(&spec.thing_name).map_err(|m| CommandError::new(ErrorCode::ValidationFailed, m))
}

/// `arn:aws:iot:<region>:<account>` of an IoT ARN.
fn arn_prefix(arn: &str) -> String {
    arn.splitn(6, ':').take(5).collect::<Vec<_>>().join(":")
}
