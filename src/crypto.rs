//! Device keys, CSRs and CA-signed certificates (rcgen on aws-lc-rs). Private keys travel
//! as [`Secret`]s, which keep them out of logs and serialized records. Reading and checking
//! certificates and CSRs is [`crate::domain::certificate`]'s.
//!
//! Pure computation: no I/O. RSA key generation costs tens of milliseconds, so callers run
//! it on a blocking thread.

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256, RsaKeySize, SerialNumber,
};
use time::{Duration, OffsetDateTime};

pub use crate::domain::secret::Secret;
use crate::domain::template::plan::{CertInfo, KeyAlgorithm};

/// A key made here with its CSR.
#[derive(Debug)]
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

/// A self-signed CA (certificate PEM, private key) for tests, demos and benchmarks.
pub fn test_ca(common_name: &str) -> Result<(String, Secret), CryptoError> {
    test_ca_until(common_name, None)
}

/// [`test_ca`] valid until `not_after` (rcgen's far-future default when `None`).
pub fn test_ca_until(common_name: &str, not_after: Option<OffsetDateTime>) -> Result<(String, Secret), CryptoError> {
    let key = KeyPair::generate().map_err(failed("generating the CA key"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    if let Some(not_after) = not_after {
        params.not_before = not_after - Duration::days(3650);
        params.not_after = not_after;
    }
    let cert = params.self_signed(&key).map_err(failed("self-signing the CA"))?;
    Ok((cert.pem(), Secret::new(key.serialize_pem())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::certificate::{
        certificate_id, certificate_public_key, check_certificate, check_csr, csr_public_key, pem_block,
    };

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
