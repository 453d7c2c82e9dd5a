//! Commands as they arrive on the queue: one serde-tagged enum whose `type` and `payload`
//! are the envelope's, decoded (after the JSON Schema check) in one place, and the payload
//! fingerprint that makes idempotency keys safe to reuse.
//!
//! Adding a command means adding a variant here (with its payload type), a variant to
//! [`CommandResult`](super::result::CommandResult), its handler in `app/`, and its schema.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use strum::{EnumDiscriminants, EnumString, IntoStaticStr, VariantArray};

use super::bulk::BulkRow;
use super::error::{CommandError, ErrorCode};
pub use super::error::{bounded, bounded_to};
pub use super::ids::IdempotencyKey;
use super::ids::TaskId;
use super::location::Location;
use super::schema::command_schema;
use super::thing::{CertificateStatus, THING_NAME_PARAMETER, ThingName};

/// The envelope version this code reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// A decoded command: the envelope's `type` selects the variant, its `payload` the fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, EnumDiscriminants)]
#[serde(tag = "type", content = "payload", rename_all = "camelCase")]
#[strum_discriminants(
    name(CommandType),
    doc = "Which command a record or event is about (the envelope's `type`).",
    derive(Hash, Serialize, Deserialize, IntoStaticStr, EnumString, VariantArray),
    serde(rename_all = "camelCase"),
    strum(serialize_all = "camelCase")
)]
pub enum Command {
    /// GET /things/{thingName}: the thing with its certificates, policies and groups.
    GetThing(ThingRef),
    /// DELETE /things/{thingName}: the thing and, by default, what only it used.
    DeleteThing(DeleteThing),
    /// PATCH /things/{thingName}/certificates: one status on every attached certificate.
    UpdateThingCertificates(UpdateThingCertificates),
    /// POST /things: a thing from a provisioning template.
    ProvisionThing(ProvisionRequest),
    /// POST /bulkthings: many things from one template, as an asynchronous task.
    BulkProvisionThings(BulkRequest),
    /// One chunk of a bulk task's rows (sent by the service to its own queue).
    ProvisionBulkChunk(BulkChunk),
    /// Cancels a bulk task.
    CancelBulkTask(TaskRef),
}

/// The seed's BulkRegistrationRequest, plus CDF parameters for every row and `strict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkRequest {
    /// Template every row is provisioned from.
    pub provisioning_template_id: String,
    /// One map of template parameters per thing (or use `rows_object`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<BTreeMap<String, String>>,
    /// For large imports: the key of a rows file (NDJSON, or CSV by its `.csv` name) in the
    /// deployment's bucket, under the rows prefix (`CDF_ROWS_PREFIX`, default `rows/`), read as
    /// a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_object: Option<String>,
    /// CDF extension parameters, the same for every row.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub cdf_provisioning_parameters: Value,
    /// Refuse the whole task when any row is invalid, instead of provisioning the valid ones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
    /// Publish `thing.provisioned` for every row provisioned (default: only `bulk.completed`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub row_events: bool,
}

/// One chunk of a bulk task's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkChunk {
    /// The task.
    pub task_id: TaskId,
    /// Position of the chunk in the task.
    pub chunk: u32,
    /// Its rows (the valid ones; invalid rows were counted when the task was accepted).
    pub rows: Vec<BulkRow>,
}

/// A command about one bulk task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskRef {
    /// The task.
    pub task_id: TaskId,
}

/// A command about one existing thing and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ThingRef {
    /// The thing.
    pub thing_name: ThingName,
}

/// `deleteThing`'s payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteThing {
    /// The thing to delete.
    pub thing_name: ThingName,
    /// Deactivate and delete certificates no other thing uses (`None`: deployment default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_certificates: Option<bool>,
    /// Delete policies nothing else is attached to (`None`: deployment default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_policies: Option<bool>,
}

/// `updateThingCertificates`' payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateThingCertificates {
    /// The thing whose certificates change.
    pub thing_name: ThingName,
    /// ACTIVE, INACTIVE or REVOKED; the statuses IoT sets by itself are refused.
    #[serde(deserialize_with = "settable_status")]
    pub certificate_status: CertificateStatus,
}

