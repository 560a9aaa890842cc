//! The catalog sync (route `sync-catalog`, `cloudify-osb sync`, `serve --sync-interval`,
//! DESIGN.md §5 "Sync"; defect B11 of the original broker): pages through every uploaded
//! blueprint, keeps those selected by `--catalog all|opt-in`, maps them with
//! [`super::mapping`] and writes only the offerings that changed: a re-sync with nothing
//! changed writes nothing. Offerings whose blueprint disappeared (or is no longer selected)
//! become inactive: hidden from the catalog, still serving their instances; likewise plans
//! removed from a blueprint's `metadata.osb.plans` are kept as retired plans. Admin settings
//! are only read. When Cloudify cannot be listed the sync fails and the catalog stays as it
//! was: it is never emptied by an outage.
//!
//! Works on the ports only; must not import adapter, HTTP, AWS or async-runtime crates.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use uuid::Uuid;

use super::catalog::ServiceSettings;
use super::error::{OrchestratorError, StoreError};
use super::ids::service_id_for;
pub use super::mapping::{DEFAULT_PLAN, MAX_NAME_LEN, Selection, sanitize_name};
use super::mapping::{assign_names, map_blueprint, name_source, selected};
use super::ports::{Orchestrator, Store};

/// What one sync run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Uploaded blueprints listed in Cloudify.
    pub blueprints: usize,
    /// Blueprints offered (selected by `--catalog`).
    pub offered: usize,
    /// Offerings created.
    pub added: usize,
    /// Offerings whose content changed (including ones that came back after being inactive).
    pub updated: usize,
    /// Offerings that became inactive because their blueprint is gone or no longer selected.
    pub deactivated: usize,
    /// Offerings already up to date (not written).
    pub unchanged: usize,
    /// Catalog entries written to the store (0 when nothing changed).
    pub written: usize,
    /// The catalog version after the run.
    pub catalog_version: u64,
    /// What the mapping could not express (dropped constraints, malformed metadata).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} blueprints, {} offered: {} added, {} updated, {} deactivated, {} unchanged, \
             {} written (catalog version {}, {} warnings)",
            self.blueprints,
            self.offered,
            self.added,
            self.updated,
            self.deactivated,
            self.unchanged,
            self.written,
            self.catalog_version,
            self.warnings.len()
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

/// What a sync run maps: the ID namespace, the tenant and which blueprints are offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    /// UUID namespace of service and plan IDs (`BROKER_ID_NAMESPACE`).
    pub namespace: Uuid,
    /// The Cloudify tenant whose blueprints are listed.
    pub tenant: String,
    /// `--catalog all|opt-in`.
    pub selection: Selection,
}

/// Runs one catalog sync of `tenant`'s uploaded blueprints into `store`, offering every
/// blueprint (`--catalog all`). See [`sync_catalog_with`].
pub async fn sync_catalog(
    orchestrator: &dyn Orchestrator,
    store: &dyn Store,
    namespace: &Uuid,
    tenant: &str,
) -> Result<SyncReport, SyncError> {
    let options = SyncOptions {
        namespace: *namespace,
        tenant: tenant.to_owned(),
        selection: Selection::All,
    };
    sync_catalog_with(orchestrator, store, &options).await
}

