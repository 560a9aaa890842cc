//! Route `catalog`: `GET /v2/catalog`.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::support::*;
use cloudify_osb::domain::binding::Binding;
use cloudify_osb::domain::broker::{Broker, BrokerSettings};
use cloudify_osb::domain::catalog::{Catalog, CatalogEntry, ServiceSettings};
use cloudify_osb::domain::error::StoreError;
use cloudify_osb::domain::ids::{BindingId, InstanceId};
use cloudify_osb::domain::instance::{Instance, InstanceState};
use cloudify_osb::domain::ports::{BinderRegistry, Store};
use cloudify_osb::http::{ApiState, BasicAuth, Route, router};

#[tokio::test]
async fn an_empty_store_serves_an_empty_catalog() {
    let h = Harness::new();
    let a = h.get("/v2/catalog").await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json, serde_json::json!({"services": []}));
}

#[tokio::test]
async fn the_catalog_lists_active_offerings_in_the_osb_shape() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let a = h.get("/v2/catalog").await;
    a.assert_status(StatusCode::OK);
    let services = a.json["services"].as_array().unwrap();
    assert_eq!(services.len(), 1);
    let s = &services[0];
    assert_eq!(s["id"], o.service_id.as_str());
    assert_eq!(s["name"], "mariadb");
    assert_eq!(s["bindable"], true);
    assert_eq!(s["plans"][0]["id"], o.plan_id.as_str());
    assert!(s["plans"][0].get("maintenance_info").is_none());
    assert!(
        s.get("blueprint_id").is_none(),
        "broker bookkeeping stays private"
    );
}

#[tokio::test]
async fn inactive_offerings_are_hidden() {
    let h = Harness::new();
    h.mariadb().await;
    let mut catalog = h.store.catalog().await.unwrap();
    catalog.entries[0].active = false;
    h.store.put_catalog_entries(&catalog.entries).await.unwrap();
    let a = h.get("/v2/catalog").await;
    assert_eq!(a.json["services"].as_array().unwrap().len(), 0);
}

/// A store whose every read fails, as an unreachable database would.
struct BrokenStore;

#[async_trait::async_trait]
impl Store for BrokenStore {
    async fn catalog_version(&self) -> Result<u64, StoreError> {
        Err(broken())
    }
    async fn catalog(&self) -> Result<Catalog, StoreError> {
        Err(broken())
    }
    async fn put_catalog_entries(&self, _: &[CatalogEntry]) -> Result<u64, StoreError> {
        Err(broken())
    }
    async fn service_settings(&self, _: &str) -> Result<Option<ServiceSettings>, StoreError> {
        Err(broken())
    }
    async fn all_service_settings(&self) -> Result<Vec<ServiceSettings>, StoreError> {
        Err(broken())
    }
    async fn put_service_settings(&self, _: &ServiceSettings) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn create_instance(&self, _: &Instance) -> Result<Instance, StoreError> {
        Err(broken())
    }
    async fn instance(&self, _: &InstanceId) -> Result<Option<Instance>, StoreError> {
        Err(broken())
    }
    async fn update_instance(&self, _: &Instance) -> Result<Instance, StoreError> {
        Err(broken())
    }
    async fn delete_instance(&self, _: &InstanceId, _: u64) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn instances(&self, _: Option<InstanceState>) -> Result<Vec<Instance>, StoreError> {
        Err(broken())
    }
    async fn create_binding(&self, _: &Binding) -> Result<Binding, StoreError> {
        Err(broken())
    }
    async fn binding(&self, _: &InstanceId, _: &BindingId) -> Result<Option<Binding>, StoreError> {
        Err(broken())
    }
    async fn update_binding(&self, _: &Binding) -> Result<Binding, StoreError> {
        Err(broken())
    }
    async fn delete_binding(
        &self,
        _: &InstanceId,
        _: &BindingId,
        _: u64,
    ) -> Result<(), StoreError> {
        Err(broken())
    }
    async fn bindings_of(&self, _: &InstanceId) -> Result<Vec<Binding>, StoreError> {
        Err(broken())
    }
    async fn bindings_due(&self, _: time::OffsetDateTime) -> Result<Vec<Binding>, StoreError> {
        Err(broken())
    }
}

fn broken() -> StoreError {
    StoreError::Unavailable("disk I/O error at /var/lib/secret-path".into())
}

