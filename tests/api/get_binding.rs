//! Route `get-binding`: `GET …/service_bindings/:binding_id` (2.14+).

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn fetching_an_unknown_binding_answers_404() {
    let h = Harness::new();
    h.get("/v2/service_instances/i1/service_bindings/b1")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn fetching_a_binding_returns_its_credentials_metadata_and_parameters() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let bound = h.bind("i1", "b1", &o, json!({"role": "ro"})).await;
    let a = h.get("/v2/service_instances/i1/service_bindings/b1").await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json["credentials"], bound.json["credentials"]);
    assert_eq!(a.json["metadata"], bound.json["metadata"]);
    assert_eq!(a.json["parameters"], json!({"role": "ro"}));
}
