//! The catalog sync (route `sync-catalog`, `cloudify-osb sync`, DESIGN.md §5 "Sync"): one
//! service offering per uploaded blueprint with one `default` plan, IDs by the formulas of
//! DESIGN.md §2, written to the store only where something changed; offerings whose
//! blueprint disappeared become inactive (kept for their instances). When Cloudify cannot be
//! listed the sync fails and the catalog stays as it was: it is never emptied by an outage.
//!
//! Works on the ports only; must not import adapter, HTTP or AWS crates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::catalog::{CatalogEntry, Plan, Service, ServiceSettings};
use super::error::{OrchestratorError, StoreError};
use super::ids::{plan_id_for, service_id_for};
use super::ports::{Blueprint, Orchestrator, Store};

/// The name of the one plan each offering gets until blueprints declare plans.
pub const DEFAULT_PLAN: &str = "default";

/// Longest offering name (a DNS label, so platforms can use it as a resource name).
pub const MAX_NAME_LEN: usize = 63;

/// What one sync run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Uploaded blueprints listed in Cloudify.
    pub blueprints: usize,
    /// Offerings created.
    pub added: usize,
    /// Offerings whose content changed (including ones that came back after being inactive).
    pub updated: usize,
    /// Offerings that became inactive because their blueprint is gone.
    pub deactivated: usize,
    /// Offerings already up to date (not written).
    pub unchanged: usize,
    /// The catalog version after the run.
    pub catalog_version: u64,
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} blueprints: {} added, {} updated, {} deactivated, {} unchanged (catalog version {})",
            self.blueprints,
            self.added,
            self.updated,
            self.deactivated,
            self.unchanged,
            self.catalog_version
        )
    }
}

/// Why a sync run failed; the catalog was not changed by it.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("listing Cloudify blueprints failed: {0}")]
    Orchestrator(#[from] OrchestratorError),
    #[error("catalog store failed: {0}")]
    Store(#[from] StoreError),
}

/// Turns a blueprint ID into an offering name: lower case `[a-z0-9-]`, runs of anything else
/// become one `-`, no leading or trailing `-`, at most `max` characters; `blueprint` if
/// nothing is left.
pub fn sanitize_name(blueprint_id: &str, max: usize) -> String {
    let mut out = String::with_capacity(blueprint_id.len().min(max));
    for c in blueprint_id.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        "blueprint".chars().take(max).collect()
    } else {
        trimmed.to_owned()
    }
}

/// The name with a stable suffix from the service ID, for when the plain name is taken.
fn suffixed_name(blueprint_id: &str, service_id: &str) -> String {
    let tag: String = service_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    format!(
        "{}-{tag}",
        sanitize_name(blueprint_id, MAX_NAME_LEN - tag.len() - 1)
    )
}

fn entry_for(
    blueprint: &Blueprint,
    name: String,
    namespace: &Uuid,
    tenant: &str,
    settings: Option<&ServiceSettings>,
) -> CatalogEntry {
    let service_id = service_id_for(namespace, tenant, &blueprint.id);
    let description = blueprint
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Cloudify blueprint {}", blueprint.id));
    let mut metadata = Map::new();
    metadata.insert("displayName".into(), Value::String(blueprint.id.clone()));
    let plan = Plan {
        id: plan_id_for(namespace, tenant, &blueprint.id, DEFAULT_PLAN),
        name: DEFAULT_PLAN.to_owned(),
        description: format!(
            "Deploys blueprint {} with the given parameters as inputs",
            blueprint.id
        ),
        free: true,
        bindable: None,
        plan_updateable: None,
        binding_rotatable: settings.filter(|s| s.binding_rotatable).map(|_| true),
        maximum_polling_duration: None,
        maintenance_info: None,
        metadata: None,
        schemas: None,
    };
    CatalogEntry {
        service: Service {
            id: service_id,
            name,
            description,
            bindable: settings.is_some(),
            tags: Vec::new(),
            instances_retrievable: true,
            bindings_retrievable: true,
            plan_updateable: false,
            allow_context_updates: None,
            metadata: Some(metadata),
            plans: vec![plan],
        },
        blueprint_id: blueprint.id.clone(),
        tenant: tenant.to_owned(),
        active: true,
        blueprint_updated_at: blueprint.updated_at.clone(),
        presets: BTreeMap::new(),
    }
}

