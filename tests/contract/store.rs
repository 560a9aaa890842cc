//! The `Store` contract (DESIGN.md §4, §8.3): one suite, written once as generic async
//! functions over any `Arc<dyn Store>` (module `cases`), run against every store.
//!
//! The macro `store_contract_tests!(NAME, FACTORY)` generates a module `NAME` with one
//! `#[tokio::test]` per case (multi-threaded runtimes for the races). `FACTORY` is an
//! expression evaluating to a future of a [`Fixture`]: a FRESH, EMPTY store for each test
//! (its own temp file, its own table) plus whatever must live as long as it. The generated
//! module does `use super::*`, so the factory may name what the calling module imports.
//!
//! Adding a store, e.g. DynamoDB, from its own module (`tests/contract/dynamodb.rs`):
//!
//! ```ignore
//! use crate::store::{Fixture, store_contract_tests};
//!
//! store_contract_tests!(dynamodb_store, async {
//!     let table = unique_table_name(); // one table per test
//!     let store = DynamoDbStore::create_table_and_open(&table).await.expect("moto answers");
//!     Fixture::keeping(Arc::new(store), TableGuard(table)) // guard drops the table, if wanted
//! });
//! ```
//!
//! Cases assert only on their own fresh store. Every create, update and delete outcome the
//! broker relies on is pinned here: conditional creates (`AlreadyExists`), version checks
//! (`Conflict`, also for missing records), exact round trips, the queries, the catalog
//! version, settings isolation, and 50-way races with exactly one winner.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::Arc;

use cloudify_osb::adapters::memory::MemoryStore;
use cloudify_osb::adapters::sqlite::SqliteStore;
use cloudify_osb::domain::ports::Store;

/// A store under test and what must outlive it (a temp dir, a table guard).
pub struct Fixture {
    pub store: Arc<dyn Store>,
    _keep: Box<dyn Any + Send>,
}

impl Fixture {
    /// A store that needs nothing kept alive.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::keeping(store, ())
    }

    /// A store plus a value dropped only after the test (e.g. a `TempDir`).
    pub fn keeping(store: Arc<dyn Store>, keep: impl Any + Send) -> Self {
        Self {
            store,
            _keep: Box::new(keep),
        }
    }
}

/// Generates the whole contract suite as `#[tokio::test]`s in a module `$backend`, each on a
/// fresh store from `$factory` (an expression evaluating to a future of a [`Fixture`]).
macro_rules! store_contract_tests {
    ($backend:ident, $factory:expr) => {
        $crate::store::store_contract_tests!(@expand $backend, $factory,
            [
                a_created_instance_reads_back_with_version_one,
                creating_an_instance_ignores_the_version_passed_in,
                creating_an_instance_twice_returns_already_exists_and_keeps_the_first,
                an_unknown_instance_reads_as_none,
                updating_an_instance_stores_the_change_and_increments_the_version,
                updating_an_instance_with_a_stale_version_returns_conflict,
                updating_a_missing_instance_returns_conflict,
                deleting_an_instance_with_its_version_removes_it,
                deleting_an_instance_with_a_stale_version_returns_conflict_and_keeps_it,
                deleting_a_missing_instance_returns_conflict,
                a_deleted_instance_can_be_created_again_at_version_one,
                instances_are_listed_all_or_filtered_by_state,
                an_instance_with_every_optional_field_set_round_trips_exactly,
                an_instance_with_every_optional_field_unset_round_trips_exactly,
                an_instance_moved_through_its_states_round_trips_at_every_step,
                a_created_binding_reads_back_with_version_one,
                creating_a_binding_twice_returns_already_exists_and_keeps_the_first,
                the_same_binding_id_under_two_instances_is_two_bindings,
                an_unknown_binding_reads_as_none,
                updating_a_binding_stores_the_change_and_increments_the_version,
                updating_a_binding_with_a_stale_version_returns_conflict,
                updating_a_missing_binding_returns_conflict,
                deleting_a_binding_with_its_version_removes_it,
                deleting_a_binding_with_a_stale_version_returns_conflict_and_keeps_it,
                deleting_a_missing_binding_returns_conflict,
                bindings_of_lists_exactly_the_bindings_of_that_instance,
                bindings_due_lists_only_bound_bindings_renewing_before_the_time,
                bindings_due_follows_updates_of_renewal_time_and_state,
                a_binding_with_every_optional_field_set_round_trips_exactly,
                a_binding_with_every_optional_field_unset_round_trips_exactly,
                a_new_store_has_an_empty_catalog_at_version_zero,
                putting_catalog_entries_bumps_the_version_once_per_call,
                putting_no_catalog_entries_does_not_bump_the_version,
                a_catalog_entry_is_replaced_by_its_service_id,
                inactive_catalog_entries_are_kept,
                a_catalog_entry_with_every_optional_field_set_round_trips_exactly,
                a_large_catalog_written_in_one_call_reads_back_whole,
                service_settings_are_put_read_and_listed,
                putting_service_settings_replaces_them,
                unknown_service_settings_read_as_none,
                catalog_writes_never_touch_service_settings,
            ],
            [
                fifty_concurrent_creates_of_one_instance_have_exactly_one_winner,
                fifty_concurrent_creates_of_one_binding_have_exactly_one_winner,
                fifty_concurrent_updates_from_one_read_of_an_instance_have_exactly_one_winner,
                fifty_concurrent_updates_from_one_read_of_a_binding_have_exactly_one_winner,
                fifty_concurrent_deletes_of_one_instance_version_have_exactly_one_winner,
                concurrent_catalog_writes_each_bump_the_version_exactly_once,
            ]
        );
    };
    (@expand $backend:ident, $factory:expr, [$($case:ident),* $(,)?], [$($race:ident),* $(,)?]) => {
        mod $backend {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test]
                async fn $case() {
                    let fixture: $crate::store::Fixture = $factory.await;
                    $crate::store::cases::$case(::std::sync::Arc::clone(&fixture.store)).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $race() {
                    let fixture: $crate::store::Fixture = $factory.await;
                    $crate::store::cases::$race(::std::sync::Arc::clone(&fixture.store)).await;
                }
            )*
        }
    };
}
pub(crate) use store_contract_tests;

store_contract_tests!(memory, async { Fixture::new(Arc::new(MemoryStore::new())) });

store_contract_tests!(sqlite, async {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("store.db")).expect("SQLite store opens");
    Fixture::keeping(Arc::new(store), dir)
});

/// Record builders shared by the cases.
pub mod data {
    use super::*;
    use cloudify_osb::domain::binding::{Binding, BindingState};
    use cloudify_osb::domain::catalog::{
        CatalogEntry, InputParameters, MaintenanceInfo, Plan, Schemas, Service,
        ServiceBindingSchemas, ServiceInstanceSchemas, ServiceSettings,
    };
    use cloudify_osb::domain::ids::{
        BindingId, DEFAULT_ID_NAMESPACE, InstanceId, OperationId, plan_id_for, service_id_for,
    };
    use cloudify_osb::domain::instance::{Instance, InstanceState};
    use cloudify_osb::domain::operation::{Operation, OperationKind, OperationState, Phase};
    use serde_json::{Map, Value, json};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;

