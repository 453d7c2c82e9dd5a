//! Commands as they arrive on the queue: the versioned envelope, its decoding with precise
//! errors, and the payload fingerprint that makes idempotency keys safe to reuse.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{CommandError, ErrorCode};
use super::schema::command_schema;
use super::thing::{CertificateStatus, ThingName};

/// The command types this version runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CommandType {
    /// GET /things/{thingName}
    GetThing,
    /// DELETE /things/{thingName}
    DeleteThing,
    /// PATCH /things/{thingName}/certificates
    UpdateThingCertificates,
    /// POST /things
    ProvisionThing,
}

impl CommandType {
    /// Every supported type, in the order the docs list them.
    pub const ALL: [CommandType; 4] =
        [Self::GetThing, Self::DeleteThing, Self::UpdateThingCertificates, Self::ProvisionThing];

    /// The envelope's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GetThing => "getThing",
            Self::DeleteThing => "deleteThing",
            Self::UpdateThingCertificates => "updateThingCertificates",
            Self::ProvisionThing => "provisionThing",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == value)
    }

    /// The event type published when a command of this type succeeds.
    pub fn success_event_type(self) -> &'static str {
        match self {
            Self::GetThing => "thing.described",
            Self::DeleteThing => "thing.deleted",
            Self::UpdateThingCertificates => "thing.certificates.updated",
            Self::ProvisionThing => "thing.provisioned",
        }
    }
}

impl fmt::Display for CommandType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The producer's idempotency key (or the SQS message id when the producer gave none).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Wraps a key; the schema has already checked its shape for keys from messages.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The seed's ProvisionRequest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProvisionRequest {
    /// Template id (S3 key `<prefix><id><suffix>`).
    pub provisioning_template_id: String,
    /// Parameter values.
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// CDF extension parameters.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub cdf_provisioning_parameters: Value,
}

/// A decoded command with typed, validated arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Describe a thing with its certificates, policies and groups.
    GetThing {
        /// The thing to describe.
        thing_name: ThingName,
    },
    /// Delete a thing and, by default, what only it used.
    DeleteThing {
        /// The thing to delete.
        thing_name: ThingName,
        /// Deactivate and delete certificates no other thing uses (`None`: deployment default).
        delete_certificates: Option<bool>,
        /// Delete policies nothing else is attached to (`None`: deployment default).
        delete_policies: Option<bool>,
    },
    /// Set the status of every certificate attached to a thing.
    UpdateThingCertificates {
        /// The thing whose certificates change.
        thing_name: ThingName,
        /// The status to set.
        status: CertificateStatus,
    },
    /// Provision a thing from a template.
    ProvisionThing(ProvisionRequest),
}

impl Command {
    /// The command's type.
    pub fn command_type(&self) -> CommandType {
        match self {
            Self::GetThing { .. } => CommandType::GetThing,
            Self::DeleteThing { .. } => CommandType::DeleteThing,
            Self::UpdateThingCertificates { .. } => CommandType::UpdateThingCertificates,
            Self::ProvisionThing(_) => CommandType::ProvisionThing,
        }
    }

    /// The thing the command is about (for provisioning: the `ThingName` parameter, if any).
    pub fn subject(&self) -> String {
        match self {
            Self::GetThing { thing_name }
            | Self::DeleteThing { thing_name, .. }
            | Self::UpdateThingCertificates { thing_name, .. } => thing_name.to_string(),
            Self::ProvisionThing(request) => request.parameters.get("ThingName").cloned().unwrap_or_default(),
        }
    }
}

/// A command envelope as decoded from a queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandEnvelope {
    /// The producer's key, or the message id as a fallback.
    pub idempotency_key: IdempotencyKey,
    /// The command to run.
    pub command: Command,
    /// Fingerprint of type + payload; the same key with another fingerprint is refused.
    pub payload_hash: String,
}

/// Wire form of the payloads, decoded after schema validation.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ThingPayload {
    thing_name: String,
    #[serde(default)]
    delete_certificates: Option<bool>,
    #[serde(default)]
    delete_policies: Option<bool>,
    #[serde(default)]
    certificate_status: Option<String>,
}

impl CommandEnvelope {
    /// Decodes and validates a message body. `fallback_key` (the SQS message id) is the
    /// idempotency key when the envelope has none.
    pub fn decode(body: &str, fallback_key: &str) -> Result<Self, CommandError> {
        let value: Value = serde_json::from_str(body)
            .map_err(|e| CommandError::new(ErrorCode::InvalidMessage, format!("message body is not JSON: {e}")))?;
        Self::from_value(&value, fallback_key)
    }

