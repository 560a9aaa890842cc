//! Route `unbind`: `DELETE …/service_bindings/:binding_id`, synchronous (200 `{}`); 410
//! when unknown.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

async fn bound() -> (Harness, Offering) {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    h.bind("i1", "b1", &o, json!({}))
        .await
        .assert_status(StatusCode::CREATED);
    (h, o)
}

#[tokio::test]
async fn unbinding_an_unknown_binding_or_instance_answers_410() {
    let (h, o) = bound().await;
    h.unbind("i1", "nope", &o)
        .await
        .assert_error(StatusCode::GONE, "Gone");
    h.unbind("nope", "b1", &o)
        .await
        .assert_error(StatusCode::GONE, "Gone");
}

#[tokio::test]
async fn unbinding_revokes_the_credentials_answers_200_and_then_410() {
    let (h, o) = bound().await;
    let a = h.unbind("i1", "b1", &o).await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json, json!({}));
    assert_eq!(h.binder.with(|s| s.revoked.clone()), vec!["b1".to_string()]);
    h.unbind("i1", "b1", &o)
        .await
        .assert_error(StatusCode::GONE, "Gone");
    h.get("/v2/service_instances/i1/service_bindings/b1")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn service_id_and_plan_id_are_required_in_the_query() {
    let (h, o) = bound().await;
    for q in [
        format!("plan_id={}", o.plan_id),
        format!("service_id={}", o.service_id),
        String::new(),
    ] {
        h.call(
            Method::DELETE,
            &format!("/v2/service_instances/i1/service_bindings/b1?{q}"),
            None,
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    }
}

#[tokio::test]
async fn a_vault_outage_answers_503_and_keeps_the_binding() {
    let (h, o) = bound().await;
    h.binder.with(|s| s.down = true);
    let a = h.unbind("i1", "b1", &o).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    h.binder.with(|s| s.down = false);
    h.unbind("i1", "b1", &o).await.assert_status(StatusCode::OK);
}
