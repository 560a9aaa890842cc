//! A [`Store`] that delegates to a real one and counts what the catalog sync and the
//! catalog GET do to it: write calls, catalog entries written, catalog version reads and
//! catalog reads. Shared by `tests/e2e/catalog.rs` and `benches/catalog_sync.rs` (each
//! includes it with `#[path]`; each uses part of it).
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use time::OffsetDateTime;

use cloudify_osb::domain::binding::Binding;
use cloudify_osb::domain::catalog::{Catalog, CatalogEntry, ServiceSettings};
use cloudify_osb::domain::error::StoreError;
use cloudify_osb::domain::ids::{BindingId, InstanceId};
use cloudify_osb::domain::instance::{Instance, InstanceState};
use cloudify_osb::domain::ports::Store;

/// Delegates to a real store and counts reads and writes.
pub struct Counting {
    inner: Arc<dyn Store>,
    writes: AtomicUsize,
    pub entries_written: AtomicUsize,
    pub version_reads: AtomicUsize,
    pub catalog_reads: AtomicUsize,
}

impl Counting {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            writes: AtomicUsize::new(0),
            entries_written: AtomicUsize::new(0),
            version_reads: AtomicUsize::new(0),
            catalog_reads: AtomicUsize::new(0),
        })
    }
    fn wrote(&self) {
        self.writes.fetch_add(1, Ordering::SeqCst);
    }
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    /// Write calls and entries written since the last call, and resets both.
    pub fn take(&self) -> (usize, usize) {
        (
            self.writes.swap(0, Ordering::SeqCst),
            self.entries_written.swap(0, Ordering::SeqCst),
        )
    }
}

#[async_trait]
impl Store for Counting {
    async fn catalog_version(&self) -> Result<u64, StoreError> {
        self.version_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.catalog_version().await
    }
    async fn catalog(&self) -> Result<Catalog, StoreError> {
        self.catalog_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.catalog().await
    }
    async fn put_catalog_entries(&self, entries: &[CatalogEntry]) -> Result<u64, StoreError> {
        self.wrote();
        self.entries_written
            .fetch_add(entries.len(), Ordering::SeqCst);
        self.inner.put_catalog_entries(entries).await
    }
    async fn service_settings(&self, b: &str) -> Result<Option<ServiceSettings>, StoreError> {
        self.inner.service_settings(b).await
    }
    async fn all_service_settings(&self) -> Result<Vec<ServiceSettings>, StoreError> {
        self.inner.all_service_settings().await
    }
    async fn put_service_settings(&self, s: &ServiceSettings) -> Result<(), StoreError> {
        self.wrote();
        self.inner.put_service_settings(s).await
    }
    async fn create_instance(&self, i: &Instance) -> Result<Instance, StoreError> {
        self.wrote();
        self.inner.create_instance(i).await
    }
    async fn instance(&self, id: &InstanceId) -> Result<Option<Instance>, StoreError> {
        self.inner.instance(id).await
    }
    async fn update_instance(&self, i: &Instance) -> Result<Instance, StoreError> {
        self.wrote();
        self.inner.update_instance(i).await
    }
    async fn delete_instance(&self, id: &InstanceId, version: u64) -> Result<(), StoreError> {
        self.wrote();
        self.inner.delete_instance(id, version).await
    }
    async fn instances(&self, state: Option<InstanceState>) -> Result<Vec<Instance>, StoreError> {
        self.inner.instances(state).await
    }
    async fn create_binding(&self, b: &Binding) -> Result<Binding, StoreError> {
        self.wrote();
        self.inner.create_binding(b).await
    }
    async fn binding(&self, i: &InstanceId, id: &BindingId) -> Result<Option<Binding>, StoreError> {
        self.inner.binding(i, id).await
    }
    async fn update_binding(&self, b: &Binding) -> Result<Binding, StoreError> {
        self.wrote();
        self.inner.update_binding(b).await
    }
    async fn delete_binding(
        &self,
        i: &InstanceId,
        id: &BindingId,
        version: u64,
    ) -> Result<(), StoreError> {
        self.wrote();
        self.inner.delete_binding(i, id, version).await
    }
    async fn bindings_of(&self, i: &InstanceId) -> Result<Vec<Binding>, StoreError> {
        self.inner.bindings_of(i).await
    }
    async fn bindings_due(&self, t: OffsetDateTime) -> Result<Vec<Binding>, StoreError> {
        self.inner.bindings_due(t).await
    }
}
