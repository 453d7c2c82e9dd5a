//! CA private keys kept in memory for a while ([`CachedCaKeys`]): a signing reads its CA's key
//! from the store once per period, not once per device, so a bulk task of 10,000 CA-signed
//! devices makes a handful of reads of the key (and of plaintext copies of it) instead of
//! 10,000. The one copy is shared and wiped when the last holder drops it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::domain::secret::Secret;
use crate::ports::{CaKeyStore, PortError};

/// A [`CaKeyStore`] that keeps each key it read for `ttl`.
pub struct CachedCaKeys {
    inner: Arc<dyn CaKeyStore>,
    ttl: Duration,
    keys: Mutex<HashMap<String, (Instant, Arc<Secret>)>>,
}

impl CachedCaKeys {
    /// `inner`'s keys, each kept for `ttl` after it was read (a key replaced in the store is
    /// used from then on at most `ttl` later).
    pub fn new(inner: Arc<dyn CaKeyStore>, ttl: Duration) -> Self {
        Self { inner, ttl, keys: Mutex::default() }
    }
}

#[async_trait]
impl CaKeyStore for CachedCaKeys {
    async fn ca_private_key(&self, ca_certificate_id: &str) -> Result<Arc<Secret>, PortError> {
        let now = Instant::now();
        if let Some((read_at, key)) = self.keys.lock().expect("CA key cache lock").get(ca_certificate_id)
            && now.duration_since(*read_at) < self.ttl
        {
            return Ok(key.clone());
        }
        // Failures are not kept: a key put in the store is found on the next signing.
        let key = self.inner.ca_private_key(ca_certificate_id).await?;
        let mut keys = self.keys.lock().expect("CA key cache lock");
        keys.retain(|_, (read_at, _)| now.duration_since(*read_at) < self.ttl);
        keys.insert(ca_certificate_id.to_owned(), (now, key.clone()));
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryCaKeys;

    #[tokio::test(start_paused = true)]
    async fn a_key_is_read_once_per_period_and_a_missing_one_every_time() {
        let store = Arc::new(MemoryCaKeys::default());
        store.put("ca1", Secret::new("-----BEGIN PRIVATE KEY-----".into()));
        let cached = CachedCaKeys::new(store.clone(), Duration::from_secs(300));
        for _ in 0..10 {
            assert!(cached.ca_private_key("ca1").await.unwrap().expose().contains("PRIVATE KEY"));
        }
        assert_eq!(store.reads(), 1);
        tokio::time::advance(Duration::from_secs(301)).await;
        cached.ca_private_key("ca1").await.unwrap();
        assert_eq!(store.reads(), 2);
        for _ in 0..3 {
            assert!(cached.ca_private_key("ca2").await.is_err());
        }
        assert_eq!(store.reads(), 5, "a missing key is asked for again");
    }
}