fn settable_status<'de, D: Deserializer<'de>>(deserializer: D) -> Result<CertificateStatus, D::Error> {
    let raw = String::deserialize(deserializer)?;
    CertificateStatus::settable(&raw).map_err(serde::de::Error::custom)
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

impl ProvisionRequest {
    /// The thing the request names: its `ThingName` parameter, if it has one.
    pub fn thing_name(&self) -> Option<&str> {
        self.parameters.get(THING_NAME_PARAMETER).map(String::as_str)
    }
}

impl CommandType {
    /// The envelope's spelling.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    fn parse(value: &str) -> Option<Self> {
        value.parse().ok()
    }
}

impl fmt::Display for CommandType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Command {
    /// The command's type.
    pub fn command_type(&self) -> CommandType {
        self.into()
    }

    /// The thing the payload names in its `thingName` field, if it has one.
    pub fn thing_name(&self) -> Option<&ThingName> {
        match self {
            Self::GetThing(ThingRef { thing_name })
            | Self::DeleteThing(DeleteThing { thing_name, .. })
            | Self::UpdateThingCertificates(UpdateThingCertificates { thing_name, .. }) => Some(thing_name),
            Self::ProvisionThing(_)
            | Self::BulkProvisionThings(_)
            | Self::ProvisionBulkChunk(_)
            | Self::CancelBulkTask(_) => None,
        }
    }

