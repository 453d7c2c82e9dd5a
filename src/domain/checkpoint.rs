//! Step checkpoints: what a command's completed steps produced, saved in its record so that
//! a resumed attempt continues instead of repeating a step (a second certificate, a lost key).
//!
//! Each checkpoint is stored under a slot name as versioned JSON (`{"v":1,"step":..,"data":..}`).
//! Reading is strict and fails closed: a checkpoint this code cannot decode (written by
//! another version, or damaged) is a [`CheckpointError`], never "step not done", because
//! treating it as not done would run a non-idempotent step a second time.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{CommandError, ErrorCode};
use super::registry::IssuedCertificate;
pub use super::registry::Registration;
use super::template::plan::Plan;
use super::time::Timestamp;

/// The version of the stored checkpoint format this code writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// Checkpoints as stored in a record: slot name → versioned JSON text, not yet decoded.
pub type StoredCheckpoints = BTreeMap<String, String>;

/// One completed step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", content = "data", rename_all = "camelCase")]
pub enum Checkpoint {
    /// The evaluated template; a resumed attempt runs the same plan even if the template
    /// changed in S3 meanwhile.
    Plan(Box<Plan>),
    /// The template body handed to RegisterThing (registerThing mode).
    TemplateBody(String),
    /// A key made here (or by AWS) and already delivered to the secret sink.
    Key(KeyStep),
    /// `CreateCertificateFromCsr` is about to be called: a resumed attempt adopts the
    /// certificate this note identifies (this public key, made within the note's window,
    /// attached to no other thing, the only one that fits) instead of asking for a second one.
    CertificateRequested(CertificateRequested),
    /// The device certificate.
    Certificate(CertificateStep),
    /// A certificate signed here with the deployment's CA, before it is registered.
    SignedCertificate(String),
    /// The thing (made here, or found and reconciled).
    Thing(ThingStep),
    /// The thing joined its groups.
    Groups,
    /// A policy attached to the certificate.
    Policy(PolicyStep),
    /// The certificate attached to the thing.
    Attached,
    /// RegisterThing answered.
    Registered(Registration),
}

/// A generated key's public half and where its private half went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStep {
    /// Public key (PEM).
    pub public_key_pem: String,
    /// CSR made with the key (absent when AWS made the key).
    pub csr_pem: Option<String>,
    /// The secret sink's reference to the private key.
    pub secret: String,
    /// The key's name in the secret sink: the attempt that made it (absent from checkpoints
    /// written when a command's key had one name for every attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The note written before `CreateCertificateFromCsr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateRequested {
    /// Hex SubjectPublicKeyInfo of the CSR.
    pub public_key: String,
    /// When the request was about to be sent: a certificate IoT dates much earlier (the
    /// device's own, for the same key) or later is not the one requested.
    pub at_ms: Timestamp,
}

/// The device certificate and whether this command made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStep {
    /// The certificate.
    #[serde(flatten)]
    pub certificate: IssuedCertificate,
    /// Made by this command: compensation deletes it, and the last step activates it.
    pub created: bool,
}

/// The thing and whether this command made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThingStep {
    /// Thing ARN.
    pub arn: String,
    /// Made by this command: only then may compensation delete it.
    pub created: bool,
}

/// A policy attached to the certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStep {
    /// Policy name.
    pub name: String,
    /// Created by this command (from a document): compensation may delete it.
    pub created: bool,
}

impl Checkpoint {
    /// The slot the checkpoint is stored under: one per step, one per policy.
    pub fn slot(&self) -> String {
        match self {
            Self::Plan(_) => "plan".into(),
            Self::TemplateBody(_) => "templateBody".into(),
            Self::Key(_) => "key".into(),
            Self::CertificateRequested(_) => "certificateRequested".into(),
            Self::Certificate(_) => "certificate".into(),
            Self::SignedCertificate(_) => "signedCertificate".into(),
            Self::Thing(_) => "thing".into(),
            Self::Groups => "groups".into(),
            Self::Policy(p) => format!("policy:{}", p.name),
            Self::Attached => "attached".into(),
            Self::Registered(_) => "registered".into(),
        }
    }

    /// The stored text.
    pub fn encode(&self) -> String {
        let mut fields = serde_json::Map::new();
        fields.insert("v".into(), CHECKPOINT_VERSION.into());
        if let Ok(serde_json::Value::Object(tagged)) = serde_json::to_value(self) {
            fields.extend(tagged);
        }
        serde_json::Value::Object(fields).to_string()
    }

    /// Decodes the text stored under `slot`, strictly.
    pub fn decode(slot: &str, text: &str) -> Result<Self, CheckpointError> {
        let unreadable = |reason: String| CheckpointError { slot: slot.to_owned(), reason };
        let mut raw: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| unreadable(format!("not a JSON object ({e})")))?;
        match raw.remove("v").as_ref().and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(CHECKPOINT_VERSION) => {}
            Some(v) => return Err(unreadable(format!("format version {v}; this version reads {CHECKPOINT_VERSION}"))),
            None => return Err(unreadable("no format version".into())),
        }
        let checkpoint: Self =
            serde_json::from_value(serde_json::Value::Object(raw)).map_err(|e| unreadable(e.to_string()))?;
        if checkpoint.slot() != slot {
            return Err(unreadable(format!("holds step {:?}", checkpoint.slot())));
        }
        Ok(checkpoint)
    }
}

