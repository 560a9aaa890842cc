//! Route `bind`: `PUT /v2/service_instances/:instance_id/service_bindings/:binding_id`,
//! synchronous (201), idempotent, and never half-created.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;
use cloudify_osb::domain::catalog::{InputParameters, Schemas, ServiceBindingSchemas};
use cloudify_osb::domain::error::BinderError;
use cloudify_osb::domain::ids::{BindingId, InstanceId};
use cloudify_osb::domain::ports::Store;

async fn binding_record_exists(h: &Harness, bid: &str) -> bool {
    h.store
        .binding(
            &InstanceId::parse("i1").unwrap(),
            &BindingId::parse(bid).unwrap(),
        )
        .await
        .unwrap()
        .is_some()
}

async fn ready() -> (Harness, Offering) {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.cloudify.with(|s| {
        s.outputs = json!({"host": "db.internal", "port": 3306})
            .as_object()
            .cloned()
            .unwrap()
    });
    h.provisioned("i1", &o).await;
    (h, o)
}

fn is_osb_time(s: &str) -> bool {
    // yyyy-mm-ddThh:mm:ss.sZ
    let b = s.as_bytes();
    s.len() == 22
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[21] == b'Z'
}

#[tokio::test]
async fn a_new_binding_answers_201_with_credentials_and_lease_metadata() {
    let (h, o) = ready().await;
    let a = h.bind("i1", "b1", &o, json!({"role": "ro"})).await;
    a.assert_status(StatusCode::CREATED);
    assert_eq!(a.json["credentials"]["type"], "mysql");
    assert!(a.json["credentials"]["password"].is_string());
    let expires = a.json["metadata"]["expires_at"].as_str().unwrap();
    let renew = a.json["metadata"]["renew_before"].as_str().unwrap();
    assert!(is_osb_time(expires), "{expires}");
    assert!(is_osb_time(renew), "{renew}");
    assert!(renew <= expires);
    let configured = h.binder.with(|s| s.configured.clone());
    assert_eq!(
        configured[0].1["host"], "db.internal",
        "the binder sees the outputs"
    );
}

#[tokio::test]
async fn bind_twice_with_same_body_returns_200_with_the_same_credentials() {
    let (h, o) = ready().await;
    let first = h.bind("i1", "b1", &o, json!({"role": "ro"})).await;
    let second = h.bind("i1", "b1", &o, json!({"role": "ro"})).await;
    second.assert_status(StatusCode::OK);
    assert_eq!(first.json["credentials"], second.json["credentials"]);
    assert_eq!(first.json["metadata"], second.json["metadata"]);
}

#[tokio::test]
async fn a_rebind_with_different_parameters_answers_409() {
    let (h, o) = ready().await;
    h.bind("i1", "b1", &o, json!({"role": "ro"})).await;
    h.bind("i1", "b1", &o, json!({"role": "rw"}))
        .await
        .assert_error(StatusCode::CONFLICT, "Conflict");
}

#[tokio::test]
async fn two_bindings_get_different_credentials() {
    let (h, o) = ready().await;
    let a = h.bind("i1", "b1", &o, json!({})).await;
    let b = h.bind("i1", "b2", &o, json!({})).await;
    assert_ne!(
        a.json["credentials"]["username"],
        b.json["credentials"]["username"]
    );
}

