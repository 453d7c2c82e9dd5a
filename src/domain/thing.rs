//! Identifiers and enumerations of the AWS IoT registry, validated once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{CommandError, ErrorCode};
use super::location::Location;

/// The template parameter that names the thing, by AWS's and CDF's convention.
pub const THING_NAME_PARAMETER: &str = "ThingName";

/// A validated AWS IoT thing name: 1 to 128 characters of `[a-zA-Z0-9:_-]`
/// (the pattern of the IoT `CreateThing` API).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ThingName(String);

impl ThingName {
    /// Longest name IoT accepts.
    pub const MAX_LEN: usize = 128;

    /// Validates `name`, reporting the problem in terms a caller can act on.
    pub fn parse(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("thing name must not be empty".into());
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(format!("thing name is longer than {} characters", Self::MAX_LEN));
        }
        if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'))) {
            return Err(format!("thing name contains {bad:?}; only letters, digits, ':', '_' and '-' are allowed"));
        }
        Ok(Self(name.to_owned()))
    }

    /// Like [`ThingName::parse`], but as a command error naming the JSON path at fault.
    pub fn parse_at(name: &str, path: Location) -> Result<Self, CommandError> {
        Self::parse(name).map_err(|m| CommandError::new(ErrorCode::ValidationFailed, m).at(path))
    }

    /// The name as IoT knows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ThingName {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ThingName> for String {
    fn from(value: ThingName) -> Self {
        value.0
    }
}

impl fmt::Display for ThingName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Status of an IoT certificate, as IoT reports it.
///
/// Only [`CertificateStatus::settable`] values may be requested by callers; the others
/// are states IoT puts certificates in by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum CertificateStatus {
    /// Usable for connections.
    Active,
    /// Disabled; may be re-activated.
    Inactive,
    /// Permanently disabled; IoT refuses to re-activate it.
    Revoked,
    /// Being transferred to another account.
    PendingTransfer,
    /// Registered by JITR, waiting for activation.
    PendingActivation,
    /// Registered inactive (deprecated by IoT).
    RegisterInactive,
}

impl CertificateStatus {
    /// The statuses a caller may set through `updateThingCertificates`.
    pub const SETTABLE: [CertificateStatus; 3] = [Self::Active, Self::Inactive, Self::Revoked];

    /// IoT's spelling.
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// Parses IoT's spelling of any status.
    pub fn from_iot(value: &str) -> Option<Self> {
        value.parse().ok()
    }

    /// Parses a status a caller asked for, accepting only the settable ones.
    pub fn settable(value: &str) -> Result<Self, String> {
        Self::SETTABLE
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| format!("certificate status {value:?} is not one of ACTIVE, INACTIVE, REVOKED"))
    }

    /// Whether IoT allows moving a certificate from `self` to `target`.
    /// A revoked certificate can never be brought back.
    pub fn can_become(self, target: CertificateStatus) -> bool {
        self != Self::Revoked || target == Self::Revoked
    }
}

impl fmt::Display for CertificateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An IoT certificate id: the hex SHA-256 of the certificate's DER.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CertificateId(String);

impl CertificateId {
    /// Wraps an id IoT gave (or one computed from a certificate's DER).
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as IoT knows it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CertificateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AWS ARN naming an IoT principal or policy target: a certificate
/// (`arn:aws:iot:<region>:<account>:cert/<id>`), or another principal such as a Cognito identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Arn(String);

impl Arn {
    /// Wraps an ARN IoT gave.
    pub fn new(arn: impl Into<String>) -> Self {
        Self(arn.into())
    }

    /// The ARN text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The certificate id, when this is a certificate's ARN.
    pub fn certificate_id(&self) -> Option<CertificateId> {
        certificate_id_from_arn(&self.0).map(CertificateId::new)
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Extracts the certificate id from a certificate ARN (`arn:aws:iot:<region>:<account>:cert/<id>`).
/// Returns `None` for principals that are not IoT certificates (Cognito identities, IAM users).
pub fn certificate_id_from_arn(arn: &str) -> Option<&str> {
    let (_, id) = arn.split_once(":cert/")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thing_names_follow_iot_rules() {
        assert!(ThingName::parse("sensor-01:a_b").is_ok());
        assert!(ThingName::parse(&"x".repeat(128)).is_ok());
        assert_eq!(ThingName::parse("").unwrap_err(), "thing name must not be empty");
        assert!(ThingName::parse(&"x".repeat(129)).unwrap_err().contains("longer than 128"));
        assert!(ThingName::parse("a b").unwrap_err().contains("' '"));
        assert!(ThingName::parse("ä").is_err());
    }

    #[test]
    fn only_three_statuses_are_settable() {
        for ok in ["ACTIVE", "INACTIVE", "REVOKED"] {
            assert_eq!(CertificateStatus::settable(ok).unwrap().as_str(), ok);
        }
        for bad in ["IN_ACTIVE", "active", "PENDING_TRANSFER", "", "BOGUS"] {
            assert!(CertificateStatus::settable(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revoked_is_final() {
        use CertificateStatus::*;
        assert!(!Revoked.can_become(Active));
        assert!(!Revoked.can_become(Inactive));
        assert!(Revoked.can_become(Revoked));
        assert!(Inactive.can_become(Active));
        assert!(Active.can_become(Revoked));
    }

    #[test]
    fn certificate_ids_come_from_cert_arns_only() {
        assert_eq!(certificate_id_from_arn("arn:aws:iot:us-east-1:123456789012:cert/abc123"), Some("abc123"));
        assert_eq!(certificate_id_from_arn("arn:aws:cognito-identity:us-east-1:1:x"), None);
        assert_eq!(certificate_id_from_arn("arn:aws:iot:us-east-1:1:cert/"), None);
    }
}
