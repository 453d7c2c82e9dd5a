//! Device keys, CSRs and CA-signed certificates (rcgen on aws-lc-rs). Private keys travel
//! as [`Secret`]s, which keep them out of logs and serialized records.
//!
//! Pure computation: no I/O. RSA key generation costs tens of milliseconds, so callers run
//! it on a blocking thread.

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256, RsaKeySize, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::domain::CertificateId;
pub use crate::domain::secret::Secret;
use crate::domain::template::plan::{CertInfo, KeyAlgorithm};

/// A key made here with its CSR.
#[derive(Debug, Clone)]
pub struct DeviceKey {
    /// PKCS#8 PEM.
    pub private_key: Secret,
    /// SubjectPublicKeyInfo PEM.
    pub public_key_pem: String,
    /// PKCS#10 PEM.
    pub csr_pem: String,
}

/// A failure of the cryptography, with the input at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CryptoError(pub String);

fn failed(what: &str) -> impl Fn(rcgen::Error) -> CryptoError + '_ {
    move |e| CryptoError(format!("{what}: {e}"))
}

/// The subject CDF would write from `certInfo`, in CDF's order (C, ST, L, O, OU, CN,
/// emailAddress). `default_cn` is used when `certInfo` has no common name.
fn subject(info: &CertInfo, default_cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    let fields = [
        (DnType::CountryName, info.country.as_deref()),
        (DnType::StateOrProvinceName, info.state_name.as_deref()),
        (DnType::LocalityName, info.locality.as_deref()),
        (DnType::OrganizationName, info.organization.as_deref()),
        (DnType::OrganizationalUnitName, info.organizational_unit.as_deref()),
        (DnType::CommonName, Some(info.common_name.as_deref().unwrap_or(default_cn))),
        (DnType::CustomDnType(vec![1, 2, 840, 113_549, 1, 9, 1]), info.email_address.as_deref()),
    ];
    for (kind, value) in fields {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            dn.push(kind, value);
        }
    }
    dn
}

/// Generates a key and a CSR for `info` (CN defaults to `default_cn`).
pub fn generate_key_and_csr(
    algorithm: KeyAlgorithm,
    info: &CertInfo,
    default_cn: &str,
) -> Result<DeviceKey, CryptoError> {
    let key = match algorithm {
        KeyAlgorithm::EcdsaP256 => KeyPair::generate(),
        KeyAlgorithm::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
    }
    .map_err(failed("generating the key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(info, default_cn);
    let csr = params.serialize_request(&key).map_err(failed("making the CSR"))?;
    Ok(DeviceKey {
        private_key: Secret::new(key.serialize_pem()),
        public_key_pem: key.public_key_pem(),
        csr_pem: csr.pem().map_err(failed("encoding the CSR"))?,
    })
}

/// Signs `csr_pem` with the CA (certificate and private key, PEM: PKCS#8, PKCS#1 or SEC1)
/// for `days` from `now`: a client-authentication end-entity certificate with a random
/// serial. Whatever the CSR asks for beyond its subject and key is ignored.
pub fn sign_csr(
    csr_pem: &str,
    ca_certificate_pem: &str,
    ca_private_key: &Secret,
    days: u32,
    now: OffsetDateTime,
) -> Result<String, CryptoError> {
    let ca_key = KeyPair::from_pem(ca_private_key.expose()).map_err(failed("reading the CA private key"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_certificate_pem, &ca_key).map_err(failed("reading the CA certificate"))?;
    let mut csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(failed("reading the CSR"))?;
    let params = &mut csr.params;
    params.is_ca = IsCa::ExplicitNoCa;
    params.subject_alt_names.clear();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = now - Duration::minutes(5); // tolerate device clocks running slightly behind
    params.not_after = now + Duration::days(i64::from(days));
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params.use_authority_key_identifier_extension = true;
    Ok(csr.signed_by(&issuer).map_err(failed("signing the certificate"))?.pem())
}

fn random_serial() -> [u8; 16] {
    let mut serial = *uuid::Uuid::new_v4().as_bytes();
    serial[0] &= 0x7f; // positive
    serial
}

/// IoT's certificate id: hex SHA-256 of the certificate's DER.
pub fn certificate_id(certificate_pem: &str) -> Result<CertificateId, CryptoError> {
    let der = pem_block(certificate_pem, "CERTIFICATE").ok_or_else(|| CryptoError("not a PEM certificate".into()))?;
    Ok(CertificateId::new(hex::encode(Sha256::digest(&der))))
}

/// The public key (SubjectPublicKeyInfo DER) a CSR asks a certificate for.
pub fn csr_public_key(csr_pem: &str) -> Result<Vec<u8>, CryptoError> {
    use x509_parser::prelude::FromDer;
    let der = pem_block(csr_pem, "CERTIFICATE REQUEST").ok_or_else(|| CryptoError("not a PEM CSR".into()))?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| CryptoError(format!("reading the CSR: {e}")))?;
    Ok(csr.certification_request_info.subject_pki.raw.to_vec())
}

/// Checks a CSR as AWS IoT will, before any call: the PEM decodes, the DER is a PKCS#10
/// request, and its key is one IoT accepts (RSA of at least 2048 bits, or ECDSA on P-256,
/// P-384 or P-521). The error says what is wrong without repeating the input.
pub fn check_csr(csr_pem: &str) -> Result<(), CryptoError> {
    use x509_parser::prelude::FromDer;
    let der = pem_block(csr_pem, "CERTIFICATE REQUEST").ok_or_else(|| {
        CryptoError("not a PEM certificate signing request (no block, or its base64 does not decode)".into())
    })?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|_| CryptoError("the PEM block is not a PKCS#10 certificate signing request".into()))?;
    check_key(&csr.certification_request_info.subject_pki)
}

/// Checks a certificate PEM before it is registered: it decodes, parses, and holds a key IoT
/// accepts.
pub fn check_certificate(certificate_pem: &str) -> Result<(), CryptoError> {
    let der = pem_block(certificate_pem, "CERTIFICATE")
        .ok_or_else(|| CryptoError("not a PEM certificate (no block, or its base64 does not decode)".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| CryptoError("the PEM block is not an X.509 certificate".into()))?;
    check_key(&cert.tbs_certificate.subject_pki)
}

fn check_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<(), CryptoError> {
    use x509_parser::public_key::PublicKey;
    const P256: &str = "1.2.840.10045.3.1.7";
    const P384: &str = "1.3.132.0.34";
    const P521: &str = "1.3.132.0.35";
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= 2048 => Ok(()),
        Ok(PublicKey::RSA(rsa)) => {
            Err(CryptoError(format!("an RSA key of {} bits; AWS IoT needs at least 2048", rsa.key_size())))
        }
        Ok(PublicKey::EC(_)) => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            match curve.as_deref() {
                Some(P256 | P384 | P521) => Ok(()),
                other => Err(CryptoError(format!(
                    "an EC key on curve {}; AWS IoT takes P-256, P-384 or P-521",
                    other.unwrap_or("(none given)")
                ))),
            }
        }
        Ok(_) => Err(CryptoError("a key AWS IoT does not take; use RSA (2048 bits or more) or ECDSA".into())),
        Err(_) => Err(CryptoError("the public key cannot be read".into())),
    }
}

