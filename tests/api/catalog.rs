//! Route `catalog`: `GET /v2/catalog`.

use axum::http::StatusCode;

use crate::support::*;
use cloudify_osb::domain::ports::Store;

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
