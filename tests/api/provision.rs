//! Route `provision`: `PUT /v2/service_instances/:instance_id` and its idempotency matrix
//! (osb.md §8).

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;
use cloudify_osb::domain::error::OrchestratorError;
use cloudify_osb::domain::instance::InstanceState;
use cloudify_osb::domain::ports::{ExecutionState, Store};

const PUT: &str = "/v2/service_instances/i1?accepts_incomplete=true";

#[tokio::test]
async fn a_new_instance_answers_202_with_an_operation_and_starts_install() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let a = h.provision("i1", &o).await;
    a.assert_status(StatusCode::ACCEPTED);
    let op = a.json["operation"].as_str().unwrap();
    assert!(op.starts_with("provision-"), "{op}");
    let calls = h.cloudify.calls();
    assert!(
        calls.contains(&"create_deployment osb-i1".to_string()),
        "{calls:?}"
    );
    assert!(
        calls.contains(&"start_workflow osb-i1 install".to_string()),
        "{calls:?}"
    );
    let i = h.instance("i1").await.unwrap();
    assert_eq!(i.state, InstanceState::Provisioning);
}

#[tokio::test]
async fn the_deployment_gets_plan_presets_under_the_users_parameters_and_a_label() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o)
        .await
        .assert_status(StatusCode::ACCEPTED);
    let d = h.cloudify.with(|s| s.deployments["osb-i1"].clone());
    assert_eq!(d.blueprint_id, "mariadb");
    assert_eq!(d.inputs["size"], "large", "the user's parameter wins");
    assert_eq!(d.inputs["region"], "preset");
    let labels: Vec<(&str, &str)> = d
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        vec![
            ("osb-instance", "i1"),
            ("osb-platform", "kubernetes"),
            ("osb-namespace", "ns1"),
        ],
        "the instance label, then the platform's context"
    );
}

#[tokio::test]
async fn the_dashboard_url_is_in_the_first_answer_when_the_ui_is_configured() {
    let h = Harness::with(Options {
        ui_url: Some("https://cloudify.example/".into()),
        ..Options::default()
    });
    let o = h.mariadb().await;
    let a = h.provision("i1", &o).await;
    a.assert_status(StatusCode::ACCEPTED);
    let url = a.json["dashboard_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://cloudify.example/console/"),
        "{url}"
    );
    assert!(url.contains("osb-i1"), "{url}");
}

#[tokio::test]
async fn an_identical_resend_while_provisioning_answers_202_with_the_same_operation() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let first = h.provision("i1", &o).await;
    let second = h.provision("i1", &o).await;
    second.assert_status(StatusCode::ACCEPTED);
    assert_eq!(first.json["operation"], second.json["operation"]);
    let creates = h
        .cloudify
        .calls()
        .iter()
        .filter(|c| c.starts_with("create_deployment"))
        .count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn provision_twice_with_same_body_after_success_returns_200() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let a = h.provision("i1", &o).await;
    a.assert_status(StatusCode::OK);
    assert!(a.json.get("operation").is_none());
}

#[tokio::test]
async fn a_resend_with_different_attributes_answers_409() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    for (key, value) in [
        ("organization_guid", json!("org-2")),
        ("space_guid", json!("space-2")),
        ("parameters", json!({"size": "tiny"})),
    ] {
        let mut body = provision_body(&o);
        body[key] = value;
        let a = h.call(Method::PUT, PUT, Some(body)).await;
        a.assert_error(StatusCode::CONFLICT, "Conflict");
    }
}

#[tokio::test]
async fn a_different_context_alone_does_not_make_a_request_different() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let first = h.provision("i1", &o).await;
    let mut body = provision_body(&o);
    body["context"] = json!({"platform": "kubernetes", "instance_name": "renamed"});
    let a = h.call(Method::PUT, PUT, Some(body)).await;
    a.assert_status(StatusCode::ACCEPTED);
    assert_eq!(a.json["operation"], first.json["operation"]);
}

#[tokio::test]
async fn a_resend_after_a_failed_provision_answers_409_until_deleted() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    h.cloudify
        .finish_running(ExecutionState::Failed("node db failed".into()));
    let a = h.last_operation("i1", None).await;
    assert_eq!(a.json["state"], "failed");
    h.provision("i1", &o)
        .await
        .assert_error(StatusCode::CONFLICT, "Conflict");
}

#[tokio::test]
async fn unknown_services_and_plans_answer_400() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let other = h.offering("other", false, None).await;
    for (service, plan) in [
        (json!("no-such-service"), json!(o.plan_id)),
        (json!(o.service_id), json!("no-such-plan")),
        (json!(o.service_id), json!(other.plan_id)),
    ] {
        let mut body = provision_body(&o);
        body["service_id"] = service;
        body["plan_id"] = plan;
        let a = h.call(Method::PUT, PUT, Some(body)).await;
        a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    }
    assert!(
        h.instance("i1").await.is_none(),
        "a 400 leaves nothing behind"
    );
}