    pub fn iid(s: &str) -> InstanceId {
        InstanceId::parse(s).expect("valid instance id")
    }

    pub fn bid(s: &str) -> BindingId {
        BindingId::parse(s).expect("valid binding id")
    }

    /// An RFC 3339 time, e.g. `2026-11-29T10:00:00.123456789Z`.
    pub fn at(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).expect("valid RFC 3339 time")
    }

    fn object(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("expected a JSON object, got {other}"),
        }
    }

    /// An instance with every optional field unset.
    pub fn instance(id: &str) -> Instance {
        Instance {
            id: iid(id),
            service_id: service_id_for(&DEFAULT_ID_NAMESPACE, "default_tenant", "bp"),
            plan_id: plan_id_for(&DEFAULT_ID_NAMESPACE, "default_tenant", "bp", "small"),
            blueprint_id: "bp".into(),
            deployment_id: iid(id).deployment_id(),
            organization_guid: "org-1".into(),
            space_guid: "space-1".into(),
            context: None,
            parameters: Map::new(),
            maintenance_info_version: None,
            dashboard_url: None,
            request_hash: "0".repeat(64),
            state: InstanceState::Provisioning,
            operation: None,
            created_at: at("2026-11-29T10:00:00Z"),
            version: 0,
        }
    }

    /// An instance with every optional field set, awkward values included (nanoseconds, an
    /// offset, unicode, floats, big integers, nested arrays, empty strings).
    pub fn full_instance(id: &str) -> Instance {
        Instance {
            context: Some(json!({
                "platform": "kubernetes",
                "namespace": "täst-ns",
                "clusterid": "c-1",
                "labels": {"a": "", "b": [1, 2.5, -3, null, true]},
            })),
            parameters: object(json!({
                "size": 3,
                "ratio": 0.1,
                "huge": 18_446_744_073_709_551_615_u64,
                "negative": -9_007_199_254_740_993_i64,
                "name": "ünïcödé ✓ \"quoted\" \\ back",
                "nested": {"list": [{"x": []}, {}], "empty": ""},
            })),
            maintenance_info_version: Some("2.1.0+build.7".into()),
            dashboard_url: Some("https://cloudify.example/console/osb-x?tab=1&b=2".into()),
            request_hash: "ab".repeat(32),
            state: InstanceState::Provisioned,
            operation: Some(Operation {
                id: OperationId::parse("provision-0123456789abcdef").expect("valid operation"),
                kind: OperationKind::Provision,
                phase: Phase::Done,
                state: OperationState::Failed,
                execution_id: Some("exec-42".into()),
                description: Some("install failed: node 'db' — timeout".into()),
                request_hash: Some("cd".repeat(32)),
                target: None,
                started_at: at("2026-11-29T10:00:00.000000001+02:00"),
                finished_at: Some(at("2026-11-29T10:05:59.999999999Z")),
            }),
            created_at: at("2026-11-29T09:59:59.123456789-05:30"),
            ..instance(id)
        }
    }

    /// A binding with every optional field unset.
    pub fn binding(instance: &str, id: &str) -> Binding {
        Binding {
            instance_id: iid(instance),
            id: bid(id),
            service_id: service_id_for(&DEFAULT_ID_NAMESPACE, "default_tenant", "bp"),
            plan_id: plan_id_for(&DEFAULT_ID_NAMESPACE, "default_tenant", "bp", "small"),
            request_hash: "1".repeat(64),
            parameters: Map::new(),
            context: None,
            bind_resource: None,
            predecessor_binding_id: None,
            binder: "vault".into(),
            binder_state: Value::Null,
            state: BindingState::Creating,
            expires_at: None,
            renew_before: None,
            created_at: at("2026-11-29T11:00:00Z"),
            version: 0,
        }
    }

    /// A bound binding renewing at `renew_before`.
    pub fn bound(instance: &str, id: &str, renew_before: &str) -> Binding {
        Binding {
            state: BindingState::Bound,
            renew_before: Some(at(renew_before)),
            expires_at: Some(at("2099-01-01T00:00:00Z")),
            ..binding(instance, id)
        }
    }

    /// A binding with every optional field set.
    pub fn full_binding(instance: &str, id: &str) -> Binding {
        Binding {
            parameters: object(json!({"role": "read-only", "ttl": 3600, "f": 1e-7})),
            context: Some(json!({"platform": "cloudfoundry", "space_guid": "s-ü"})),
            bind_resource: Some(json!({"app_guid": "app-1", "route": "r.example"})),
            predecessor_binding_id: Some(bid("older-binding.v1")),
            binder_state: json!({
                "leases": ["database/creds/osb-i1-ro/AbC.123", "x"],
                "paths": {"kv": "cloudify-osb/data/instances/i1/bindings/b1"},
                "n": 0,
            }),
            state: BindingState::Bound,
            expires_at: Some(at("2026-11-30T11:00:00.5+01:00")),
            renew_before: Some(at("2026-11-30T09:00:00.000000007Z")),
            created_at: at("2026-11-29T11:00:00.987654321Z"),
            ..binding(instance, id)
        }
    }

    fn plan(tenant: &str, blueprint: &str, name: &str) -> Plan {
        Plan {
            id: plan_id_for(&DEFAULT_ID_NAMESPACE, tenant, blueprint, name),
            name: name.into(),
            description: format!("{name} plan"),
            free: true,
            bindable: None,
            plan_updateable: None,
            binding_rotatable: None,
            maximum_polling_duration: None,
            maintenance_info: None,
            metadata: None,
            schemas: None,
        }
    }

    /// A catalog entry with one plan and every optional field unset.
    pub fn entry(blueprint: &str) -> CatalogEntry {
        CatalogEntry {
            service: Service {
                id: service_id_for(&DEFAULT_ID_NAMESPACE, "default_tenant", blueprint),
                name: blueprint.into(),
                description: format!("{blueprint} service"),
                bindable: false,
                tags: vec![],
                instances_retrievable: false,
                bindings_retrievable: false,
                plan_updateable: false,
                allow_context_updates: None,
                metadata: None,
                plans: vec![plan("default_tenant", blueprint, "default")],
            },
            blueprint_id: blueprint.into(),
            tenant: "default_tenant".into(),
            active: true,
            blueprint_updated_at: None,
            presets: BTreeMap::new(),
            retired_plans: vec![],
        }
    }

    /// A catalog entry with every optional field set, on service and plans.
    pub fn full_entry(blueprint: &str) -> CatalogEntry {
        let mut e = entry(blueprint);
        let schema = json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "object",
            "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 9.5}},
            "required": ["size"],
        });
        let mut small = plan("default_tenant", blueprint, "small");
        small.free = false;
        small.bindable = Some(true);
        small.plan_updateable = Some(false);
        small.binding_rotatable = Some(true);
        small.maximum_polling_duration = Some(7200);
        small.maintenance_info = Some(MaintenanceInfo {
            version: "1.2.3".into(),
            description: Some("patched".into()),
        });
        small.metadata = Some(object(json!({"displayName": "Small", "costs": [1, 2]})));
        small.schemas = Some(Schemas {
            service_instance: Some(ServiceInstanceSchemas {
                create: Some(InputParameters {
                    parameters: schema.clone(),
                }),
                update: Some(InputParameters {
                    parameters: json!({"type": "object"}),
                }),
            }),
            service_binding: Some(ServiceBindingSchemas {
                create: Some(InputParameters { parameters: schema }),
            }),
        });
        let mut large = plan("default_tenant", blueprint, "large");
        large.maintenance_info = Some(MaintenanceInfo {
            version: "2.0.0".into(),
            description: None,
        });
        e.service.bindable = true;
        e.service.tags = vec!["mariadb".into(), "sql".into(), "ü".into()];
        e.service.instances_retrievable = true;
        e.service.bindings_retrievable = true;
        e.service.plan_updateable = true;
        e.service.allow_context_updates = Some(true);
        e.service.metadata = Some(object(json!({"displayName": "MariaDB", "x": {"y": null}})));
        e.service.plans = vec![small.clone(), large.clone()];
        e.tenant = "tenant-ä".into();
        e.active = false;
        e.blueprint_updated_at = Some("2026-11-29T08:00:00.123Z".into());
        e.presets = BTreeMap::from([
            (
                small.id.clone(),
                object(json!({"cpu": 1, "disk_gb": 10.5, "tier": "s"})),
            ),
            (large.id.clone(), Map::new()),
        ]);
        let mut retired = plan("default_tenant", blueprint, "retired");
        retired.description = "removed from the blueprint".into();
        retired.maximum_polling_duration = Some(60);
        e.retired_plans = vec![retired];
        e
    }

    pub fn settings(blueprint: &str) -> ServiceSettings {
        ServiceSettings {
            blueprint_id: blueprint.into(),
            binder: "vault".into(),
            binder_config: format!("cloudify-osb/binders/{blueprint}"),
            binding_rotatable: false,
        }
    }
}

