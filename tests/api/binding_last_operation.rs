//! Route `binding-last-operation`: binds are never asynchronous, so an existing binding has
//! `succeeded` and an unknown one is 404.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

const URI: &str = "/v2/service_instances/i1/service_bindings/b1/last_operation";

#[tokio::test]
async fn an_existing_binding_answers_succeeded() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    h.bind("i1", "b1", &o, json!({})).await;
    let a = h.get(URI).await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json, json!({"state": "succeeded"}));
}

#[tokio::test]
async fn an_unknown_binding_answers_404() {
    let h = Harness::new();
    h.get(URI)
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
}