#[tokio::test]
async fn an_inactive_service_cannot_be_provisioned() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let mut catalog = h.store.catalog().await.unwrap();
    catalog.entries[0].active = false;
    h.store.put_catalog_entries(&catalog.entries).await.unwrap();
    h.provision("i1", &o)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn missing_or_empty_required_fields_answer_400() {
    let h = Harness::new();
    let o = h.mariadb().await;
    for field in ["service_id", "plan_id", "organization_guid", "space_guid"] {
        let mut body = provision_body(&o);
        body.as_object_mut().unwrap().remove(field);
        let a = h.call(Method::PUT, PUT, Some(body)).await;
        a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
        assert!(a.description().contains(field), "{}", a.text);
        let mut body = provision_body(&o);
        body[field] = json!("");
        let a = h.call(Method::PUT, PUT, Some(body)).await;
        a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    }
}

#[tokio::test]
async fn parameters_and_context_must_be_objects() {
    let h = Harness::new();
    let o = h.mariadb().await;
    for (field, value) in [("parameters", json!([1])), ("context", json!("x"))] {
        let mut body = provision_body(&o);
        body[field] = value;
        let a = h.call(Method::PUT, PUT, Some(body)).await;
        a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    }
    let mut body = provision_body(&o);
    body["parameters"] = Value::Null;
    h.call(Method::PUT, PUT, Some(body))
        .await
        .assert_status(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let mut body = provision_body(&o);
    body["future_field"] = json!({"x": 1});
    h.call(Method::PUT, PUT, Some(body))
        .await
        .assert_status(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn cloudify_refusing_the_inputs_answers_400_with_its_message_and_leaves_nothing() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.cloudify.with(|s| {
        s.create_error = Some(OrchestratorError::InvalidInput(
            "input size must be one of small, large".into(),
        ))
    });
    let a = h.provision("i1", &o).await;
    a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    assert!(a.description().contains("input size must be"), "{}", a.text);
    assert!(h.instance("i1").await.is_none());
    h.provision("i1", &o)
        .await
        .assert_status(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn cloudify_down_answers_503_and_leaves_a_failed_instance_for_orphan_mitigation() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.cloudify.with(|s| s.down = true);
    let a = h.provision("i1", &o).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    assert_eq!(
        h.instance("i1").await.unwrap().state,
        InstanceState::ProvisionFailed
    );
    h.cloudify.with(|s| s.down = false);
    h.deprovision("i1", &o).await.assert_status(StatusCode::OK);
    h.last_operation("i1", None)
        .await
        .assert_error(StatusCode::GONE, "Gone");
}

#[tokio::test]
async fn without_cloudify_configured_provision_answers_503_naming_cloudify() {
    let h = Harness::with(Options {
        cloudify: false,
        ..Options::default()
    });
    let o = h.mariadb().await;
    let a = h.provision("i1", &o).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    assert!(a.description().contains("Cloudify"), "{}", a.text);
    assert!(h.instance("i1").await.is_none());
}

#[tokio::test]
async fn a_maintenance_info_version_the_plan_does_not_have_answers_422() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let mut body = provision_body(&o);
    body["maintenance_info"] = json!({"version": "2.0.0"});
    let a = h.call(Method::PUT, PUT, Some(body)).await;
    a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "MaintenanceInfoConflict");
}

#[tokio::test]
async fn an_instance_id_can_be_reused_after_a_completed_deprovision() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    h.deprovision("i1", &o)
        .await
        .assert_status(StatusCode::ACCEPTED);
    h.cloudify.finish_running(ExecutionState::Succeeded);
    let a = h.last_operation("i1", None).await;
    assert_eq!(a.json["state"], "succeeded", "{}", a.text);
    h.provision("i1", &o)
        .await
        .assert_status(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn concurrent_identical_provisions_create_one_deployment_and_share_the_operation() {
    let h = std::sync::Arc::new(Harness::new());
    let o = h.mariadb().await;
    let (a, b) = tokio::join!(h.provision("i1", &o), h.provision("i1", &o));
    a.assert_status(StatusCode::ACCEPTED);
    b.assert_status(StatusCode::ACCEPTED);
    assert_eq!(a.json["operation"], b.json["operation"]);
    let creates = h
        .cloudify
        .calls()
        .iter()
        .filter(|c| c.starts_with("create_deployment"))
        .count();
    assert_eq!(creates, 1);
}
