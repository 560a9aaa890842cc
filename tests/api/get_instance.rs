//! Route `get-instance`: `GET /v2/service_instances/:instance_id` (2.14+).

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;
use cloudify_osb::domain::ports::ExecutionState;

#[tokio::test]
async fn fetching_an_unknown_instance_answers_404() {
    let h = Harness::new();
    h.get("/v2/service_instances/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn fetching_an_instance_still_provisioning_answers_404() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    h.get("/v2/service_instances/i1")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn fetching_a_failed_instance_answers_404() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    h.cloudify
        .finish_running(ExecutionState::Failed("x".into()));
    h.last_operation("i1", None).await;
    h.get("/v2/service_instances/i1")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn fetching_a_provisioned_instance_answers_its_service_plan_and_parameters() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let a = h
        .get(&format!(
            "/v2/service_instances/i1?service_id={}&plan_id={}",
            o.service_id, o.plan_id
        ))
        .await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json["service_id"], o.service_id.as_str());
    assert_eq!(a.json["plan_id"], o.plan_id.as_str());
    assert_eq!(a.json["parameters"], json!({"size": "large"}));
}

#[tokio::test]
async fn fetching_an_instance_being_deprovisioned_answers_422_concurrency_error() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    h.deprovision("i1", &o)
        .await
        .assert_status(StatusCode::ACCEPTED);
    let a = h.get("/v2/service_instances/i1").await;
    a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ConcurrencyError");
}

#[tokio::test]
async fn fetching_with_malformed_hints_answers_400() {
    let h = Harness::new();
    let a = h
        .call(
            Method::GET,
            "/v2/service_instances/i1?service_id=a%2Fb",
            None,
        )
        .await;
    a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn fetching_an_instance_while_an_update_runs_answers_422_concurrency_error() {
    use cloudify_osb::domain::instance::InstanceState;
    use cloudify_osb::domain::operation::{Operation, OperationKind, Phase};
    use cloudify_osb::domain::ports::Store;
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let mut i = h.instance("i1").await.unwrap();
    i.state = InstanceState::Updating;
    i.operation = Some(Operation::start(OperationKind::Update, Phase::Update, None));
    h.store.update_instance(&i).await.unwrap();
    let a = h.get("/v2/service_instances/i1").await;
    a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ConcurrencyError");
    assert_eq!(a.json["description"], CONCURRENCY);
}