/// The contract, one async function per case, generic over the store.
pub mod cases {
    use std::sync::Arc;

    use cloudify_osb::domain::binding::BindingState;
    use cloudify_osb::domain::catalog::CatalogEntry;
    use cloudify_osb::domain::error::StoreError;
    use cloudify_osb::domain::instance::{Instance, InstanceState};
    use cloudify_osb::domain::operation::{Operation, OperationKind, Phase};
    use cloudify_osb::domain::ports::Store;
    use tokio::sync::Barrier;

    use super::data::*;

    type S = Arc<dyn Store>;

    const RACERS: usize = 50;

    fn sorted<T, K: Ord>(mut v: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
        v.sort_by_key(|x| key(x));
        v
    }

    fn changed<T: Clone>(record: &T, set: impl FnOnce(&mut T)) -> T {
        let mut r = record.clone();
        set(&mut r);
        r
    }

    // ---- instances ----------------------------------------------------------------------

    pub async fn a_created_instance_reads_back_with_version_one(store: S) {
        let created = store.create_instance(&instance("i-1")).await.unwrap();
        assert_eq!(created.version, 1);
        assert_eq!(created, changed(&instance("i-1"), |i| i.version = 1));
        assert_eq!(store.instance(&iid("i-1")).await.unwrap(), Some(created));
    }

    pub async fn creating_an_instance_ignores_the_version_passed_in(store: S) {
        let mut i = instance("i-v");
        i.version = 7;
        let created = store.create_instance(&i).await.unwrap();
        assert_eq!(created.version, 1);
        let read = store.instance(&iid("i-v")).await.unwrap().unwrap();
        assert_eq!(read.version, 1);
    }

    pub async fn creating_an_instance_twice_returns_already_exists_and_keeps_the_first(store: S) {
        let first = store.create_instance(&instance("i-2")).await.unwrap();
        let mut other = full_instance("i-2");
        other.organization_guid = "someone-else".into();
        match store.create_instance(&other).await {
            Err(StoreError::AlreadyExists) => {}
            r => panic!("expected AlreadyExists, got {r:?}"),
        }
        assert_eq!(store.instance(&iid("i-2")).await.unwrap(), Some(first));
    }

    pub async fn an_unknown_instance_reads_as_none(store: S) {
        store.create_instance(&instance("known")).await.unwrap();
        assert_eq!(store.instance(&iid("unknown")).await.unwrap(), None);
        assert_eq!(store.instance(&iid("Known")).await.unwrap(), None);
    }

    pub async fn updating_an_instance_stores_the_change_and_increments_the_version(store: S) {
        let v1 = store.create_instance(&instance("i-3")).await.unwrap();
        let mut change = v1.clone();
        change.state = InstanceState::Provisioned;
        change.dashboard_url = Some("https://ui.example/osb-i-3".into());
        let v2 = store.update_instance(&change).await.unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(v2, changed(&change, |i| i.version = 2));
        assert_eq!(store.instance(&iid("i-3")).await.unwrap(), Some(v2.clone()));
        let v3 = store.update_instance(&v2).await.unwrap();
        assert_eq!(v3.version, 3);
        assert_eq!(
            store.instance(&iid("i-3")).await.unwrap().unwrap().version,
            3
        );
    }