/// A stored checkpoint this code cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint {slot:?} cannot be read: {reason}")]
pub struct CheckpointError {
    /// The slot.
    pub slot: String,
    /// Why.
    pub reason: String,
}

impl From<CheckpointError> for CommandError {
    fn from(e: CheckpointError) -> Self {
        CommandError::new(
            ErrorCode::CheckpointUnreadable,
            format!(
                "{e}. The command was stopped without running any step again, since a step it \
                 cannot see might be repeated (a second certificate); check what exists for it in \
                 IoT, then resubmit it with a new idempotency key"
            ),
        )
    }
}

/// The decoded checkpoints of one command: every completed step, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoints {
    /// The plan.
    pub plan: Option<Plan>,
    /// The template body for RegisterThing.
    pub template_body: Option<String>,
    /// The generated key.
    pub key: Option<KeyStep>,
    /// The note before `CreateCertificateFromCsr`.
    pub certificate_requested: Option<CertificateRequested>,
    /// The certificate.
    pub certificate: Option<CertificateStep>,
    /// A certificate signed here, not yet registered.
    pub signed_certificate: Option<String>,
    /// The thing.
    pub thing: Option<ThingStep>,
    /// Whether the thing joined its groups.
    pub groups: bool,
    /// Attached policies, by name.
    pub policies: BTreeMap<String, PolicyStep>,
    /// Whether the certificate is attached to the thing.
    pub attached: bool,
    /// RegisterThing's answer.
    pub registered: Option<Registration>,
}

impl Checkpoints {
    /// Decodes every stored checkpoint; the first unreadable one is the error.
    pub fn decode(stored: &StoredCheckpoints) -> Result<Self, CheckpointError> {
        let mut checkpoints = Self::default();
        for (slot, text) in stored {
            checkpoints.apply(Checkpoint::decode(slot, text)?);
        }
        Ok(checkpoints)
    }

    /// Records a completed step.
    pub fn apply(&mut self, checkpoint: Checkpoint) {
        match checkpoint {
            Checkpoint::Plan(plan) => self.plan = Some(*plan),
            Checkpoint::TemplateBody(body) => self.template_body = Some(body),
            Checkpoint::Key(key) => self.key = Some(key),
            Checkpoint::CertificateRequested(note) => self.certificate_requested = Some(note),
            Checkpoint::Certificate(certificate) => self.certificate = Some(certificate),
            Checkpoint::SignedCertificate(pem) => self.signed_certificate = Some(pem),
            Checkpoint::Thing(thing) => self.thing = Some(thing),
            Checkpoint::Groups => self.groups = true,
            Checkpoint::Policy(policy) => {
                self.policies.insert(policy.name.clone(), policy);
            }
            Checkpoint::Attached => self.attached = true,
            Checkpoint::Registered(registration) => self.registered = Some(registration),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_through_their_stored_form() {
        let samples = [
            Checkpoint::Key(KeyStep {
                public_key_pem: "pk".into(),
                csr_pem: None,
                secret: "s3://b/k".into(),
                name: Some("t/k/1".into()),
            }),
            Checkpoint::Policy(PolicyStep { name: "p1".into(), created: true }),
            Checkpoint::Groups,
            Checkpoint::SignedCertificate("pem".into()),
        ];
        let mut stored = StoredCheckpoints::new();
        for checkpoint in &samples {
            assert_eq!(Checkpoint::decode(&checkpoint.slot(), &checkpoint.encode()).unwrap(), *checkpoint);
            stored.insert(checkpoint.slot(), checkpoint.encode());
        }
        let decoded = Checkpoints::decode(&stored).unwrap();
        assert!(decoded.groups && decoded.key.is_some() && decoded.policies["p1"].created);
        let stored: serde_json::Value = serde_json::from_str(&samples[1].encode()).unwrap();
        assert_eq!(stored, serde_json::json!({"v": 1, "step": "policy", "data": {"name": "p1", "created": true}}));
    }

    #[test]
    fn anything_unreadable_fails_closed() {
        let key =
            Checkpoint::Key(KeyStep { public_key_pem: "pk".into(), csr_pem: None, secret: "s".into(), name: None });
        let with = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut stored: serde_json::Value = serde_json::from_str(&key.encode()).unwrap();
            change(&mut stored);
            stored.to_string()
        };
        let cases = [
            ("key", "{not json".to_owned()),
            ("key", "[1]".to_owned()),
            ("key", with(&|v| v["v"] = 2.into())),
            ("key", with(&|v| drop(v.as_object_mut().unwrap().remove("v")))),
            ("key", with(&|v| drop(v["data"].as_object_mut().unwrap().remove("publicKeyPem")))),
            ("key", r#"{"v":1,"step":"rotateKey","data":{}}"#.to_owned()),
            ("certificate", key.encode()),
        ];
        for (slot, text) in cases {
            let err = Checkpoint::decode(slot, &text).unwrap_err();
            assert_eq!(err.slot, slot, "{text}");
            let command_error = CommandError::from(err);
            assert_eq!(command_error.code, ErrorCode::CheckpointUnreadable);
            assert!(!command_error.is_retryable());
        }
    }
}
