//! Route `update`: `PATCH /v2/service_instances/:instance_id`. Plans are not updateable yet:
//! plan, parameter and maintenance changes answer 422; no-op and context-only updates 200.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

const PATCH: &str = "/v2/service_instances/i1?accepts_incomplete=true";

async fn patch(h: &Harness, body: Value) -> Answer {
    h.call(Method::PATCH, PATCH, Some(body)).await
}

#[tokio::test]
async fn an_update_of_an_unknown_instance_answers_404() {
    let h = Harness::new();
    let o = h.mariadb().await;
    patch(&h, json!({"service_id": o.service_id}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn an_update_without_effect_answers_200_with_an_empty_object() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    for body in [
        json!({"service_id": o.service_id}),
        json!({"service_id": o.service_id, "plan_id": o.plan_id}),
        json!({"service_id": o.service_id, "parameters": {"size": "large"}}),
    ] {
        let a = patch(&h, body).await;
        a.assert_status(StatusCode::OK);
        assert_eq!(a.json, json!({}));
    }
}

#[tokio::test]
async fn a_context_only_update_is_applied() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let a = patch(
        &h,
        json!({"service_id": o.service_id, "context": {"platform": "kubernetes", "instance_name": "new"}}),
    )
    .await;
    a.assert_status(StatusCode::OK);
    let i = h.instance("i1").await.unwrap();
    assert_eq!(i.context.unwrap()["instance_name"], "new");
}

#[tokio::test]
async fn a_plan_change_answers_422_because_plans_are_not_updateable() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let mut catalog = {
        use cloudify_osb::domain::ports::Store;
        h.store.catalog().await.unwrap()
    };
    let mut second = catalog.entries[0].service.plans[0].clone();
    second.id = cloudify_osb::domain::ids::PlanId::parse("plan-two").unwrap();
    second.name = "two".into();
    catalog.entries[0].service.plans.push(second);
    {
        use cloudify_osb::domain::ports::Store;
        h.store.put_catalog_entries(&catalog.entries).await.unwrap();
    }
    let a = patch(
        &h,
        json!({"service_id": o.service_id, "plan_id": "plan-two"}),
    )
    .await;
    a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "UnsupportedChange");
    assert_eq!(h.instance("i1").await.unwrap().plan_id, o.plan_id);
}

#[tokio::test]
async fn an_unknown_plan_answers_400() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    patch(
        &h,
        json!({"service_id": o.service_id, "plan_id": "no-such-plan"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn a_parameter_change_answers_422_and_changes_nothing() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let a = patch(
        &h,
        json!({"service_id": o.service_id, "parameters": {"size": "huge"}}),
    )
    .await;
    a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "UnsupportedChange");
    assert_eq!(h.instance("i1").await.unwrap().parameters["size"], "large");
}

#[tokio::test]
async fn a_service_id_that_is_not_the_instances_answers_400() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    patch(&h, json!({"service_id": "another-service"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn a_missing_service_id_answers_400() {
    let h = Harness::new();
    patch(&h, json!({"plan_id": "p"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn an_update_while_provisioning_answers_422_concurrency_error() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    let a = patch(&h, json!({"service_id": o.service_id})).await;
    a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ConcurrencyError");
    assert_eq!(a.json["description"], CONCURRENCY);
}

#[tokio::test]
async fn a_maintenance_info_the_catalog_does_not_have_answers_422() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let a = patch(
        &h,
        json!({"service_id": o.service_id, "maintenance_info": {"version": "9.9.9"}}),
    )
    .await;
    a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "MaintenanceInfoConflict");
}