    pub async fn updating_an_instance_with_a_stale_version_returns_conflict(store: S) {
        let v1 = store.create_instance(&instance("i-4")).await.unwrap();
        let v2 = store.update_instance(&v1).await.unwrap();
        let mut stale = v1.clone();
        stale.state = InstanceState::Deprovisioning;
        match store.update_instance(&stale).await {
            Err(StoreError::Conflict) => {}
            r => panic!("expected Conflict, got {r:?}"),
        }
        let mut ahead = v2.clone();
        ahead.version = 9;
        assert!(matches!(
            store.update_instance(&ahead).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.instance(&iid("i-4")).await.unwrap(), Some(v2));
    }

    pub async fn updating_a_missing_instance_returns_conflict(store: S) {
        for version in [0, 1, 2] {
            let ghost = changed(&instance("ghost"), |i| i.version = version);
            match store.update_instance(&ghost).await {
                Err(StoreError::Conflict) => {}
                r => panic!("expected Conflict for version {version}, got {r:?}"),
            }
        }
        assert_eq!(store.instance(&iid("ghost")).await.unwrap(), None);
    }

    pub async fn deleting_an_instance_with_its_version_removes_it(store: S) {
        let v1 = store.create_instance(&instance("i-5")).await.unwrap();
        let v2 = store.update_instance(&v1).await.unwrap();
        store
            .delete_instance(&iid("i-5"), v2.version)
            .await
            .unwrap();
        assert_eq!(store.instance(&iid("i-5")).await.unwrap(), None);
        assert!(store.instances(None).await.unwrap().is_empty());
    }

    pub async fn deleting_an_instance_with_a_stale_version_returns_conflict_and_keeps_it(store: S) {
        let v1 = store.create_instance(&instance("i-6")).await.unwrap();
        let v2 = store.update_instance(&v1).await.unwrap();
        for stale in [1, 3] {
            match store.delete_instance(&iid("i-6"), stale).await {
                Err(StoreError::Conflict) => {}
                r => panic!("expected Conflict for version {stale}, got {r:?}"),
            }
        }
        assert_eq!(store.instance(&iid("i-6")).await.unwrap(), Some(v2));
    }

    pub async fn deleting_a_missing_instance_returns_conflict(store: S) {
        match store.delete_instance(&iid("never-was"), 1).await {
            Err(StoreError::Conflict) => {}
            r => panic!("expected Conflict, got {r:?}"),
        }
        let v1 = store.create_instance(&instance("was")).await.unwrap();
        store
            .delete_instance(&iid("was"), v1.version)
            .await
            .unwrap();
        assert!(matches!(
            store.delete_instance(&iid("was"), v1.version).await,
            Err(StoreError::Conflict)
        ));
    }

    pub async fn a_deleted_instance_can_be_created_again_at_version_one(store: S) {
        let v1 = store.create_instance(&instance("again")).await.unwrap();
        let v2 = store.update_instance(&v1).await.unwrap();
        store
            .delete_instance(&iid("again"), v2.version)
            .await
            .unwrap();
        let back = store
            .create_instance(&full_instance("again"))
            .await
            .unwrap();
        assert_eq!(back.version, 1);
        assert_eq!(store.instance(&iid("again")).await.unwrap(), Some(back));
    }

    pub async fn instances_are_listed_all_or_filtered_by_state(store: S) {
        let states = [
            ("a", InstanceState::Provisioning),
            ("b", InstanceState::Provisioned),
            ("c", InstanceState::Provisioned),
            ("d", InstanceState::ProvisionFailed),
            ("e", InstanceState::Updating),
            ("f", InstanceState::Deprovisioning),
        ];
        for (id, state) in states {
            let created = store
                .create_instance(&Instance {
                    state,
                    ..instance(id)
                })
                .await
                .unwrap();
            assert_eq!(created.state, state);
        }
        let all = sorted(store.instances(None).await.unwrap(), |i| i.id.clone());
        let ids: Vec<&str> = all.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e", "f"]);
        for state in [
            InstanceState::Provisioning,
            InstanceState::Provisioned,
            InstanceState::ProvisionFailed,
            InstanceState::Updating,
            InstanceState::Deprovisioning,
        ] {
            let got = sorted(store.instances(Some(state)).await.unwrap(), |i| {
                i.id.clone()
            });
            let want: Vec<&str> = states
                .iter()
                .filter(|(_, s)| *s == state)
                .map(|(id, _)| *id)
                .collect();
            let got_ids: Vec<&str> = got.iter().map(|i| i.id.as_str()).collect();
            assert_eq!(got_ids, want, "instances in state {state:?}");
            assert!(got.iter().all(|i| i.state == state && i.version == 1));
        }
        // The state filter follows updates.
        let b = store.instance(&iid("b")).await.unwrap().unwrap();
        store
            .update_instance(&Instance {
                state: InstanceState::Deprovisioning,
                ..b
            })
            .await
            .unwrap();
        let provisioned = store
            .instances(Some(InstanceState::Provisioned))
            .await
            .unwrap();
        assert_eq!(provisioned.len(), 1);
        assert_eq!(provisioned[0].id.as_str(), "c");
        let leaving = sorted(
            store
                .instances(Some(InstanceState::Deprovisioning))
                .await
                .unwrap(),
            |i| i.id.clone(),
        );
        let leaving: Vec<(&str, u64)> =
            leaving.iter().map(|i| (i.id.as_str(), i.version)).collect();
        assert_eq!(leaving, [("b", 2), ("f", 1)]);
    }

    pub async fn an_instance_with_every_optional_field_set_round_trips_exactly(store: S) {
        let full = full_instance("round.trip_full-1");
        let created = store.create_instance(&full).await.unwrap();
        assert_eq!(created, changed(&full, |i| i.version = 1));
        let read = store.instance(&full.id).await.unwrap().unwrap();
        assert_eq!(read, created);
        // Times keep their nanoseconds.
        let op = read.operation.as_ref().unwrap();
        assert_eq!(op.started_at.nanosecond(), 1);
        assert_eq!(read.created_at.nanosecond(), 123_456_789);
        assert_eq!(
            store.instances(None).await.unwrap(),
            vec![created.clone()],
            "listing returns the same record"
        );
    }

    pub async fn an_instance_with_every_optional_field_unset_round_trips_exactly(store: S) {
        let bare = instance("bare");
        let created = store.create_instance(&bare).await.unwrap();
        let read = store.instance(&bare.id).await.unwrap().unwrap();
        assert_eq!(read, changed(&bare, |i| i.version = 1));
        assert_eq!(read, created);
        assert_eq!(read.context, None);
        assert_eq!(read.operation, None);
        assert!(read.parameters.is_empty());
    }

    pub async fn an_instance_moved_through_its_states_round_trips_at_every_step(store: S) {
        let mut current = store
            .create_instance(&Instance {
                operation: Some(Operation::start(
                    OperationKind::Provision,
                    Phase::CreateEnvironment,
                    Some("h".into()),
                )),
                ..instance("life")
            })
            .await
            .unwrap();
        let steps: [fn(&mut Instance); 4] = [
            |i| {
                if let Some(op) = i.operation.as_mut() {
                    op.advance(Phase::Install, Some("exec-install".into()));
                }
            },
            |i| {
                if let Some(op) = i.operation.as_mut() {
                    op.succeed();
                }
                i.state = InstanceState::Provisioned;
            },
            |i| {
                i.state = InstanceState::Updating;
                i.parameters.insert("size".into(), serde_json::json!(5));
                i.operation = Some(Operation::start(OperationKind::Update, Phase::Update, None));
            },
            |i| {
                if let Some(op) = i.operation.as_mut() {
                    op.fail("update failed");
                }
                i.state = InstanceState::Provisioned;
                i.context = None;
                i.dashboard_url = None;
            },
        ];
        for (n, step) in steps.iter().enumerate() {
            let mut next = current.clone();
            step(&mut next);
            let written = store.update_instance(&next).await.unwrap();
            assert_eq!(written, changed(&next, |i| i.version = n as u64 + 2));
            assert_eq!(
                store.instance(&iid("life")).await.unwrap().as_ref(),
                Some(&written),
                "after step {n}"
            );
            current = written;
        }
    }

    // ---- bindings -----------------------------------------------------------------------

    pub async fn a_created_binding_reads_back_with_version_one(store: S) {
        let created = store.create_binding(&binding("i-1", "b-1")).await.unwrap();
        assert_eq!(created, changed(&binding("i-1", "b-1"), |b| b.version = 1));
        assert_eq!(
            store.binding(&iid("i-1"), &bid("b-1")).await.unwrap(),
            Some(created)
        );
    }

    pub async fn creating_a_binding_twice_returns_already_exists_and_keeps_the_first(store: S) {
        let first = store.create_binding(&binding("i-1", "b-2")).await.unwrap();
        match store.create_binding(&full_binding("i-1", "b-2")).await {
            Err(StoreError::AlreadyExists) => {}
            r => panic!("expected AlreadyExists, got {r:?}"),
        }
        assert_eq!(
            store.binding(&iid("i-1"), &bid("b-2")).await.unwrap(),
            Some(first)
        );
    }

    pub async fn the_same_binding_id_under_two_instances_is_two_bindings(store: S) {
        let a = store.create_binding(&binding("i-a", "same")).await.unwrap();
        let b = store
            .create_binding(&full_binding("i-b", "same"))
            .await
            .unwrap();
        assert_eq!(
            store.binding(&iid("i-a"), &bid("same")).await.unwrap(),
            Some(a.clone())
        );
        assert_eq!(
            store.binding(&iid("i-b"), &bid("same")).await.unwrap(),
            Some(b)
        );
        store
            .delete_binding(&iid("i-b"), &bid("same"), 1)
            .await
            .unwrap();
        assert_eq!(
            store.binding(&iid("i-a"), &bid("same")).await.unwrap(),
            Some(a)
        );
    }

    pub async fn an_unknown_binding_reads_as_none(store: S) {
        store.create_binding(&binding("i-1", "b-1")).await.unwrap();
        assert_eq!(store.binding(&iid("i-1"), &bid("b-2")).await.unwrap(), None);
        assert_eq!(store.binding(&iid("i-2"), &bid("b-1")).await.unwrap(), None);
    }

    pub async fn updating_a_binding_stores_the_change_and_increments_the_version(store: S) {
        let v1 = store.create_binding(&binding("i-1", "b-3")).await.unwrap();
        let mut change = v1.clone();
        change.state = BindingState::Bound;
        change.binder_state = serde_json::json!({"lease": "l-1"});
        change.renew_before = Some(at("2026-12-01T00:00:00Z"));
        let v2 = store.update_binding(&change).await.unwrap();
        assert_eq!(v2, changed(&change, |b| b.version = 2));
        assert_eq!(
            store.binding(&iid("i-1"), &bid("b-3")).await.unwrap(),
            Some(v2.clone())
        );
        let v3 = store.update_binding(&v2).await.unwrap();
        assert_eq!(v3.version, 3);
    }

    pub async fn updating_a_binding_with_a_stale_version_returns_conflict(store: S) {
        let v1 = store.create_binding(&binding("i-1", "b-4")).await.unwrap();
        let v2 = store.update_binding(&v1).await.unwrap();
        let stale = changed(&v1, |b| b.state = BindingState::Unbinding);
        match store.update_binding(&stale).await {
            Err(StoreError::Conflict) => {}
            r => panic!("expected Conflict, got {r:?}"),
        }
        assert_eq!(
            store.binding(&iid("i-1"), &bid("b-4")).await.unwrap(),
            Some(v2)
        );
    }

    pub async fn updating_a_missing_binding_returns_conflict(store: S) {
        store.create_binding(&binding("i-1", "b-5")).await.unwrap();
        for ghost in [binding("i-1", "other"), binding("i-2", "b-5")] {
            let ghost = changed(&ghost, |b| b.version = 1);
            match store.update_binding(&ghost).await {
                Err(StoreError::Conflict) => {}
                r => panic!("expected Conflict, got {r:?}"),
            }
        }
        assert_eq!(store.bindings_of(&iid("i-2")).await.unwrap(), vec![]);
        assert_eq!(store.bindings_of(&iid("i-1")).await.unwrap().len(), 1);
    }

    pub async fn deleting_a_binding_with_its_version_removes_it(store: S) {
        let v1 = store.create_binding(&binding("i-1", "b-6")).await.unwrap();
        let v2 = store.update_binding(&v1).await.unwrap();
        store
            .delete_binding(&iid("i-1"), &bid("b-6"), v2.version)
            .await
            .unwrap();
        assert_eq!(store.binding(&iid("i-1"), &bid("b-6")).await.unwrap(), None);
        assert!(store.bindings_of(&iid("i-1")).await.unwrap().is_empty());
    }

    pub async fn deleting_a_binding_with_a_stale_version_returns_conflict_and_keeps_it(store: S) {
        let v1 = store.create_binding(&binding("i-1", "b-7")).await.unwrap();
        let v2 = store.update_binding(&v1).await.unwrap();
        match store.delete_binding(&iid("i-1"), &bid("b-7"), 1).await {
            Err(StoreError::Conflict) => {}
            r => panic!("expected Conflict, got {r:?}"),
        }
        assert_eq!(
            store.binding(&iid("i-1"), &bid("b-7")).await.unwrap(),
            Some(v2)
        );
    }

    pub async fn deleting_a_missing_binding_returns_conflict(store: S) {
        match store.delete_binding(&iid("i-1"), &bid("never"), 1).await {
            Err(StoreError::Conflict) => {}
            r => panic!("expected Conflict, got {r:?}"),
        }
        store.create_binding(&binding("i-1", "b-8")).await.unwrap();
        assert!(matches!(
            store.delete_binding(&iid("i-9"), &bid("b-8"), 1).await,
            Err(StoreError::Conflict)
        ));
        assert!(
            store
                .binding(&iid("i-1"), &bid("b-8"))
                .await
                .unwrap()
                .is_some()
        );
    }

    pub async fn bindings_of_lists_exactly_the_bindings_of_that_instance(store: S) {
        for (i, b) in [
            ("i-1", "x"),
            ("i-1", "y"),
            ("i-1", "z"),
            ("i-10", "w"),
            ("i-2", "x"),
        ] {
            store.create_binding(&full_binding(i, b)).await.unwrap();
        }
        let of1 = sorted(store.bindings_of(&iid("i-1")).await.unwrap(), |b| {
            b.id.clone()
        });
        let ids: Vec<&str> = of1.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["x", "y", "z"]);
        assert!(of1.iter().all(|b| b.instance_id.as_str() == "i-1"));
        assert_eq!(
            of1[0],
            changed(&full_binding("i-1", "x"), |b| b.version = 1)
        );
        assert_eq!(store.bindings_of(&iid("i-10")).await.unwrap().len(), 1);
        assert_eq!(store.bindings_of(&iid("i-2")).await.unwrap().len(), 1);
        assert!(store.bindings_of(&iid("i-3")).await.unwrap().is_empty());
    }