#[tokio::test]
async fn an_unreadable_catalog_answers_503_naming_the_store_never_an_empty_catalog() {
    let broker = Broker::new(
        Arc::new(BrokenStore),
        None,
        BinderRegistry::new(),
        BrokerSettings::default(),
    );
    let state = ApiState::new(
        Arc::new(broker),
        BasicAuth::new(USER, &secrecy::SecretString::from(PASSWORD)),
    );
    let app = router(state, &Route::ALL);
    let response = app
        .clone()
        .oneshot(osb(Method::GET, "/v2/catalog", None).build())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "ServiceUnavailable");
    let description = json["description"].as_str().unwrap();
    assert!(description.contains("store"), "{description}");
    assert!(!description.contains("secret-path"), "{description}");
    let ready = app
        .oneshot(osb(Method::GET, "/readyz", None).build())
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// Moves the offering's only plan to the retired plans and adds an active `other` plan, as a
/// sync does when the plan is removed from the blueprint's `metadata.osb.plans`.
async fn retire_the_plan(h: &Harness, o: &Offering) {
    h.change_entry(o, |e| {
        let old = e.service.plans[0].clone();
        let mut other = old.clone();
        other.id = cloudify_osb::domain::ids::PlanId::parse("other-plan").unwrap();
        other.name = "other".into();
        e.service.plans = vec![other];
        e.retired_plans = vec![old];
    })
    .await;
}

#[tokio::test]
async fn a_plan_removed_from_the_blueprint_is_hidden_but_its_instances_keep_working() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    retire_the_plan(&h, &o).await;

    let c = h.get("/v2/catalog").await;
    let plans: Vec<&str> = c.json["services"][0]["plans"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(plans, ["other"], "the retired plan is not served");
    assert!(!c.text.contains(o.plan_id.as_str()));

    // No new instance on it.
    let a = h.provision("i2", &o).await;
    a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    assert!(a.description().contains("plan_id"), "{}", a.text);

    // The existing instance: fetch, context update, bind, unbind, deprovision.
    h.get("/v2/service_instances/i1")
        .await
        .assert_status(StatusCode::OK);
    let a = h
        .call(
            Method::PATCH,
            "/v2/service_instances/i1?accepts_incomplete=true",
            Some(
                serde_json::json!({"service_id": o.service_id, "plan_id": o.plan_id,
                "context": {"platform": "kubernetes", "instance_name": "renamed"}}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = h.bind("i1", "b1", &o, serde_json::json!({})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    h.unbind("i1", "b1", &o).await.assert_status(StatusCode::OK);
    let a = h.deprovision("i1", &o).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
}

#[tokio::test]
async fn a_plan_change_to_a_retired_plan_is_refused() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    // i1 moves to `other` in the catalog's eyes: its own plan is retired, and a change back
    // to a retired plan is refused like any unknown plan.
    retire_the_plan(&h, &o).await;
    let a = h
        .call(
            Method::PATCH,
            "/v2/service_instances/i1?accepts_incomplete=true",
            Some(serde_json::json!({"service_id": o.service_id, "plan_id": "other-plan"})),
        )
        .await;
    // `other` is active: not a 400, only refused because the plan cannot be changed here.
    a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "UnsupportedChange");
    let mut i = h.instance("i1").await.unwrap();
    i.plan_id = cloudify_osb::domain::ids::PlanId::parse("other-plan").unwrap();
    h.store.update_instance(&i).await.unwrap();
    let a = h
        .call(
            Method::PATCH,
            "/v2/service_instances/i1?accepts_incomplete=true",
            Some(serde_json::json!({"service_id": o.service_id, "plan_id": o.plan_id})),
        )
        .await;
    a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    assert!(a.description().contains("plan_id"), "{}", a.text);
}

/// A router like a Lambda function's: the catalog route with a response limit.
fn limited(store: Arc<dyn Store>, limit: usize) -> axum::Router {
    let broker = Broker::new(
        store,
        None,
        BinderRegistry::new(),
        BrokerSettings::default(),
    );
    let state = ApiState::new(
        Arc::new(broker),
        BasicAuth::new(USER, &secrecy::SecretString::from(PASSWORD)),
    )
    .with_response_limit(limit);
    router(state, &[Route::Catalog])
}

#[tokio::test]
async fn a_catalog_over_the_lambda_response_limit_answers_a_clear_error_never_a_truncated_body() {
    let h = Harness::new();
    for n in 0..40 {
        h.offering(&format!("bp_{n:02}"), true, Some("vault")).await;
    }
    let size = h.get("/v2/catalog").await.text.len();
    assert!(size > 10_000, "{size}");

    let store: Arc<dyn Store> = h.store.clone();
    let roomy = limited(Arc::clone(&store), 6 * 1024 * 1024);
    let ok = roomy
        .oneshot(osb(Method::GET, "/v2/catalog", None).build())
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    // Room for the body, not for it escaped as a JSON string plus the envelope.
    let tight = limited(store, size + 8 * 1024 + 10);
    let response = tight
        .oneshot(osb(Method::GET, "/v2/catalog", None).build())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "CatalogTooLarge");
    let description = json["description"].as_str().unwrap();
    assert!(description.contains("40 services"), "{description}");
    assert!(description.contains("cloudify-osb serve"), "{description}");
}