/// Runs one catalog sync of `tenant`'s uploaded blueprints into `store`.
///
/// Names: an offering keeps the name it already has when that is still free; new offerings
/// take their sanitised blueprint ID, in blueprint-ID order, and on a collision the name
/// gets `-` + the first 8 hex digits of the service ID. Only entries of `tenant` are
/// deactivated.
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn sync_catalog(
    orchestrator: &dyn Orchestrator,
    store: &dyn Store,
    namespace: &Uuid,
    tenant: &str,
) -> Result<SyncReport, SyncError> {
    // Cloudify first: if it fails, nothing is written.
    let mut blueprints = orchestrator.blueprints().await?;
    blueprints.sort_by(|a, b| a.id.cmp(&b.id));
    blueprints.dedup_by(|a, b| a.id == b.id);

    let catalog = store.catalog().await?;
    let settings: BTreeMap<String, ServiceSettings> = store
        .all_service_settings()
        .await?
        .into_iter()
        .map(|s| (s.blueprint_id.clone(), s))
        .collect();
    let existing: BTreeMap<_, _> = catalog
        .entries
        .iter()
        .map(|e| (e.service.id.clone(), e))
        .collect();

    // Names: other tenants' active offerings keep theirs; ours keep the current ones where
    // possible; the rest are assigned in ID order.
    let mut taken: BTreeSet<String> = catalog
        .entries
        .iter()
        .filter(|e| e.active && e.tenant != tenant)
        .map(|e| e.service.name.clone())
        .collect();
    let mut names: BTreeMap<&str, String> = BTreeMap::new();
    for bp in &blueprints {
        let id = service_id_for(namespace, tenant, &bp.id);
        if let Some(old) = existing.get(&id) {
            let plain = sanitize_name(&bp.id, MAX_NAME_LEN);
            let ours =
                old.service.name == plain || old.service.name == suffixed_name(&bp.id, id.as_str());
            if ours && taken.insert(old.service.name.clone()) {
                names.insert(bp.id.as_str(), old.service.name.clone());
            }
        }
    }
    for bp in &blueprints {
        if names.contains_key(bp.id.as_str()) {
            continue;
        }
        let id = service_id_for(namespace, tenant, &bp.id);
        let plain = sanitize_name(&bp.id, MAX_NAME_LEN);
        let name = if taken.insert(plain.clone()) {
            plain
        } else {
            let s = suffixed_name(&bp.id, id.as_str());
            taken.insert(s.clone());
            s
        };
        names.insert(bp.id.as_str(), name);
    }

    let mut report = SyncReport {
        blueprints: blueprints.len(),
        catalog_version: catalog.version,
        ..SyncReport::default()
    };
    let mut writes = Vec::new();
    let mut present = BTreeSet::new();
    for bp in &blueprints {
        let name = names.remove(bp.id.as_str()).unwrap_or_default();
        let entry = entry_for(bp, name, namespace, tenant, settings.get(&bp.id));
        present.insert(entry.service.id.clone());
        match existing.get(&entry.service.id) {
            Some(old) if **old == entry => report.unchanged += 1,
            Some(_) => {
                report.updated += 1;
                writes.push(entry);
            }
            None => {
                report.added += 1;
                writes.push(entry);
            }
        }
    }
    for old in &catalog.entries {
        if old.active && old.tenant == tenant && !present.contains(&old.service.id) {
            let mut gone = old.clone();
            gone.active = false;
            report.deactivated += 1;
            writes.push(gone);
        }
    }
    if !writes.is_empty() {
        report.catalog_version = store.put_catalog_entries(&writes).await?;
    }
    tracing::info!(
        blueprints = report.blueprints,
        added = report.added,
        updated = report.updated,
        deactivated = report.deactivated,
        unchanged = report.unchanged,
        catalog_version = report.catalog_version,
        "catalog sync done"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::adapters::memory::MemoryStore;
    use crate::domain::ids::DEFAULT_ID_NAMESPACE;
    use crate::domain::ports::{DeploymentSpec, ExecutionState, Workflow};

    /// An orchestrator that only lists blueprints (or fails to).
    struct Listing(Mutex<Result<Vec<Blueprint>, String>>);

    impl Listing {
        fn new(ids: &[&str]) -> Self {
            Self(Mutex::new(Ok(ids.iter().map(|id| bp(id)).collect())))
        }
        fn set(&self, v: Result<Vec<Blueprint>, String>) {
            *self.0.lock().unwrap() = v;
        }
    }

    fn bp(id: &str) -> Blueprint {
        Blueprint {
            id: id.into(),
            tenant: "default_tenant".into(),
            description: None,
            inputs: Map::new(),
            metadata: Map::new(),
            labels: vec![],
            updated_at: Some("2026-01-01T00:00:00Z".into()),
        }
    }

    fn unused<T>() -> Result<T, OrchestratorError> {
        Err(OrchestratorError::Unavailable("not used by sync".into()))
    }

    #[async_trait]
    impl Orchestrator for Listing {
        async fn ping(&self) -> Result<String, OrchestratorError> {
            Ok("7.0.0".into())
        }
        async fn blueprints(&self) -> Result<Vec<Blueprint>, OrchestratorError> {
            self.0
                .lock()
                .unwrap()
                .clone()
                .map_err(OrchestratorError::Unavailable)
        }
        async fn create_deployment(&self, _: &DeploymentSpec) -> Result<(), OrchestratorError> {
            unused()
        }
        async fn start_workflow(&self, _: &str, _: Workflow) -> Result<String, OrchestratorError> {
            unused()
        }
        async fn execution(&self, _: &str) -> Result<ExecutionState, OrchestratorError> {
            unused()
        }
        async fn running_execution(&self, _: &str) -> Result<Option<String>, OrchestratorError> {
            unused()
        }
        async fn cancel_execution(&self, _: &str) -> Result<(), OrchestratorError> {
            unused()
        }
        async fn delete_deployment(&self, _: &str) -> Result<(), OrchestratorError> {
            unused()
        }
        async fn deployment_exists(&self, _: &str) -> Result<bool, OrchestratorError> {
            unused()
        }
        async fn outputs(&self, _: &str) -> Result<Map<String, Value>, OrchestratorError> {
            unused()
        }
    }

    const T: &str = "default_tenant";

    async fn run(o: &Listing, s: &MemoryStore) -> SyncReport {
        sync_catalog(o, s, &DEFAULT_ID_NAMESPACE, T).await.unwrap()
    }

    #[test]
    fn names_are_sanitised_to_dns_labels() {
        assert_eq!(
            sanitize_name("MariaDB_Cluster v2", 63),
            "mariadb-cluster-v2"
        );
        assert_eq!(sanitize_name("__x..y__", 63), "x-y");
        assert_eq!(sanitize_name("ÜÖ", 63), "blueprint");
        assert_eq!(sanitize_name("9lives", 63), "9lives");
        let long = sanitize_name(&format!("{}_tail", "a".repeat(70)), 63);
        assert_eq!(long.len(), 63);
        assert_eq!(
            sanitize_name(&format!("{}-b", "a".repeat(62)), 63).len(),
            62
        );
    }

    #[tokio::test]
    async fn one_service_per_blueprint_with_one_default_plan_and_stable_ids() {
        let o = Listing::new(&["mariadb", "web_app"]);
        let s = MemoryStore::new();
        let r = run(&o, &s).await;
        assert_eq!((r.blueprints, r.added, r.updated), (2, 2, 0));
        let c = s.catalog().await.unwrap();
        let services = c.active_services();
        assert_eq!(services.len(), 2);
        let m = services.iter().find(|s| s.name == "mariadb").unwrap();
        assert_eq!(m.id, service_id_for(&DEFAULT_ID_NAMESPACE, T, "mariadb"));
        assert_eq!(m.description, "Cloudify blueprint mariadb");
        assert!(m.instances_retrievable && m.bindings_retrievable && !m.bindable);
        assert_eq!(m.plans.len(), 1);
        assert_eq!(m.plans[0].name, "default");
        assert_eq!(
            m.plans[0].id,
            plan_id_for(&DEFAULT_ID_NAMESPACE, T, "mariadb", "default")
        );
        assert!(services.iter().any(|s| s.name == "web-app"));
    }

    #[tokio::test]
    async fn an_unchanged_catalog_is_not_written_again() {
        let o = Listing::new(&["a", "b"]);
        let s = MemoryStore::new();
        let first = run(&o, &s).await;
        let again = run(&o, &s).await;
        assert_eq!(again.unchanged, 2);
        assert_eq!((again.added, again.updated, again.deactivated), (0, 0, 0));
        assert_eq!(again.catalog_version, first.catalog_version);
        assert_eq!(s.catalog_version().await.unwrap(), first.catalog_version);
    }

    #[tokio::test]
    async fn vanished_blueprints_become_inactive_and_can_come_back() {
        let o = Listing::new(&["a", "b"]);
        let s = MemoryStore::new();
        run(&o, &s).await;
        o.set(Ok(vec![bp("a")]));
        let r = run(&o, &s).await;
        assert_eq!((r.deactivated, r.unchanged), (1, 1));
        let c = s.catalog().await.unwrap();
        let b = service_id_for(&DEFAULT_ID_NAMESPACE, T, "b");
        assert!(!c.entry(&b).unwrap().active, "kept, but inactive");
        assert_eq!(c.active_services().len(), 1);
        o.set(Ok(vec![bp("a"), bp("b")]));
        let r = run(&o, &s).await;
        assert_eq!(r.updated, 1);
        assert!(s.catalog().await.unwrap().entry(&b).unwrap().active);
    }

    #[tokio::test]
    async fn an_unreachable_cloudify_fails_the_sync_and_keeps_the_catalog() {
        let o = Listing::new(&["a"]);
        let s = MemoryStore::new();
        run(&o, &s).await;
        let before = s.catalog().await.unwrap();
        o.set(Err("connection refused".into()));
        let e = sync_catalog(&o, &s, &DEFAULT_ID_NAMESPACE, T)
            .await
            .unwrap_err();
        assert!(matches!(e, SyncError::Orchestrator(_)), "{e}");
        assert_eq!(s.catalog().await.unwrap(), before);
    }

    #[tokio::test]
    async fn colliding_names_get_a_stable_suffix_and_existing_names_stay() {
        let o = Listing::new(&["my_db"]);
        let s = MemoryStore::new();
        run(&o, &s).await;
        // "my-db" sorts before "my_db" but arrives later: the existing offering keeps "my-db".
        o.set(Ok(vec![bp("my-db"), bp("my_db")]));
        run(&o, &s).await;
        let c = s.catalog().await.unwrap();
        let old = c
            .entry(&service_id_for(&DEFAULT_ID_NAMESPACE, T, "my_db"))
            .unwrap();
        let new = c
            .entry(&service_id_for(&DEFAULT_ID_NAMESPACE, T, "my-db"))
            .unwrap();
        assert_eq!(old.service.name, "my-db");
        assert!(
            new.service.name.starts_with("my-db-"),
            "{}",
            new.service.name
        );
        assert_eq!(new.service.name.len(), "my-db-".len() + 8);
        // The same input on a fresh store gives the same names every time.
        let fresh = MemoryStore::new();
        run(&o, &fresh).await;
        let again = MemoryStore::new();
        run(&o, &again).await;
        let names = |c: crate::domain::catalog::Catalog| {
            let mut v: Vec<String> = c.entries.into_iter().map(|e| e.service.name).collect();
            v.sort();
            v
        };
        assert_eq!(
            names(fresh.catalog().await.unwrap()),
            names(again.catalog().await.unwrap())
        );
    }

    #[tokio::test]
    async fn bindable_and_rotation_follow_the_service_settings() {
        let o = Listing::new(&["mariadb", "plain"]);
        let s = MemoryStore::new();
        s.put_service_settings(&ServiceSettings {
            blueprint_id: "mariadb".into(),
            binder: "vault".into(),
            binder_config: "cloudify-osb/binders/mariadb".into(),
            binding_rotatable: true,
        })
        .await
        .unwrap();
        let mut described = bp("plain");
        described.description = Some("  A plain thing  ".into());
        o.set(Ok(vec![bp("mariadb"), described]));
        run(&o, &s).await;
        let c = s.catalog().await.unwrap();
        let m = c
            .entry(&service_id_for(&DEFAULT_ID_NAMESPACE, T, "mariadb"))
            .unwrap();
        assert!(m.service.bindable);
        assert_eq!(m.service.plans[0].binding_rotatable, Some(true));
        let p = c
            .entry(&service_id_for(&DEFAULT_ID_NAMESPACE, T, "plain"))
            .unwrap();
        assert!(!p.service.bindable);
        assert_eq!(p.service.description, "A plain thing");
    }

    #[tokio::test]
    async fn other_tenants_entries_are_left_alone() {
        let s = MemoryStore::new();
        let other = Listing::new(&["x"]);
        sync_catalog(&other, &s, &DEFAULT_ID_NAMESPACE, "other")
            .await
            .unwrap();
        let o = Listing::new(&["a"]);
        let r = run(&o, &s).await;
        assert_eq!(r.deactivated, 0);
        assert_eq!(s.catalog().await.unwrap().active_services().len(), 2);
    }
}