    /// What the command is about, for records and the events' `subject`: a thing name, when
    /// the command names one.
    pub fn subject(&self) -> Option<String> {
        match self {
            Self::GetThing(ThingRef { thing_name })
            | Self::DeleteThing(DeleteThing { thing_name, .. })
            | Self::UpdateThingCertificates(UpdateThingCertificates { thing_name, .. }) => Some(thing_name.to_string()),
            Self::ProvisionThing(request) => request.thing_name().map(str::to_owned),
            Self::BulkProvisionThings(_) => None,
            Self::ProvisionBulkChunk(BulkChunk { task_id, .. }) | Self::CancelBulkTask(TaskRef { task_id }) => {
                Some(format!("task/{task_id}"))
            }
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

impl CommandEnvelope {
    /// Decodes and validates a message body. `fallback_key` (the SQS message id) is the
    /// idempotency key when the envelope has none.
    pub fn decode(body: &str, fallback_key: &str) -> Result<Self, CommandError> {
        let value: Value = serde_json::from_str(body)
            .map_err(|e| CommandError::new(ErrorCode::InvalidMessage, format!("message body is not JSON: {e}")))?;
        Self::from_value(&value, fallback_key)
    }

    /// Decodes a queue message; a message that can never run comes back with what could be
    /// read of it (its key and the thing it names), for its rejection.
    pub fn read_message(body: &str, message_id: &str) -> Result<Self, Rejected> {
        let value: Value = match serde_json::from_str(body) {
            Ok(value) => value,
            Err(e) => {
                return Err(Rejected {
                    idempotency_key: IdempotencyKey::new(message_id),
                    thing_name: None,
                    error: CommandError::new(ErrorCode::InvalidMessage, format!("message body is not JSON: {e}")),
                });
            }
        };
        Self::from_value(&value, message_id).map_err(|error| {
            let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
            Rejected {
                idempotency_key: IdempotencyKey::new(
                    text(value.get("idempotencyKey")).unwrap_or_else(|| message_id.to_owned()),
                ),
                thing_name: text(value.get("payload").and_then(|p| p.get("thingName"))),
                error,
            }
        })
    }

    /// Validates an already parsed envelope: its type first (an unknown one is its own
    /// error), then the JSON Schema, then the typed decoding of type + payload.
    pub fn from_value(value: &Value, fallback_key: &str) -> Result<Self, CommandError> {
        let Some(object) = value.as_object() else {
            return Err(CommandError::new(ErrorCode::InvalidMessage, "message body is not a JSON object")
                .at(Location::message()));
        };
        let command_type = match object.get("type") {
            None => {
                return Err(CommandError::new(ErrorCode::InvalidMessage, "the command type is missing").at(type_at()));
            }
            Some(Value::String(t)) => CommandType::parse(t).ok_or_else(|| {
                let known: Vec<_> = CommandType::VARIANTS.iter().map(|t| t.as_str()).collect();
                CommandError::new(
                    ErrorCode::UnsupportedCommand,
                    format!("command type {:?} is not supported; expected one of {}", bounded(t), known.join(", ")),
                )
                .at(type_at())
            })?,
            Some(_) => {
                return Err(
                    CommandError::new(ErrorCode::InvalidMessage, "the command type must be a string").at(type_at())
                );
            }
        };
        command_schema().check(value)?;

        let payload = object.get("payload").cloned().unwrap_or(Value::Null);
        let payload_hash = fingerprint(command_type, &payload);
        let idempotency_key = object
            .get("idempotencyKey")
            .and_then(Value::as_str)
            .map_or_else(|| IdempotencyKey::new(fallback_key), IdempotencyKey::new);
        if idempotency_key.is_rest() {
            return Err(CommandError::new(
                ErrorCode::ValidationFailed,
                format!(
                    "an idempotency key may not start with '{}': that prefix is the REST facade's",
                    super::ids::REST_KEY_PREFIX
                ),
            )
            .at(Location::message().child("idempotencyKey")));
        }
        let tagged = serde_json::json!({"type": command_type, "payload": payload});
        let command: Command = serde_path_to_error::deserialize(tagged).map_err(|e| {
            CommandError::new(ErrorCode::ValidationFailed, e.inner().to_string())
                .at(Location::of_serde_path(Location::message(), e.path()))
        })?;
        Ok(Self { idempotency_key, command, payload_hash })
    }

    /// Builds the wire form of a command (used by the CLI and the REST facade).
    pub fn to_message(key: Option<&str>, command: &Command) -> Value {
        let mut message = serde_json::to_value(command).unwrap_or_default();
        message["schemaVersion"] = Value::from(SCHEMA_VERSION);
        if let Some(key) = key {
            message["idempotencyKey"] = Value::String(key.to_owned());
        }
        message
    }
}

/// A queue message that can never run, with what could be read of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The producer's key, or the message id when it gave none (or the body has none).
    pub idempotency_key: IdempotencyKey,
    /// The thing the payload names (`thingName`), if it names one.
    pub thing_name: Option<String>,
    /// Why it can never run.
    pub error: CommandError,
}

impl Rejected {
    /// The rejection of a decoded command (for example a reused key).
    pub fn of(envelope: &CommandEnvelope, error: CommandError) -> Self {
        Self {
            idempotency_key: envelope.idempotency_key.clone(),
            thing_name: envelope.command.thing_name().map(ToString::to_string),
            error,
        }
    }
}

/// Where the envelope names its command type.
fn type_at() -> Location {
    Location::message().child("type")
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
        assert_eq!(env.command, Command::GetThing(ThingRef { thing_name: ThingName::parse("t1").unwrap() }));

        let env =
            decode(r#"{"schemaVersion":1,"type":"deleteThing","payload":{"thingName":"t1","deletePolicies":false}}"#)
                .unwrap();
        assert_eq!(env.idempotency_key.as_str(), "msg-1", "falls back to the message id");
        assert!(matches!(
            env.command,
            Command::DeleteThing(DeleteThing { delete_certificates: None, delete_policies: Some(false), .. })
        ));

        let env = decode(
            r#"{"schemaVersion":1,"type":"updateThingCertificates","payload":{"thingName":"t1","certificateStatus":"REVOKED"}}"#,
        )
        .unwrap();
        assert!(matches!(
            env.command,
            Command::UpdateThingCertificates(UpdateThingCertificates {
                certificate_status: CertificateStatus::Revoked,
                ..
            })
        ));
    }

    #[test]
    fn the_command_type_list_is_derived_from_the_enum() {
        let names: Vec<_> = CommandType::VARIANTS.iter().map(|t| t.as_str()).collect();
        assert_eq!(
            names,
            [
                "getThing",
                "deleteThing",
                "updateThingCertificates",
                "provisionThing",
                "bulkProvisionThings",
                "provisionBulkChunk",
                "cancelBulkTask"
            ]
        );
        assert_eq!(serde_json::to_value(CommandType::GetThing).unwrap(), "getThing");
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
        let command = Command::DeleteThing(DeleteThing {
            thing_name: ThingName::parse("t9").unwrap(),
            delete_certificates: Some(false),
            delete_policies: None,
        });
        let msg = CommandEnvelope::to_message(Some("k"), &command);
        let env = CommandEnvelope::from_value(&msg, "m").unwrap();
        assert_eq!(env.command, command);
        assert_eq!(env.idempotency_key.as_str(), "k");
    }
}
