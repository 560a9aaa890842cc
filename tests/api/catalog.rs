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
