//! Route `last-operation`: `GET /v2/service_instances/:instance_id/last_operation`, the
//! lifecycle state machine as the platform polls it.

use axum::http::StatusCode;

use crate::support::*;
use cloudify_osb::domain::error::OrchestratorError;
use cloudify_osb::domain::instance::InstanceState;
use cloudify_osb::domain::ports::ExecutionState;

#[tokio::test]
async fn a_running_install_answers_in_progress_with_retry_after() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let p = h.provision("i1", &o).await;
    let a = h.last_operation("i1", p.json["operation"].as_str()).await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json["state"], "in progress");
    assert_eq!(a.headers.get("retry-after").unwrap(), "7");
}

#[tokio::test]
async fn a_finished_install_answers_succeeded_and_the_instance_is_provisioned() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let p = h.provision("i1", &o).await;
    h.cloudify.finish_running(ExecutionState::Succeeded);
    let a = h.last_operation("i1", p.json["operation"].as_str()).await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json["state"], "succeeded");
    assert!(a.headers.get("retry-after").is_none());
    assert_eq!(
        h.instance("i1").await.unwrap().state,
        InstanceState::Provisioned
    );
    let again = h.last_operation("i1", p.json["operation"].as_str()).await;
    assert_eq!(
        again.json["state"], "succeeded",
        "a terminal state is not forgotten"
    );
}

#[tokio::test]
async fn a_failed_install_answers_failed_with_cloudifys_text() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    h.cloudify.finish_running(ExecutionState::Failed(
        "Task failed 'create_db': disk full".into(),
    ));
    let a = h.last_operation("i1", None).await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json["state"], "failed");
    assert_eq!(a.json["description"], "Task failed 'create_db': disk full");
}

#[tokio::test]
async fn a_pending_environment_stays_in_progress_then_installs() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.cloudify.with(|s| s.environment_pending = true);
    h.provision("i1", &o)
        .await
        .assert_status(StatusCode::ACCEPTED);
    let a = h.last_operation("i1", None).await;
    assert_eq!(a.json["state"], "in progress");
    assert!(
        !h.cloudify
            .with(|s| s.executions.values().any(|e| e.workflow == "install"))
    );
    h.cloudify.with(|s| s.environment_pending = false);
    let a = h.last_operation("i1", None).await;
    assert_eq!(a.json["state"], "in progress");
    h.cloudify.finish_running(ExecutionState::Succeeded);
    assert_eq!(
        h.last_operation("i1", None).await.json["state"],
        "succeeded"
    );
}

#[tokio::test]
async fn a_failed_environment_answers_failed_with_cloudifys_text() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.cloudify.with(|s| s.environment_pending = true);
    h.provision("i1", &o).await;
    h.cloudify.with(|s| {
        s.start_errors
            .push_back(OrchestratorError::EnvironmentFailed(
                "input 'size' is invalid".into(),
            ))
    });
    let a = h.last_operation("i1", None).await;
    assert_eq!(a.json["state"], "failed");
    assert_eq!(a.json["description"], "input 'size' is invalid");
}

#[tokio::test]
async fn unknown_cloudify_statuses_and_outages_stay_in_progress() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    h.cloudify
        .finish_running(ExecutionState::InProgress("some_future_status".into()));
    let a = h.last_operation("i1", None).await;
    assert_eq!(a.json["state"], "in progress");
    h.cloudify.with(|s| s.down = true);
    let a = h.last_operation("i1", None).await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json["state"], "in progress");
}

#[tokio::test]
async fn an_unknown_instance_answers_410_for_a_deprovision_and_404_otherwise() {
    let h = Harness::new();
    h.last_operation("nope", None)
        .await
        .assert_error(StatusCode::GONE, "Gone");
    h.last_operation("nope", Some("deprovision-0123"))
        .await
        .assert_error(StatusCode::GONE, "Gone");
    h.last_operation("nope", Some("provision-0123"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn a_malformed_operation_answers_400() {
    let h = Harness::new();
    h.last_operation("i1", Some("a%2Fb"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn without_cloudify_a_running_operation_answers_503() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    let without = Harness::with(Options {
        cloudify: false,
        ..Options::default()
    });
    let instance = h.instance("i1").await.unwrap();
    use cloudify_osb::domain::ports::Store;
    without.store.create_instance(&instance).await.unwrap();
    let a = without.last_operation("i1", None).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
}

#[tokio::test]
async fn an_operation_past_the_plans_maximum_polling_duration_fails_and_is_cancelled() {
    use cloudify_osb::domain::instance::InstanceState;
    use cloudify_osb::domain::ports::Store;
    let h = Harness::new();
    let o = h.mariadb().await;
    let mut catalog = h.store.catalog().await.unwrap();
    catalog.entries[0].service.plans[0].maximum_polling_duration = Some(600);
    h.store.put_catalog_entries(&catalog.entries).await.unwrap();
    h.provision("i1", &o).await;
    let a = h.last_operation("i1", None).await;
    assert_eq!(a.json["state"], "in progress", "within the limit");
    let mut i = h.instance("i1").await.unwrap();
    if let Some(op) = i.operation.as_mut() {
        op.started_at -= time::Duration::hours(1);
    }
    h.store.update_instance(&i).await.unwrap();
    let a = h.last_operation("i1", None).await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json["state"], "failed");
    assert!(
        a.description().contains("maximum_polling_duration"),
        "{}",
        a.text
    );
    assert!(
        h.cloudify
            .calls()
            .iter()
            .any(|c| c.starts_with("cancel_execution"))
    );
    assert_eq!(
        h.instance("i1").await.unwrap().state,
        InstanceState::ProvisionFailed
    );
}
