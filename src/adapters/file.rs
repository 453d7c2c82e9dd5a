//! CA private keys from a local directory (a mounted secret volume), for deployments that keep
//! them off S3: `<dir>/<CA certificate id>.pem`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::crypto::Secret;
use crate::ports::{CaKeyStore, ErrorKind, PortError};

/// CA keys as files.
#[derive(Debug, Clone)]
pub struct FileCaKeyStore {
    dir: PathBuf,
}

impl FileCaKeyStore {
    /// Keys in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

#[async_trait]
impl CaKeyStore for FileCaKeyStore {
    async fn ca_private_key(&self, ca_certificate_id: &str) -> Result<Arc<Secret>, PortError> {
        // The id is IoT's hex certificate id; anything else could escape the directory.
        if ca_certificate_id.is_empty() || !ca_certificate_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(PortError::new(ErrorKind::Invalid, "file:ca_private_key", "the CA id must be alphanumeric"));
        }
        let path = self.dir.join(format!("{ca_certificate_id}.pem"));
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(Arc::new(Secret::new(text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(PortError::new(
                ErrorKind::NotFound,
                "file:ca_private_key",
                format!("no private key for CA {ca_certificate_id} at {}", path.display()),
            )),
            Err(e) => {
                Err(PortError::new(ErrorKind::Permanent, "file:ca_private_key", format!("{}: {e}", path.display())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_keys_by_ca_id_and_refuses_paths() {
        let dir = std::env::temp_dir().join(format!("cdf-ca-keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("abc123.pem"), "-----BEGIN PRIVATE KEY-----").unwrap();
        let store = FileCaKeyStore::new(&dir);
        assert!(store.ca_private_key("abc123").await.unwrap().expose().contains("PRIVATE KEY"));
        assert_eq!(store.ca_private_key("missing").await.unwrap_err().kind, ErrorKind::NotFound);
        assert_eq!(store.ca_private_key("../etc/passwd").await.unwrap_err().kind, ErrorKind::Invalid);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
