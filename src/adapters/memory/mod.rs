//! In-memory [`Store`]: for fast tests and as the reference behaviour the contract suite
//! pins down. Everything lives in one mutex-guarded map set; nothing survives the process.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::binding::{Binding, BindingState};
use crate::domain::catalog::{Catalog, CatalogEntry, ServiceSettings};
use crate::domain::error::StoreError;
use crate::domain::ids::{BindingId, InstanceId, ServiceId};
use crate::domain::instance::{Instance, InstanceState};
use crate::domain::ports::Store;

#[derive(Default)]
struct State {
    catalog_version: u64,
    catalog: BTreeMap<ServiceId, CatalogEntry>,
    settings: BTreeMap<String, ServiceSettings>,
    instances: BTreeMap<InstanceId, Instance>,
    bindings: BTreeMap<(InstanceId, BindingId), Binding>,
}

/// A [`Store`] in process memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn catalog_version(&self) -> Result<u64, StoreError> {
        Ok(self.lock()?.catalog_version)
    }

    async fn catalog(&self) -> Result<Catalog, StoreError> {
        let s = self.lock()?;
        Ok(Catalog {
            version: s.catalog_version,
            entries: s.catalog.values().cloned().collect(),
        })
    }

    async fn put_catalog_entries(&self, entries: &[CatalogEntry]) -> Result<u64, StoreError> {
        let mut s = self.lock()?;
        if entries.is_empty() {
            return Ok(s.catalog_version);
        }
        for e in entries {
            s.catalog.insert(e.service.id.clone(), e.clone());
        }
        s.catalog_version += 1;
        Ok(s.catalog_version)
    }

    async fn service_settings(
        &self,
        blueprint_id: &str,
    ) -> Result<Option<ServiceSettings>, StoreError> {
        Ok(self.lock()?.settings.get(blueprint_id).cloned())
    }

    async fn all_service_settings(&self) -> Result<Vec<ServiceSettings>, StoreError> {
        Ok(self.lock()?.settings.values().cloned().collect())
    }

    async fn put_service_settings(&self, settings: &ServiceSettings) -> Result<(), StoreError> {
        self.lock()?
            .settings
            .insert(settings.blueprint_id.clone(), settings.clone());
        Ok(())
    }

    async fn create_instance(&self, instance: &Instance) -> Result<Instance, StoreError> {
        let mut s = self.lock()?;
        if s.instances.contains_key(&instance.id) {
            return Err(StoreError::AlreadyExists);
        }
        let mut stored = instance.clone();
        stored.version = 1;
        s.instances.insert(stored.id.clone(), stored.clone());
        Ok(stored)
    }

    async fn instance(&self, id: &InstanceId) -> Result<Option<Instance>, StoreError> {
        Ok(self.lock()?.instances.get(id).cloned())
    }

    async fn update_instance(&self, instance: &Instance) -> Result<Instance, StoreError> {
        let mut s = self.lock()?;
        match s.instances.get_mut(&instance.id) {
            Some(current) if current.version == instance.version => {
                let mut stored = instance.clone();
                stored.version += 1;
                *current = stored.clone();
                Ok(stored)
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn delete_instance(&self, id: &InstanceId, version: u64) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        match s.instances.get(id) {
            Some(current) if current.version == version => {
                s.instances.remove(id);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn instances(&self, state: Option<InstanceState>) -> Result<Vec<Instance>, StoreError> {
        Ok(self
            .lock()?
            .instances
            .values()
            .filter(|i| state.is_none_or(|st| i.state == st))
            .cloned()
            .collect())
    }

    async fn create_binding(&self, binding: &Binding) -> Result<Binding, StoreError> {
        let mut s = self.lock()?;
        let key = (binding.instance_id.clone(), binding.id.clone());
        if s.bindings.contains_key(&key) {
            return Err(StoreError::AlreadyExists);
        }
        let mut stored = binding.clone();
        stored.version = 1;
        s.bindings.insert(key, stored.clone());
        Ok(stored)
    }

    async fn binding(
        &self,
        instance: &InstanceId,
        id: &BindingId,
    ) -> Result<Option<Binding>, StoreError> {
        Ok(self
            .lock()?
            .bindings
            .get(&(instance.clone(), id.clone()))
            .cloned())
    }

    async fn update_binding(&self, binding: &Binding) -> Result<Binding, StoreError> {
        let mut s = self.lock()?;
        let key = (binding.instance_id.clone(), binding.id.clone());
        match s.bindings.get_mut(&key) {
            Some(current) if current.version == binding.version => {
                let mut stored = binding.clone();
                stored.version += 1;
                *current = stored.clone();
                Ok(stored)
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn delete_binding(
        &self,
        instance: &InstanceId,
        id: &BindingId,
        version: u64,
    ) -> Result<(), StoreError> {
        let mut s = self.lock()?;
        let key = (instance.clone(), id.clone());
        match s.bindings.get(&key) {
            Some(current) if current.version == version => {
                s.bindings.remove(&key);
                Ok(())
            }
            _ => Err(StoreError::Conflict),
        }
    }

    async fn bindings_of(&self, instance: &InstanceId) -> Result<Vec<Binding>, StoreError> {
        Ok(self
            .lock()?
            .bindings
            .values()
            .filter(|b| &b.instance_id == instance)
            .cloned()
            .collect())
    }

    async fn bindings_due(&self, time: OffsetDateTime) -> Result<Vec<Binding>, StoreError> {
        Ok(self
            .lock()?
            .bindings
            .values()
            .filter(|b| b.state == BindingState::Bound && b.renew_before.is_some_and(|r| r < time))
            .cloned()
            .collect())
    }
}