    /// Validates an already parsed envelope.
    pub fn from_value(value: &Value, fallback_key: &str) -> Result<Self, CommandError> {
        let Some(object) = value.as_object() else {
            return Err(CommandError::new(ErrorCode::InvalidMessage, "message body is not a JSON object").at("/"));
        };
        let command_type = match object.get("type") {
            None => {
                return Err(CommandError::new(ErrorCode::InvalidMessage, "the command type is missing").at("/type"));
            }
            Some(Value::String(t)) => CommandType::parse(t).ok_or_else(|| {
                let known: Vec<_> = CommandType::ALL.iter().map(|t| t.as_str()).collect();
                CommandError::new(
                    ErrorCode::UnsupportedCommand,
                    format!("command type {t:?} is not supported; expected one of {}", known.join(", ")),
                )
                .at("/type")
            })?,
            Some(other) => {
                return Err(CommandError::new(
                    ErrorCode::InvalidMessage,
                    format!("the command type must be a string, not {other}"),
                )
                .at("/type"));
            }
        };
        command_schema().check(value)?;

        let payload = object.get("payload").cloned().unwrap_or(Value::Null);
        let payload_hash = fingerprint(command_type, &payload);
        let idempotency_key = object
            .get("idempotencyKey")
            .and_then(Value::as_str)
            .map_or_else(|| IdempotencyKey::new(fallback_key), IdempotencyKey::new);
        if command_type == CommandType::ProvisionThing {
            let request: ProvisionRequest = serde_path_to_error::deserialize(payload).map_err(|e| {
                CommandError::new(ErrorCode::ValidationFailed, e.inner().to_string())
                    .at(format!("/payload/{}", e.path().to_string().replace('.', "/")))
            })?;
            return Ok(Self { idempotency_key, command: Command::ProvisionThing(request), payload_hash });
        }
        let wire: ThingPayload = serde_path_to_error::deserialize(payload).map_err(|e| {
            CommandError::new(ErrorCode::ValidationFailed, e.inner().to_string())
                .at(format!("/payload/{}", e.path().to_string().replace('.', "/")))
        })?;
        let thing_name = ThingName::parse_at(&wire.thing_name, "/payload/thingName")?;
        let command = match command_type {
            CommandType::GetThing => Command::GetThing { thing_name },
            CommandType::DeleteThing => Command::DeleteThing {
                thing_name,
                delete_certificates: wire.delete_certificates,
                delete_policies: wire.delete_policies,
            },
            CommandType::UpdateThingCertificates => {
                let raw = wire.certificate_status.unwrap_or_default();
                let status = CertificateStatus::settable(&raw)
                    .map_err(|m| CommandError::new(ErrorCode::ValidationFailed, m).at("/payload/certificateStatus"))?;
                Command::UpdateThingCertificates { thing_name, status }
            }
            CommandType::ProvisionThing => unreachable!("decoded above"),
        };
        Ok(Self { idempotency_key, command, payload_hash })
    }

    /// Builds the wire form of a command (used by the CLI and the REST facade).
    pub fn to_message(key: Option<&str>, command: &Command) -> Value {
        let mut payload = serde_json::json!({ "thingName": command.subject() });
        match command {
            Command::GetThing { .. } => {}
            Command::ProvisionThing(request) => payload = serde_json::to_value(request).unwrap_or_default(),
            Command::DeleteThing { delete_certificates, delete_policies, .. } => {
                if let Some(v) = delete_certificates {
                    payload["deleteCertificates"] = Value::Bool(*v);
                }
                if let Some(v) = delete_policies {
                    payload["deletePolicies"] = Value::Bool(*v);
                }
            }
            Command::UpdateThingCertificates { status, .. } => {
                payload["certificateStatus"] = Value::String(status.as_str().to_owned());
            }
        }
        let mut message = serde_json::json!({
            "schemaVersion": 1,
            "type": command.command_type().as_str(),
            "payload": payload,
        });
        if let Some(key) = key {
            message["idempotencyKey"] = Value::String(key.to_owned());
        }
        message
    }
}

