//! Reading certificates and CSRs as AWS IoT reads them: the PEM block, the DER inside it, and
//! the key it carries. Pure parsing: making keys and signing certificates belongs to the
//! infrastructure (the `crypto` module), which imports this one.

use sha2::{Digest, Sha256};

use super::thing::CertificateId;

/// What is wrong with a certificate or CSR, without repeating the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CertificateError(pub String);

/// IoT's certificate id: hex SHA-256 of the certificate's DER.
pub fn certificate_id(certificate_pem: &str) -> Result<CertificateId, CertificateError> {
    let der =
        pem_block(certificate_pem, "CERTIFICATE").ok_or_else(|| CertificateError("not a PEM certificate".into()))?;
    Ok(CertificateId::new(hex::encode(Sha256::digest(&der))))
}

/// The public key (SubjectPublicKeyInfo DER) a CSR asks a certificate for.
pub fn csr_public_key(csr_pem: &str) -> Result<Vec<u8>, CertificateError> {
    use x509_parser::prelude::FromDer;
    let der = pem_block(csr_pem, "CERTIFICATE REQUEST").ok_or_else(|| CertificateError("not a PEM CSR".into()))?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|e| CertificateError(format!("reading the CSR: {e}")))?;
    Ok(csr.certification_request_info.subject_pki.raw.to_vec())
}

/// The public key (SubjectPublicKeyInfo DER) of a certificate.
pub fn certificate_public_key(certificate_pem: &str) -> Result<Vec<u8>, CertificateError> {
    let der =
        pem_block(certificate_pem, "CERTIFICATE").ok_or_else(|| CertificateError("not a PEM certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| CertificateError(format!("reading the certificate: {e}")))?;
    Ok(cert.tbs_certificate.subject_pki.raw.to_vec())
}

/// When a certificate's validity ends (`notAfter`).
pub fn certificate_not_after(certificate_pem: &str) -> Result<time::OffsetDateTime, CertificateError> {
    let der =
        pem_block(certificate_pem, "CERTIFICATE").ok_or_else(|| CertificateError("not a PEM certificate".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| CertificateError(format!("reading the certificate: {e}")))?;
    Ok(cert.validity().not_after.to_datetime())
}

/// Checks a CSR as AWS IoT will, before any call: the PEM decodes, the DER is a PKCS#10
/// request, and its key is one IoT accepts (RSA of at least 2048 bits, or ECDSA on P-256,
/// P-384 or P-521). The error says what is wrong without repeating the input.
pub fn check_csr(csr_pem: &str) -> Result<(), CertificateError> {
    use x509_parser::prelude::FromDer;
    let der = pem_block(csr_pem, "CERTIFICATE REQUEST").ok_or_else(|| {
        CertificateError("not a PEM certificate signing request (no block, or its base64 does not decode)".into())
    })?;
    let (_, csr) = x509_parser::certification_request::X509CertificationRequest::from_der(&der)
        .map_err(|_| CertificateError("the PEM block is not a PKCS#10 certificate signing request".into()))?;
    check_key(&csr.certification_request_info.subject_pki)
}

/// Checks a certificate PEM before it is registered: it decodes, parses, and holds a key IoT
/// accepts.
pub fn check_certificate(certificate_pem: &str) -> Result<(), CertificateError> {
    let der = pem_block(certificate_pem, "CERTIFICATE")
        .ok_or_else(|| CertificateError("not a PEM certificate (no block, or its base64 does not decode)".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| CertificateError("the PEM block is not an X.509 certificate".into()))?;
    check_key(&cert.tbs_certificate.subject_pki)
}

fn check_key(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Result<(), CertificateError> {
    use x509_parser::public_key::PublicKey;
    const P256: &str = "1.2.840.10045.3.1.7";
    const P384: &str = "1.3.132.0.34";
    const P521: &str = "1.3.132.0.35";
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) if rsa.key_size() >= 2048 => Ok(()),
        Ok(PublicKey::RSA(rsa)) => {
            Err(CertificateError(format!("an RSA key of {} bits; AWS IoT needs at least 2048", rsa.key_size())))
        }
        Ok(PublicKey::EC(_)) => {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
            match curve.as_deref() {
                Some(P256 | P384 | P521) => Ok(()),
                other => Err(CertificateError(format!(
                    "an EC key on curve {}; AWS IoT takes P-256, P-384 or P-521",
                    other.unwrap_or("(none given)")
                ))),
            }
        }
        Ok(_) => Err(CertificateError("a key AWS IoT does not take; use RSA (2048 bits or more) or ECDSA".into())),
        Err(_) => Err(CertificateError("the public key cannot be read".into())),
    }
}

/// The DER of the first `label` block of a PEM text; `None` when there is none or its base64
/// does not decode.
pub(crate) fn pem_block(text: &str, label: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let start = text.find(&begin)? + begin.len();
    let end = text[start..].find(&format!("-----END {label}-----"))? + start;
    let body: String = text[start..end].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}