/// Runs one catalog sync.
///
/// Reads: the blueprint listing (all pages), the catalog, the admin settings. Writes: one
/// `put_catalog_entries` call with the entries that changed, none when nothing did.
/// Names: an offering keeps the name it already has when that is still free; new offerings
/// take their sanitised name in blueprint-ID order, and on a collision the name gets `-` +
/// the first 8 hex digits of the service ID. Only entries of `tenant` are deactivated.
#[tracing::instrument(skip_all, fields(tenant = %options.tenant))]
pub async fn sync_catalog_with(
    orchestrator: &dyn Orchestrator,
    store: &dyn Store,
    options: &SyncOptions,
) -> Result<SyncReport, SyncError> {
    let SyncOptions {
        namespace,
        tenant,
        selection,
    } = options;
    let tenant = tenant.as_str();
    // Cloudify first: if it fails, nothing is written.
    let mut all = orchestrator.blueprints().await?;
    let listed = all.len();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all.dedup_by(|a, b| a.id == b.id);
    let blueprints: Vec<_> = all
        .into_iter()
        .filter(|b| selected(b, *selection))
        .collect();

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
    // possible; the rest are assigned in blueprint-ID order.
    let mut taken: BTreeSet<String> = catalog
        .entries
        .iter()
        .filter(|e| e.active && e.tenant != tenant)
        .map(|e| e.service.name.clone())
        .collect();
    let ids: Vec<String> = blueprints
        .iter()
        .map(|b| service_id_for(namespace, tenant, &b.id).to_string())
        .collect();
    let wanted: Vec<(String, String)> = ids
        .iter()
        .zip(&blueprints)
        .map(|(id, b)| (id.clone(), name_source(b).to_owned()))
        .collect();
    let current: BTreeMap<String, String> = catalog
        .entries
        .iter()
        .filter(|e| e.tenant == tenant)
        .map(|e| (e.service.id.to_string(), e.service.name.clone()))
        .collect();
    let mut names = assign_names(&wanted, &current, &mut taken);

    let mut report = SyncReport {
        blueprints: listed,
        offered: blueprints.len(),
        catalog_version: catalog.version,
        ..SyncReport::default()
    };
    let mut writes = Vec::new();
    let mut present = BTreeSet::new();
    let updateable = orchestrator.supports_updates().await;
    for (bp, id) in blueprints.iter().zip(&ids) {
        let name = names.remove(id).unwrap_or_default();
        let mapped = map_blueprint(bp, name, namespace, tenant, settings.get(&bp.id));
        for w in &mapped.warnings {
            tracing::warn!(blueprint_id = %bp.id, warning = %w, "catalog mapping");
        }
        report.warnings.extend(mapped.warnings);
        let mut entry = mapped.entry;
        entry.service.plan_updateable = updateable;
        if let Some(old) = existing.get(&entry.service.id) {
            // Plans removed from the blueprint stay for the instances on them.
            entry.retire_plans_from(old);
        }
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
    report.written = writes.len();
    if !writes.is_empty() {
        report.catalog_version = store.put_catalog_entries(&writes).await?;
    }
    tracing::info!(
        blueprints = report.blueprints,
        offered = report.offered,
        added = report.added,
        updated = report.updated,
        deactivated = report.deactivated,
        unchanged = report.unchanged,
        written = report.written,
        catalog_version = report.catalog_version,
        "catalog sync done"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use serde_json::{Map, Value, json};

    use super::*;
    use crate::adapters::memory::MemoryStore;
    use crate::domain::ids::{DEFAULT_ID_NAMESPACE, plan_id_for};
    use crate::domain::ports::{Blueprint, DeploymentSpec, ExecutionState, Workflow};

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

    #[tokio::test]
    async fn opt_in_offers_only_marked_blueprints_and_hides_ones_that_stop_opting_in() {
        let mut marked = bp("db");
        marked.labels.push(("osb".into(), "true".into()));
        let mut meta = bp("cache");
        meta.metadata
            .insert("osb".into(), json!({"tags": ["redis"]}));
        let o = Listing(Mutex::new(Ok(vec![marked.clone(), meta, bp("network")])));
        let s = MemoryStore::new();
        let opts = SyncOptions {
            namespace: DEFAULT_ID_NAMESPACE,
            tenant: T.into(),
            selection: Selection::OptIn,
        };
        let r = sync_catalog_with(&o, &s, &opts).await.unwrap();
        assert_eq!((r.blueprints, r.offered, r.added), (3, 2, 2));
        let c = s.catalog().await.unwrap();
        let mut names: Vec<&str> = c
            .active_services()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        names.sort();
        assert_eq!(names, ["cache", "db"]);
        marked.labels.clear();
        o.set(Ok(vec![marked]));
        let r = sync_catalog_with(&o, &s, &opts).await.unwrap();
        assert_eq!(r.deactivated, 2);
        assert!(s.catalog().await.unwrap().active_services().is_empty());
    }

    #[tokio::test]
    async fn a_changed_blueprint_is_rewritten_and_settings_are_never_touched() {
        let o = Listing::new(&["a", "b"]);
        let s = MemoryStore::new();
        let settings = ServiceSettings {
            blueprint_id: "a".into(),
            binder: "vault".into(),
            binder_config: "cloudify-osb/binders/a".into(),
            binding_rotatable: false,
        };
        s.put_service_settings(&settings).await.unwrap();
        run(&o, &s).await;
        let mut changed = bp("a");
        changed.inputs = json!({"n": {"type": "integer"}})
            .as_object()
            .unwrap()
            .clone();
        changed.updated_at = Some("2026-02-01T00:00:00Z".into());
        o.set(Ok(vec![changed, bp("b")]));
        let r = run(&o, &s).await;
        assert_eq!((r.updated, r.unchanged, r.written), (1, 1, 1));
        let c = s.catalog().await.unwrap();
        let a = c
            .entry(&service_id_for(&DEFAULT_ID_NAMESPACE, T, "a"))
            .unwrap();
        let schema = &a.service.plans[0].schemas.as_ref().unwrap();
        let create = schema
            .service_instance
            .as_ref()
            .unwrap()
            .create
            .as_ref()
            .unwrap();
        assert_eq!(create.parameters["properties"]["n"]["type"], "integer");
        assert_eq!(s.all_service_settings().await.unwrap(), vec![settings]);
    }

    #[tokio::test]
    async fn mapping_warnings_are_reported_but_never_fail_the_sync() {
        let mut odd = bp("odd");
        odd.inputs = json!({"x": {"type": "string", "constraints": [{"pattern": "(?<=a)b"}]}})
            .as_object()
            .unwrap()
            .clone();
        odd.metadata.insert("osb".into(), json!({"plans": "nope"}));
        let o = Listing(Mutex::new(Ok(vec![odd])));
        let s = MemoryStore::new();
        let r = run(&o, &s).await;
        assert_eq!(r.added, 1);
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        let c = s.catalog().await.unwrap();
        let plan = &c.entries[0].service.plans[0];
        assert_eq!(
            plan.id,
            plan_id_for(&DEFAULT_ID_NAMESPACE, T, "odd", DEFAULT_PLAN)
        );
    }

    #[tokio::test]
    async fn a_plan_removed_from_the_blueprint_is_retired_not_dropped() {
        let mut two = bp("db");
        two.metadata.insert(
            "osb".into(),
            json!({"plans": [{"name": "small", "inputs": {}}, {"name": "large"}]}),
        );
        let o = Listing(Mutex::new(Ok(vec![two])));
        let s = MemoryStore::new();
        run(&o, &s).await;
        let large = plan_id_for(&DEFAULT_ID_NAMESPACE, T, "db", "large");
        let mut one = bp("db");
        one.metadata
            .insert("osb".into(), json!({"plans": [{"name": "small"}]}));
        one.updated_at = Some("2026-03-01T00:00:00Z".into());
        o.set(Ok(vec![one]));
        let r = run(&o, &s).await;
        assert_eq!(r.updated, 1);
        let c = s.catalog().await.unwrap();
        let e = c
            .entry(&service_id_for(&DEFAULT_ID_NAMESPACE, T, "db"))
            .unwrap();
        assert_eq!(e.service.plans.len(), 1, "served: small only");
        assert!(e.plan(&large).is_none());
        assert_eq!(
            e.instance_plan(&large).map(|p| p.name.as_str()),
            Some("large")
        );
        // Nothing changed since: nothing written.
        let again = run(&o, &s).await;
        assert_eq!((again.unchanged, again.written), (1, 0));
    }
}