/// The public key (SubjectPublicKeyInfo DER) of a certificate.
pub fn certificate_public_key(certificate_pem: &str) -> Result<Vec<u8>, CryptoError> {
    let der = pem_block(certificate_pem, "CERTIFICATE").ok_or_else(|| CryptoError("not a PEM certificate".into()))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| CryptoError(format!("reading the certificate: {e}")))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}

fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let start = text.find(&begin)? + begin.len();
    let end = text[start..].find(&format!("-----END {label}-----"))? + start;
    let body: String = text[start..end].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

/// A self-signed CA (certificate PEM, private key) for tests, demos and benchmarks.
pub fn test_ca(common_name: &str) -> Result<(String, Secret), CryptoError> {
    let key = KeyPair::generate().map_err(failed("generating the CA key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let cert = params.self_signed(&key).map_err(failed("self-signing the CA"))?;
    Ok((cert.pem(), Secret::new(key.serialize_pem())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> CertInfo {
        CertInfo {
            common_name: Some("dev-1".into()),
            organization: Some("Example".into()),
            country: Some("DE".into()),
            ..CertInfo::default()
        }
    }

    #[test]
    fn csrs_and_certificates_are_checked_as_iot_would() {
        let key = generate_key_and_csr(KeyAlgorithm::EcdsaP256, &CertInfo::default(), "dev").unwrap();
        check_csr(&key.csr_pem).unwrap();
        let broken = key.csr_pem.replacen('M', "*", 1);
        assert!(check_csr(&broken).unwrap_err().0.contains("base64"));
        assert!(check_csr("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----").is_err());
        let small = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let csr = rcgen::CertificateParams::new(vec!["x".into()]).unwrap().serialize_request(&small).unwrap();
        check_csr(&csr.pem().unwrap()).unwrap();
        let (ca, _) = test_ca("ca").unwrap();
        check_certificate(&ca).unwrap();
        assert!(check_certificate(&ca.replacen('M', "#", 1)).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("-----BEGIN PRIVATE KEY-----".into());
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
    }

    #[test]
    fn ca_signs_csrs_of_both_key_types() {
        let (ca_pem, ca_key) = test_ca("Test CA").unwrap();
        for alg in [KeyAlgorithm::EcdsaP256, KeyAlgorithm::Rsa2048] {
            let key = generate_key_and_csr(alg, &info(), "fallback").unwrap();
            assert!(key.private_key.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
            assert!(key.csr_pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
            let cert = sign_csr(&key.csr_pem, &ca_pem, &ca_key, 30, OffsetDateTime::now_utc()).unwrap();
            let der = pem_block(&cert, "CERTIFICATE").unwrap();
            assert_eq!(certificate_public_key(&cert).unwrap(), csr_public_key(&key.csr_pem).unwrap());
            let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
            assert_eq!(parsed.subject().to_string(), "C=DE, O=Example, CN=dev-1");
            assert_eq!(parsed.issuer().to_string(), "CN=Test CA");
            let validity = parsed.validity();
            let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400;
            assert_eq!(days, 30);
            assert_eq!(certificate_id(&cert).unwrap().as_str().len(), 64);
        }
    }

    #[test]
    fn the_common_name_defaults_to_the_thing_name() {
        let key = generate_key_and_csr(KeyAlgorithm::EcdsaP256, &CertInfo::default(), "thing-9").unwrap();
        let csr = CertificateSigningRequestParams::from_pem(&key.csr_pem).unwrap();
        let cn = csr.params.distinguished_name.get(&DnType::CommonName).unwrap();
        assert_eq!(format!("{cn:?}"), format!("{:?}", rcgen::DnValue::Utf8String("thing-9".into())));
    }
}
