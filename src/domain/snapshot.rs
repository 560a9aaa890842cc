//! The process's copy of the catalog (route `catalog`, and the service/plan/parameter checks
//! of provision, update and bind): one read of the catalog version per request, the whole
//! catalog read again only when the version changed. Each snapshot carries what is derived
//! from it once: the served JSON body, its `ETag`, and the compiled parameter validators
//! (so they are compiled once per catalog version). Must not import adapter, HTTP or AWS
//! crates.

use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::catalog::{Catalog, Service};
use super::error::StoreError;
use super::params::ParameterValidators;
use super::ports::Store;

/// One catalog version with what is derived from it.
#[derive(Debug)]
pub struct CatalogSnapshot {
    pub catalog: Catalog,
    /// Validators of this version's plan schemas, compiled on first use.
    pub validators: ParameterValidators,
    document: OnceLock<CatalogDocument>,
}

/// The body of `GET /v2/catalog` and its entity tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogDocument {
    /// `{"services": [...]}`: active offerings in name order.
    pub body: Arc<[u8]>,
    /// A strong entity tag, quoted: `"` + 32 hex digits of the body's SHA-256 + `"`.
    pub etag: String,
}

#[derive(Serialize)]
struct Body<'a> {
    services: Vec<&'a Service>,
}

impl CatalogSnapshot {
    pub fn new(catalog: Catalog) -> Self {
        Self {
            catalog,
            validators: ParameterValidators::new(),
            document: OnceLock::new(),
        }
    }

    /// The served document, serialised once per snapshot.
    pub fn document(&self) -> &CatalogDocument {
        self.document.get_or_init(|| {
            let body = Body {
                services: self.catalog.active_services(),
            };
            // Serialising plain data with string keys cannot fail.
            let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"services\":[]}".to_vec());
            let digest = Sha256::digest(&bytes);
            let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
            CatalogDocument {
                body: bytes.into(),
                etag: format!("\"{hex}\""),
            }
        })
    }
}

/// The cached snapshot, refreshed when the store's catalog version moves.
#[derive(Debug, Default)]
pub struct CatalogCache {
    /// The snapshot and when its version was last confirmed by the store.
    current: RwLock<Option<(Arc<CatalogSnapshot>, Instant)>>,
    /// How long a confirmed copy is used without asking the store again (zero: always ask).
    max_age: Duration,
}

impl CatalogCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// A cache that uses a copy confirmed less than `max_age` ago without a store read
    /// (`--catalog-max-age`): a sync's changes then show up to `max_age` late in this process.
    pub fn with_max_age(max_age: Duration) -> Self {
        Self {
            max_age,
            ..Self::default()
        }
    }

    /// The current snapshot: one `catalog_version` read, plus one `catalog` read when the
    /// version differs from the cached copy's; with nothing cached yet (a fresh process),
    /// only the `catalog` read (it carries its version); no read at all while the copy is
    /// younger than the maximum age. A store error is returned (never an empty catalog).
    pub async fn current(&self, store: &dyn Store) -> Result<Arc<CatalogSnapshot>, StoreError> {
        if let Some((cached, confirmed)) = self.cached() {
            if !self.max_age.is_zero() && confirmed.elapsed() < self.max_age {
                return Ok(cached);
            }
            let asked = Instant::now();
            let version = store.catalog_version().await?;
            if cached.catalog.version == version {
                self.confirm(&cached, asked);
                return Ok(cached);
            }
        }
        let asked = Instant::now();
        let catalog = store.catalog().await?;
        let fresh = Arc::new(CatalogSnapshot::new(catalog));
        let mut slot = self.current.write().unwrap_or_else(PoisonError::into_inner);
        // Keep whichever is newer when two requests refresh at once.
        match slot.as_ref() {
            Some((s, _)) if s.catalog.version > fresh.catalog.version => Ok(s.clone()),
            _ => {
                *slot = Some((fresh.clone(), asked));
                Ok(fresh)
            }
        }
    }

    fn cached(&self) -> Option<(Arc<CatalogSnapshot>, Instant)> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records that the store still had `snapshot`'s version at `asked` (when the cache
    /// ages copies at all).
    fn confirm(&self, snapshot: &Arc<CatalogSnapshot>, asked: Instant) {
        if self.max_age.is_zero() {
            return;
        }
        let mut slot = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if let Some((s, confirmed)) = slot.as_mut()
            && Arc::ptr_eq(s, snapshot)
            && *confirmed < asked
        {
            *confirmed = asked;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::MemoryStore;
    use crate::domain::ids::DEFAULT_ID_NAMESPACE;
    use crate::domain::mapping::map_blueprint;
    use crate::domain::ports::Blueprint;

    fn entry(id: &str) -> crate::domain::catalog::CatalogEntry {
        let bp = Blueprint {
            id: id.into(),
            tenant: "t".into(),
            description: None,
            inputs: Default::default(),
            metadata: Default::default(),
            labels: vec![],
            updated_at: None,
        };
        map_blueprint(&bp, id.into(), &DEFAULT_ID_NAMESPACE, "t", None).entry
    }

    #[tokio::test]
    async fn the_snapshot_is_reused_until_the_version_moves() {
        let s = MemoryStore::new();
        s.put_catalog_entries(&[entry("a")]).await.unwrap();
        let cache = CatalogCache::new();
        let first = cache.current(&s).await.unwrap();
        let again = cache.current(&s).await.unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let etag = first.document().etag.clone();
        s.put_catalog_entries(&[entry("b")]).await.unwrap();
        let moved = cache.current(&s).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &moved));
        assert_ne!(moved.document().etag, etag);
        let body: serde_json::Value = serde_json::from_slice(&moved.document().body).unwrap();
        assert_eq!(body["services"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_copy_younger_than_the_max_age_is_used_without_asking_the_store() {
        let s = MemoryStore::new();
        s.put_catalog_entries(&[entry("a")]).await.unwrap();
        let cache = CatalogCache::with_max_age(Duration::from_millis(300));
        let first = cache.current(&s).await.unwrap();
        // A sync publishes a new version: within the max age, the copy stands.
        s.put_catalog_entries(&[entry("b")]).await.unwrap();
        let young = cache.current(&s).await.unwrap();
        assert!(Arc::ptr_eq(&first, &young));
        assert_eq!(young.catalog.entries.len(), 1);
        // Past it, the version is checked again and the new catalog read.
        std::thread::sleep(Duration::from_millis(350));
        let moved = cache.current(&s).await.unwrap();
        assert!(!Arc::ptr_eq(&first, &moved));
        assert_eq!(moved.catalog.entries.len(), 2);
    }
}