#[tokio::test]
async fn binding_to_an_unknown_instance_answers_404() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.bind("nope", "b1", &o, json!({}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn binding_to_an_instance_still_provisioning_answers_422_concurrency_error() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    h.bind("i1", "b1", &o, json!({}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "ConcurrencyError");
}

#[tokio::test]
async fn binding_to_a_failed_instance_answers_422() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provision("i1", &o).await;
    h.cloudify
        .finish_running(cloudify_osb::domain::ports::ExecutionState::Failed(
            "x".into(),
        ));
    h.last_operation("i1", None).await;
    h.bind("i1", "b1", &o, json!({}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "InstanceNotUsable");
}

#[tokio::test]
async fn a_service_without_binder_settings_is_not_bindable() {
    let h = Harness::new();
    let o = h.offering("plain", true, None).await;
    h.provisioned("i1", &o).await;
    let a = h.bind("i1", "b1", &o, json!({})).await;
    a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    assert!(a.description().contains("not bindable"), "{}", a.text);
}

#[tokio::test]
async fn a_plan_that_is_not_bindable_answers_400() {
    let h = Harness::new();
    let o = h.offering("static", false, Some("vault")).await;
    h.provisioned("i1", &o).await;
    h.bind("i1", "b1", &o, json!({}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn a_binder_that_is_not_configured_answers_503_naming_it() {
    let h = Harness::new();
    let o = h.offering("ldapdb", true, Some("ldap")).await;
    h.provisioned("i1", &o).await;
    let a = h.bind("i1", "b1", &o, json!({})).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    assert!(a.description().contains("ldap"), "{}", a.text);
    assert!(!binding_record_exists(&h, "b1").await);
}

#[tokio::test]
async fn without_vault_configured_bind_answers_503_naming_vault() {
    let h = Harness::with(Options {
        binder: false,
        ..Options::default()
    });
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let a = h.bind("i1", "b1", &o, json!({})).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    assert!(a.description().contains("Vault"), "{}", a.text);
}

#[tokio::test]
async fn a_vault_outage_answers_503_and_leaves_nothing_half_created() {
    let (h, o) = ready().await;
    h.binder.with(|s| s.down = true);
    let a = h.bind("i1", "b1", &o, json!({})).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    assert!(a.description().contains("Vault") && a.description().contains("req-test-1"));
    assert!(!a.text.contains("hvs."), "{}", a.text);
    assert!(!binding_record_exists(&h, "b1").await);
    h.binder.with(|s| s.down = false);
    h.bind("i1", "b1", &o, json!({}))
        .await
        .assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn a_binder_refusal_answers_422_and_leaves_nothing() {
    let (h, o) = ready().await;
    h.binder
        .with(|s| s.fail_credentials = Some(BinderError::MissingOutput("db_host".into())));
    let a = h.bind("i1", "b1", &o, json!({})).await;
    a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "BindingFailed");
    assert!(a.description().contains("db_host"), "{}", a.text);
    assert!(!binding_record_exists(&h, "b1").await);
}

#[tokio::test]
async fn a_cloudify_outage_while_reading_outputs_answers_503_and_leaves_nothing() {
    let (h, o) = ready().await;
    h.cloudify.with(|s| s.down = true);
    let a = h.bind("i1", "b1", &o, json!({})).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    assert!(a.description().contains("Cloudify"));
    assert!(!binding_record_exists(&h, "b1").await);
}

#[tokio::test]
async fn missing_service_or_plan_answers_400() {
    let (h, o) = ready().await;
    for body in [
        json!({"plan_id": o.plan_id}),
        json!({"service_id": o.service_id}),
        json!({"service_id": "", "plan_id": o.plan_id}),
    ] {
        h.call(
            Method::PUT,
            "/v2/service_instances/i1/service_bindings/b1",
            Some(body),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    }
}

#[tokio::test]
async fn a_plan_that_is_not_the_instances_answers_400() {
    let (h, o) = ready().await;
    let other = h.offering("other", true, Some("vault")).await;
    let a = h
        .call(
            Method::PUT,
            "/v2/service_instances/i1/service_bindings/b1",
            Some(json!({"service_id": o.service_id, "plan_id": other.plan_id})),
        )
        .await;
    a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn bind_is_synchronous_whatever_accepts_incomplete_says() {
    let (h, o) = ready().await;
    let a = h
        .call(
            Method::PUT,
            "/v2/service_instances/i1/service_bindings/b1?accepts_incomplete=true",
            Some(json!({"service_id": o.service_id, "plan_id": o.plan_id})),
        )
        .await;
    a.assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn a_rotation_names_a_live_predecessor_and_inherits_its_parameters() {
    let (h, o) = ready().await;
    h.bind("i1", "b1", &o, json!({"role": "ro"})).await;
    let a = h
        .call(
            Method::PUT,
            "/v2/service_instances/i1/service_bindings/b2",
            Some(json!({"predecessor_binding_id": "b1"})),
        )
        .await;
    a.assert_status(StatusCode::CREATED);
    let b2 = h
        .store
        .binding(
            &InstanceId::parse("i1").unwrap(),
            &BindingId::parse("b2").unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b2.parameters["role"], "ro");
    let a = h
        .call(
            Method::PUT,
            "/v2/service_instances/i1/service_bindings/b3",
            Some(json!({"predecessor_binding_id": "nope"})),
        )
        .await;
    a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

/// Gives the offering's plan a binding schema: `role` is `ro` or `rw`, nothing else.
async fn with_binding_schema(h: &Harness, o: &Offering) {
    h.change_entry(o, |e| {
        e.service.plans[0].schemas = Some(Schemas {
            service_instance: None,
            service_binding: Some(ServiceBindingSchemas {
                create: Some(InputParameters {
                    parameters: json!({
                        "$schema": "http://json-schema.org/draft-04/schema#",
                        "type": "object",
                        "additionalProperties": false,
                        "properties": {"role": {"type": "string", "enum": ["ro", "rw"]}}
                    }),
                }),
            }),
        });
    })
    .await;
}

#[tokio::test]
async fn bind_parameters_against_the_plan_binding_schema_answer_400_naming_the_parameter() {
    let (h, o) = ready().await;
    with_binding_schema(&h, &o).await;
    for (parameters, named) in [
        (json!({"role": "admin"}), "role"),
        (json!({"role": 1}), "role"),
        (json!({"ttl": "1h"}), "ttl"),
    ] {
        let a = h.bind("i1", "b1", &o, parameters).await;
        a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
        assert!(
            a.description().contains(&format!("\"{named}\"")),
            "{}",
            a.text
        );
    }
    assert!(!binding_record_exists(&h, "b1").await, "nothing recorded");
    assert!(
        h.binder
            .with(|s| s.kept.is_empty() && s.configured.is_empty()),
        "the binder was never asked"
    );
    let a = h.bind("i1", "b1", &o, json!({"role": "ro"})).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

#[tokio::test]
async fn the_binding_schema_is_served_in_the_catalog_and_binds_without_parameters_pass() {
    let (h, o) = ready().await;
    with_binding_schema(&h, &o).await;
    let c = h.get("/v2/catalog").await;
    let schema =
        &c.json["services"][0]["plans"][0]["schemas"]["service_binding"]["create"]["parameters"];
    assert_eq!(schema["properties"]["role"]["enum"], json!(["ro", "rw"]));
    let a = h
        .call(
            Method::PUT,
            "/v2/service_instances/i1/service_bindings/b2",
            Some(json!({"service_id": o.service_id, "plan_id": o.plan_id})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}