/// SHA-256 over the canonical JSON (sorted keys, no whitespace) of type and payload, so
/// that field order or formatting never makes two equal commands look different.
pub fn fingerprint(command_type: CommandType, payload: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(&serde_json::json!({"type": command_type.as_str(), "payload": payload}), &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<CommandEnvelope, CommandError> {
        CommandEnvelope::decode(body, "msg-1")
    }

    #[test]
    fn decodes_each_command_type() {
        let env = decode(r#"{"schemaVersion":1,"type":"getThing","idempotencyKey":"k1","payload":{"thingName":"t1"}}"#)
            .unwrap();
        assert_eq!(env.idempotency_key.as_str(), "k1");
        assert_eq!(env.command, Command::GetThing { thing_name: ThingName::parse("t1").unwrap() });

        let env =
            decode(r#"{"schemaVersion":1,"type":"deleteThing","payload":{"thingName":"t1","deletePolicies":false}}"#)
                .unwrap();
        assert_eq!(env.idempotency_key.as_str(), "msg-1", "falls back to the message id");
        assert!(matches!(
            env.command,
            Command::DeleteThing { delete_certificates: None, delete_policies: Some(false), .. }
        ));

        let env = decode(
            r#"{"schemaVersion":1,"type":"updateThingCertificates","payload":{"thingName":"t1","certificateStatus":"REVOKED"}}"#,
        )
        .unwrap();
        assert!(matches!(env.command, Command::UpdateThingCertificates { status: CertificateStatus::Revoked, .. }));
    }

    #[test]
    fn errors_name_the_code_and_path_at_fault() {
        let cases = [
            ("not json", ErrorCode::InvalidMessage, None),
            ("[1,2]", ErrorCode::InvalidMessage, Some("/")),
            (r#"{"schemaVersion":1,"payload":{}}"#, ErrorCode::InvalidMessage, Some("/type")),
            (r#"{"schemaVersion":1,"type":7,"payload":{}}"#, ErrorCode::InvalidMessage, Some("/type")),
            (r#"{"schemaVersion":1,"type":"rebootThing","payload":{}}"#, ErrorCode::UnsupportedCommand, Some("/type")),
            (
                r#"{"schemaVersion":2,"type":"getThing","payload":{"thingName":"t"}}"#,
                ErrorCode::ValidationFailed,
                Some("/schemaVersion"),
            ),
            (r#"{"schemaVersion":1,"type":"getThing","payload":{}}"#, ErrorCode::ValidationFailed, Some("/payload")),
            (
                r#"{"schemaVersion":1,"type":"getThing","payload":{"thingName":"a b"}}"#,
                ErrorCode::ValidationFailed,
                Some("/payload/thingName"),
            ),
            (
                r#"{"schemaVersion":1,"type":"getThing","payload":{"thingName":"t","extra":1}}"#,
                ErrorCode::ValidationFailed,
                Some("/payload"),
            ),
            (
                r#"{"schemaVersion":1,"type":"deleteThing","payload":{"thingName":"t","deleteCertificates":"yes"}}"#,
                ErrorCode::ValidationFailed,
                Some("/payload/deleteCertificates"),
            ),
            (
                r#"{"schemaVersion":1,"type":"updateThingCertificates","payload":{"thingName":"t","certificateStatus":"IN_ACTIVE"}}"#,
                ErrorCode::ValidationFailed,
                Some("/payload/certificateStatus"),
            ),
            (
                r#"{"schemaVersion":1,"type":"updateThingCertificates","payload":{"thingName":"t"}}"#,
                ErrorCode::ValidationFailed,
                Some("/payload"),
            ),
            (
                r#"{"schemaVersion":1,"type":"getThing","idempotencyKey":"","payload":{"thingName":"t"}}"#,
                ErrorCode::ValidationFailed,
                Some("/idempotencyKey"),
            ),
        ];
        for (body, code, path) in cases {
            let err = decode(body).unwrap_err();
            assert_eq!(err.code, code, "{body}: {err}");
            assert_eq!(err.path.as_deref(), path, "{body}: {err}");
        }
    }

    #[test]
    fn fingerprint_ignores_key_order_and_whitespace() {
        let a = decode(r#"{"schemaVersion":1,"type":"deleteThing","payload":{"thingName":"t","deletePolicies":true}}"#)
            .unwrap();
        let b = decode("{\"payload\": {\"deletePolicies\": true,\n \"thingName\": \"t\"}, \"type\": \"deleteThing\", \"schemaVersion\": 1}").unwrap();
        let c =
            decode(r#"{"schemaVersion":1,"type":"deleteThing","payload":{"thingName":"t","deletePolicies":false}}"#)
                .unwrap();
        assert_eq!(a.payload_hash, b.payload_hash);
        assert_ne!(a.payload_hash, c.payload_hash);
    }

    #[test]
    fn to_message_round_trips() {
        let command = Command::DeleteThing {
            thing_name: ThingName::parse("t9").unwrap(),
            delete_certificates: Some(false),
            delete_policies: None,
        };
        let msg = CommandEnvelope::to_message(Some("k"), &command);
        let env = CommandEnvelope::from_value(&msg, "m").unwrap();
        assert_eq!(env.command, command);
        assert_eq!(env.idempotency_key.as_str(), "k");
    }
}
