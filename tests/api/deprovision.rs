//! Route `deprovision`: `DELETE /v2/service_instances/:instance_id`, asynchronous: cancel,
//! uninstall, delete, poll until the deployment is gone; bindings revoked first.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;
use cloudify_osb::domain::ports::ExecutionState;

#[tokio::test]
async fn deprovision_of_an_unknown_instance_answers_410() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.deprovision("nope", &o)
        .await
        .assert_error(StatusCode::GONE, "Gone");
}

#[tokio::test]
async fn service_id_and_plan_id_are_required_in_the_query() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    for q in [
        format!("plan_id={}", o.plan_id),
        format!("service_id={}", o.service_id),
        "service_id=&plan_id=".to_string(),
    ] {
        let a = h
            .call(
                Method::DELETE,
                &format!("/v2/service_instances/i1?accepts_incomplete=true&{q}"),
                None,
            )
            .await;
        a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    }
}

#[tokio::test]
async fn a_service_or_plan_that_is_not_the_instances_answers_400() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let other = h.offering("other", true, None).await;
    h.provisioned("i1", &o).await;
    let a = h.deprovision("i1", &other).await;
    a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn a_provisioned_instance_is_uninstalled_deleted_and_then_gone() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    h.cloudify.with(|s| s.slow_delete = true);
    let a = h.deprovision("i1", &o).await;
    a.assert_status(StatusCode::ACCEPTED);
    let op = a.json["operation"].as_str().unwrap().to_owned();
    assert!(op.starts_with("deprovision-"));
    assert!(
        h.cloudify
            .calls()
            .contains(&"start_workflow osb-i1 uninstall".to_string())
    );

    let a = h.last_operation("i1", Some(&op)).await;
    assert_eq!(a.json["state"], "in progress");
    h.cloudify.finish_running(ExecutionState::Succeeded);
    let a = h.last_operation("i1", Some(&op)).await;
    assert_eq!(a.json["state"], "in progress", "waits for the deletion");
    assert!(
        h.cloudify
            .calls()
            .contains(&"delete_deployment osb-i1".to_string())
    );
    h.cloudify.finish_deletes();
    let a = h.last_operation("i1", Some(&op)).await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json["state"], "succeeded");
    assert!(!h.cloudify.has_deployment("osb-i1"));
    h.last_operation("i1", Some(&op))
        .await
        .assert_error(StatusCode::GONE, "Gone");
    h.deprovision("i1", &o)
        .await
        .assert_error(StatusCode::GONE, "Gone");
}

#[tokio::test]
async fn an_identical_delete_while_in_progress_answers_202_with_the_same_operation() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let first = h.deprovision("i1", &o).await;
    let second = h.deprovision("i1", &o).await;
    second.assert_status(StatusCode::ACCEPTED);
    assert_eq!(first.json["operation"], second.json["operation"]);
}

#[tokio::test]
async fn a_delete_during_install_cancels_it_then_uninstalls_and_deletes() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    let a = h.deprovision("i1", &o).await;
    a.assert_status(StatusCode::ACCEPTED);
    assert!(
        h.cloudify
            .calls()
            .iter()
            .any(|c| c.starts_with("cancel_execution"))
    );
    h.cloudify.finish_running(ExecutionState::Cancelled);
    let a = h.last_operation("i1", None).await;
    assert_eq!(a.json["state"], "in progress");
    assert!(
        h.cloudify
            .calls()
            .contains(&"start_workflow osb-i1 uninstall".to_string())
    );
    h.cloudify.finish_running(ExecutionState::Succeeded);
    let a = h.last_operation("i1", None).await;
    assert_eq!(a.json["state"], "succeeded");
    assert!(!h.cloudify.has_deployment("osb-i1"));
}

#[tokio::test]
async fn a_never_installed_instance_is_deleted_without_uninstall() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.cloudify.with(|s| s.environment_pending = true);
    h.provision("i1", &o).await;
    let a = h.deprovision("i1", &o).await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json, json!({}), "finished within the request");
    assert!(!h.cloudify.calls().iter().any(|c| c.contains("uninstall")));
    assert!(!h.cloudify.has_deployment("osb-i1"));
}

#[tokio::test]
async fn a_failed_uninstall_answers_failed_and_a_new_delete_retries() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let first = h.deprovision("i1", &o).await;
    h.cloudify
        .finish_running(ExecutionState::Failed("node db stuck".into()));
    let a = h.last_operation("i1", None).await;
    assert_eq!(a.json["state"], "failed");
    assert!(a.description().contains("node db stuck"), "{}", a.text);
    assert_eq!(a.json["instance_usable"], false);
    let second = h.deprovision("i1", &o).await;
    second.assert_status(StatusCode::ACCEPTED);
    assert_ne!(first.json["operation"], second.json["operation"]);
}

#[tokio::test]
async fn deprovision_revokes_every_binding_first() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    h.bind("i1", "b1", &o, json!({}))
        .await
        .assert_status(StatusCode::CREATED);
    h.bind("i1", "b2", &o, json!({}))
        .await
        .assert_status(StatusCode::CREATED);
    h.deprovision("i1", &o)
        .await
        .assert_status(StatusCode::ACCEPTED);
    let (revoked, removed) = h
        .binder
        .with(|s| (s.revoked.clone(), s.removed_instances.clone()));
    assert_eq!(revoked, vec!["b1".to_string(), "b2".to_string()]);
    assert_eq!(removed, vec!["i1".to_string()]);
    let a = h.get("/v2/service_instances/i1/service_bindings/b1").await;
    a.assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn a_vault_outage_during_deprovision_answers_503_and_changes_nothing() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    h.bind("i1", "b1", &o, json!({})).await;
    h.binder.with(|s| s.down = true);
    let a = h.deprovision("i1", &o).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    assert!(a.description().contains("Vault"), "{}", a.text);
    assert!(!a.text.contains("hvs."), "{}", a.text);
    assert!(!h.cloudify.calls().iter().any(|c| c.contains("uninstall")));
    h.binder.with(|s| s.down = false);
    h.get("/v2/service_instances/i1")
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn without_cloudify_deprovision_answers_503() {
    let h = Harness::with(Options {
        cloudify: false,
        ..Options::default()
    });
    let o = h.mariadb().await;
    let other = Harness::new();
    let o2 = other.mariadb().await;
    other.provisioned("i1", &o2).await;
    use cloudify_osb::domain::ports::Store;
    h.store
        .create_instance(&other.instance("i1").await.unwrap())
        .await
        .unwrap();
    let a = h.deprovision("i1", &o).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    assert!(a.description().contains("Cloudify"));
}