    pub async fn bindings_due_lists_only_bound_bindings_renewing_before_the_time(store: S) {
        let t = at("2026-12-01T12:00:00Z");
        let mut records = vec![
            bound("i-1", "due-long-ago", "2026-11-01T00:00:00Z"),
            bound("i-2", "due-just-before", "2026-12-01T11:59:59.999999999Z"),
            bound("i-1", "exactly-at-t", "2026-12-01T12:00:00Z"),
            bound("i-1", "after-t", "2026-12-01T12:00:00.000000001Z"),
            bound("i-3", "far-future", "2999-01-01T00:00:00Z"),
        ];
        let mut creating = bound("i-1", "creating-before-t", "2026-11-01T00:00:00Z");
        creating.state = BindingState::Creating;
        let mut unbinding = bound("i-1", "unbinding-before-t", "2026-11-01T00:00:00Z");
        unbinding.state = BindingState::Unbinding;
        let mut no_lease = bound("i-1", "bound-without-renewal", "2026-11-01T00:00:00Z");
        no_lease.renew_before = None;
        records.extend([creating, unbinding, no_lease]);
        for r in &records {
            store.create_binding(r).await.unwrap();
        }
        let due = sorted(store.bindings_due(t).await.unwrap(), |b| b.id.clone());
        let ids: Vec<&str> = due.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["due-just-before", "due-long-ago"]);
        assert_eq!(
            due[0],
            changed(&records[1], |b| b.version = 1),
            "due bindings come back whole"
        );
        let none = store
            .bindings_due(at("2026-10-01T00:00:00Z"))
            .await
            .unwrap();
        assert!(none.is_empty(), "nothing renews before October: {none:?}");
    }

    pub async fn bindings_due_follows_updates_of_renewal_time_and_state(store: S) {
        let t = at("2026-12-01T12:00:00Z");
        let a = store
            .create_binding(&bound("i-1", "a", "2026-12-01T00:00:00Z"))
            .await
            .unwrap();
        let b = store
            .create_binding(&bound("i-1", "b", "2026-12-01T00:00:00Z"))
            .await
            .unwrap();
        let c = store.create_binding(&binding("i-1", "c")).await.unwrap();
        assert_eq!(store.bindings_due(t).await.unwrap().len(), 2);
        // Renewed: due later. Unbinding: never due. Bound now: due.
        store
            .update_binding(&changed(&a, |x| {
                x.renew_before = Some(at("2026-12-02T00:00:00Z"))
            }))
            .await
            .unwrap();
        store
            .update_binding(&changed(&b, |x| x.state = BindingState::Unbinding))
            .await
            .unwrap();
        store
            .update_binding(&changed(&c, |x| {
                x.state = BindingState::Bound;
                x.renew_before = Some(at("2026-11-30T00:00:00Z"));
            }))
            .await
            .unwrap();
        let due = store.bindings_due(t).await.unwrap();
        let ids: Vec<&str> = due.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["c"]);
        assert_eq!(due[0].version, 2);
        let later = sorted(
            store
                .bindings_due(at("2026-12-03T00:00:00Z"))
                .await
                .unwrap(),
            |b| b.id.clone(),
        );
        let ids: Vec<&str> = later.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        // A deleted binding is no longer due.
        store
            .delete_binding(&iid("i-1"), &bid("c"), 2)
            .await
            .unwrap();
        assert!(store.bindings_due(t).await.unwrap().is_empty());
    }

    pub async fn a_binding_with_every_optional_field_set_round_trips_exactly(store: S) {
        let full = full_binding("inst.1", "bind_1-full");
        let created = store.create_binding(&full).await.unwrap();
        assert_eq!(created, changed(&full, |b| b.version = 1));
        let read = store
            .binding(&full.instance_id, &full.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, created);
        assert_eq!(read.renew_before.unwrap().nanosecond(), 7);
        assert_eq!(
            store.bindings_of(&full.instance_id).await.unwrap(),
            vec![created]
        );
    }

    pub async fn a_binding_with_every_optional_field_unset_round_trips_exactly(store: S) {
        let bare = binding("inst.1", "bare");
        store.create_binding(&bare).await.unwrap();
        let read = store
            .binding(&bare.instance_id, &bare.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, changed(&bare, |b| b.version = 1));
        assert_eq!(read.binder_state, serde_json::Value::Null);
    }

    // ---- catalog ------------------------------------------------------------------------

    pub async fn a_new_store_has_an_empty_catalog_at_version_zero(store: S) {
        assert_eq!(store.catalog_version().await.unwrap(), 0);
        let c = store.catalog().await.unwrap();
        assert_eq!(c.version, 0);
        assert!(c.entries.is_empty());
        assert!(store.all_service_settings().await.unwrap().is_empty());
        assert!(store.instances(None).await.unwrap().is_empty());
    }

    pub async fn putting_catalog_entries_bumps_the_version_once_per_call(store: S) {
        let v1 = store
            .put_catalog_entries(&[entry("a"), entry("b"), entry("c")])
            .await
            .unwrap();
        assert_eq!(v1, 1);
        assert_eq!(store.catalog_version().await.unwrap(), 1);
        let c = store.catalog().await.unwrap();
        assert_eq!(c.version, 1);
        assert_eq!(c.entries.len(), 3);
        let v2 = store.put_catalog_entries(&[entry("d")]).await.unwrap();
        assert_eq!(v2, 2);
        let v3 = store.put_catalog_entries(&[entry("a")]).await.unwrap();
        assert_eq!(v3, 3, "rewriting an unchanged entry is still a write");
        let c = store.catalog().await.unwrap();
        assert_eq!((c.version, c.entries.len()), (3, 4));
        assert_eq!(store.catalog_version().await.unwrap(), 3);
    }

    pub async fn putting_no_catalog_entries_does_not_bump_the_version(store: S) {
        assert_eq!(store.put_catalog_entries(&[]).await.unwrap(), 0);
        assert_eq!(store.catalog_version().await.unwrap(), 0);
        store.put_catalog_entries(&[entry("a")]).await.unwrap();
        assert_eq!(store.put_catalog_entries(&[]).await.unwrap(), 1);
        assert_eq!(store.catalog_version().await.unwrap(), 1);
        assert_eq!(store.catalog().await.unwrap().entries.len(), 1);
    }

    pub async fn a_catalog_entry_is_replaced_by_its_service_id(store: S) {
        store
            .put_catalog_entries(&[entry("a"), entry("b")])
            .await
            .unwrap();
        let mut changed = full_entry("a");
        changed.service.id = entry("a").service.id;
        changed.service.description = "rewritten".into();
        store
            .put_catalog_entries(std::slice::from_ref(&changed))
            .await
            .unwrap();
        let c = store.catalog().await.unwrap();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entry(&changed.service.id), Some(&changed));
        assert_eq!(
            c.entry(&entry("b").service.id),
            Some(&entry("b")),
            "other entries stay"
        );
    }

    pub async fn inactive_catalog_entries_are_kept(store: S) {
        store
            .put_catalog_entries(&[entry("keep"), entry("gone")])
            .await
            .unwrap();
        let mut gone = entry("gone");
        gone.active = false;
        store
            .put_catalog_entries(std::slice::from_ref(&gone))
            .await
            .unwrap();
        let c = store.catalog().await.unwrap();
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entry(&gone.service.id), Some(&gone));
        let active: Vec<&str> = c
            .active_services()
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(active, ["keep"]);
    }

    pub async fn a_catalog_entry_with_every_optional_field_set_round_trips_exactly(store: S) {
        let full = full_entry("full");
        let bare = entry("bare");
        store
            .put_catalog_entries(&[full.clone(), bare.clone()])
            .await
            .unwrap();
        let c = store.catalog().await.unwrap();
        assert_eq!(c.entry(&full.service.id), Some(&full));
        assert_eq!(c.entry(&bare.service.id), Some(&bare));
        assert_eq!(c.entries.len(), 2);
    }

    pub async fn a_large_catalog_written_in_one_call_reads_back_whole(store: S) {
        // 300 entries of ~4 KiB: more than any batch-write limit and more than one page of
        // a 1 MB query, still one version bump.
        let entries: Vec<CatalogEntry> = (0..300)
            .map(|n| {
                let mut e = entry(&format!("bp-{n:03}"));
                e.service.description = format!("{n:03}:{}", "x".repeat(4096));
                e
            })
            .collect();
        assert_eq!(store.put_catalog_entries(&entries).await.unwrap(), 1);
        let c = store.catalog().await.unwrap();
        assert_eq!(c.version, 1);
        let got = sorted(c.entries, |e| e.blueprint_id.clone());
        assert_eq!(got.len(), 300);
        assert_eq!(got, entries);
    }

    // ---- service settings ---------------------------------------------------------------

    pub async fn service_settings_are_put_read_and_listed(store: S) {
        let mut b = settings("bp-b");
        b.binding_rotatable = true;
        store.put_service_settings(&settings("bp-a")).await.unwrap();
        store.put_service_settings(&b).await.unwrap();
        assert_eq!(
            store.service_settings("bp-a").await.unwrap(),
            Some(settings("bp-a"))
        );
        assert_eq!(
            store.service_settings("bp-b").await.unwrap(),
            Some(b.clone())
        );
        let all = sorted(store.all_service_settings().await.unwrap(), |s| {
            s.blueprint_id.clone()
        });
        assert_eq!(all, vec![settings("bp-a"), b]);
    }

    pub async fn putting_service_settings_replaces_them(store: S) {
        store.put_service_settings(&settings("bp")).await.unwrap();
        let mut next = settings("bp");
        next.binder = "other".into();
        next.binder_config = "elsewhere/bp".into();
        next.binding_rotatable = true;
        store.put_service_settings(&next).await.unwrap();
        assert_eq!(
            store.service_settings("bp").await.unwrap(),
            Some(next.clone())
        );
        assert_eq!(store.all_service_settings().await.unwrap(), vec![next]);
    }

    pub async fn unknown_service_settings_read_as_none(store: S) {
        store.put_service_settings(&settings("bp")).await.unwrap();
        assert_eq!(store.service_settings("other").await.unwrap(), None);
        assert_eq!(store.service_settings("BP").await.unwrap(), None);
    }

    pub async fn catalog_writes_never_touch_service_settings(store: S) {
        let mut s = settings("bp");
        s.binding_rotatable = true;
        store.put_service_settings(&s).await.unwrap();
        assert_eq!(
            store.catalog_version().await.unwrap(),
            0,
            "settings are not catalog writes"
        );
        let mut e = full_entry("bp");
        store
            .put_catalog_entries(std::slice::from_ref(&e))
            .await
            .unwrap();
        e.active = true;
        e.service.description = "changed by sync".into();
        store
            .put_catalog_entries(&[e, entry("other")])
            .await
            .unwrap();
        assert_eq!(store.service_settings("bp").await.unwrap(), Some(s.clone()));
        assert_eq!(store.all_service_settings().await.unwrap(), vec![s]);
        assert_eq!(store.catalog().await.unwrap().entries.len(), 2);
    }

    // ---- races --------------------------------------------------------------------------

    /// Runs `RACERS` copies of `op` released together; returns their results in spawn order.
    async fn race<T, F, Fut>(store: &S, op: F) -> Vec<Result<T, StoreError>>
    where
        T: Send + 'static,
        F: Fn(S, usize) -> Fut,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|n| {
                let fut = op(Arc::clone(store), n);
                let barrier = Arc::clone(&barrier);
                tokio::spawn(async move {
                    barrier.wait().await;
                    fut.await
                })
            })
            .collect();
        let mut out = Vec::with_capacity(RACERS);
        for t in tasks {
            out.push(t.await.expect("racer did not panic"));
        }
        out
    }

    /// Asserts exactly one `Ok` and only `loser` errors; returns the winner's index.
    fn one_winner<T>(results: &[Result<T, StoreError>], loser: fn(&StoreError) -> bool) -> usize {
        let winners: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_ok())
            .map(|(n, _)| n)
            .collect();
        assert_eq!(winners.len(), 1, "exactly one winner, got {winners:?}");
        for r in results {
            if let Err(e) = r {
                assert!(loser(e), "losers see the expected error, got {e:?}");
            }
        }
        winners[0]
    }

    pub async fn fifty_concurrent_creates_of_one_instance_have_exactly_one_winner(store: S) {
        let results = race(&store, |s, n| async move {
            let mut i = instance("contested");
            i.organization_guid = format!("org-{n}");
            s.create_instance(&i).await
        })
        .await;
        let w = one_winner(&results, |e| matches!(e, StoreError::AlreadyExists));
        let stored = store.instance(&iid("contested")).await.unwrap().unwrap();
        assert_eq!(stored.organization_guid, format!("org-{w}"));
        assert_eq!(stored.version, 1);
        assert_eq!(store.instances(None).await.unwrap().len(), 1);
    }

    pub async fn fifty_concurrent_creates_of_one_binding_have_exactly_one_winner(store: S) {
        let results = race(&store, |s, n| async move {
            let mut b = binding("i-1", "contested");
            b.request_hash = format!("{n:064}");
            s.create_binding(&b).await
        })
        .await;
        let w = one_winner(&results, |e| matches!(e, StoreError::AlreadyExists));
        let stored = store
            .binding(&iid("i-1"), &bid("contested"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.request_hash, format!("{w:064}"));
        assert_eq!(store.bindings_of(&iid("i-1")).await.unwrap().len(), 1);
    }

    pub async fn fifty_concurrent_updates_from_one_read_of_an_instance_have_exactly_one_winner(
        store: S,
    ) {
        store.create_instance(&instance("contested")).await.unwrap();
        let read = store.instance(&iid("contested")).await.unwrap().unwrap();
        let results = race(&store, move |s, n| {
            let mut change = read.clone();
            change.dashboard_url = Some(format!("https://ui.example/{n}"));
            async move { s.update_instance(&change).await }
        })
        .await;
        let w = one_winner(&results, |e| matches!(e, StoreError::Conflict));
        let stored = store.instance(&iid("contested")).await.unwrap().unwrap();
        assert_eq!(stored.version, 2);
        assert_eq!(
            stored.dashboard_url.as_deref(),
            Some(format!("https://ui.example/{w}").as_str())
        );
        assert_eq!(Some(&stored), results[w].as_ref().ok());
    }

    pub async fn fifty_concurrent_updates_from_one_read_of_a_binding_have_exactly_one_winner(
        store: S,
    ) {
        store
            .create_binding(&binding("i-1", "contested"))
            .await
            .unwrap();
        let read = store
            .binding(&iid("i-1"), &bid("contested"))
            .await
            .unwrap()
            .unwrap();
        let results = race(&store, move |s, n| {
            let mut change = read.clone();
            change.state = BindingState::Bound;
            change.binder_state = serde_json::json!({ "winner": n });
            async move { s.update_binding(&change).await }
        })
        .await;
        let w = one_winner(&results, |e| matches!(e, StoreError::Conflict));
        let stored = store
            .binding(&iid("i-1"), &bid("contested"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.version, 2);
        assert_eq!(stored.binder_state, serde_json::json!({ "winner": w }));
    }

    pub async fn fifty_concurrent_deletes_of_one_instance_version_have_exactly_one_winner(
        store: S,
    ) {
        let v1 = store.create_instance(&instance("contested")).await.unwrap();
        let results = race(&store, move |s, _| {
            let version = v1.version;
            async move { s.delete_instance(&iid("contested"), version).await }
        })
        .await;
        one_winner(&results, |e| matches!(e, StoreError::Conflict));
        assert_eq!(store.instance(&iid("contested")).await.unwrap(), None);
    }

    pub async fn concurrent_catalog_writes_each_bump_the_version_exactly_once(store: S) {
        let results = race(&store, |s, n| async move {
            s.put_catalog_entries(&[entry(&format!("bp-{n:02}"))]).await
        })
        .await;
        let mut versions: Vec<u64> = results.into_iter().map(|r| r.unwrap()).collect();
        versions.sort_unstable();
        let expected: Vec<u64> = (1..=RACERS as u64).collect();
        assert_eq!(versions, expected, "every write got its own version");
        let c = store.catalog().await.unwrap();
        assert_eq!(c.version, RACERS as u64);
        assert_eq!(c.entries.len(), RACERS);
    }
}

/// What only the SQLite store promises: its file outlives the process, and several
/// connections (processes) on one file keep the same guarantees.
mod sqlite_file {
    use super::data::*;
    use super::*;
    use cloudify_osb::domain::error::StoreError;

    fn open(path: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(path).expect("SQLite store opens"))
    }

    #[tokio::test]
    async fn reopening_the_same_file_keeps_every_instance_binding_catalog_entry_and_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.db");
        let store = open(&path);
        let i1 = store.create_instance(&full_instance("i-1")).await.unwrap();
        let i2 = store.create_instance(&instance("i-2")).await.unwrap();
        let i2 = store.update_instance(&i2).await.unwrap();
        let b1 = store
            .create_binding(&full_binding("i-1", "b-1"))
            .await
            .unwrap();
        let b2 = store.create_binding(&binding("i-1", "b-2")).await.unwrap();
        let mut inactive = entry("old");
        inactive.active = false;
        let catalog_version = store
            .put_catalog_entries(&[full_entry("bp"), inactive])
            .await
            .unwrap();
        store.put_service_settings(&settings("bp")).await.unwrap();
        let catalog = store.catalog().await.unwrap();
        drop(store);

        let store = open(&path);
        assert_eq!(store.catalog_version().await.unwrap(), catalog_version);
        assert_eq!(store.catalog().await.unwrap(), catalog);
        assert_eq!(
            store.instances(None).await.unwrap(),
            vec![i1.clone(), i2.clone()]
        );
        assert_eq!(store.bindings_of(&iid("i-1")).await.unwrap(), vec![b1, b2]);
        assert_eq!(
            store.all_service_settings().await.unwrap(),
            vec![settings("bp")]
        );
        // Versions carry on where they were.
        assert!(matches!(
            store.create_instance(&instance("i-1")).await,
            Err(StoreError::AlreadyExists)
        ));
        assert_eq!(store.update_instance(&i2).await.unwrap().version, 3);
        assert_eq!(
            store.put_catalog_entries(&[entry("new")]).await.unwrap(),
            catalog_version + 1
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_stores_on_one_file_race_creates_and_updates_with_exactly_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let stores = [open(&path), open(&path)];
        let creates: Vec<_> = (0..50)
            .map(|n| {
                let s = Arc::clone(&stores[n % 2]);
                tokio::spawn(async move { s.create_instance(&instance("shared")).await })
            })
            .collect();
        let mut won = 0;
        for t in creates {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::AlreadyExists) => {}
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(won, 1);
        let read = stores[1].instance(&iid("shared")).await.unwrap().unwrap();
        let updates: Vec<_> = (0..50)
            .map(|n| {
                let s = Arc::clone(&stores[n % 2]);
                let r = read.clone();
                tokio::spawn(async move { s.update_instance(&r).await })
            })
            .collect();
        let mut won = 0;
        for t in updates {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::Conflict) => {}
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert_eq!(won, 1);
        let seen_by_other = stores[0].instance(&iid("shared")).await.unwrap().unwrap();
        assert_eq!(seen_by_other.version, 2);
    }

    #[tokio::test]
    async fn an_in_memory_sqlite_store_keeps_the_same_contract_basics() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let v1 = store.create_instance(&instance("m")).await.unwrap();
        assert!(matches!(
            store.create_instance(&instance("m")).await,
            Err(StoreError::AlreadyExists)
        ));
        assert_eq!(store.update_instance(&v1).await.unwrap().version, 2);
        assert!(matches!(
            store.update_instance(&v1).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(store.put_catalog_entries(&[entry("a")]).await.unwrap(), 1);
    }
}
