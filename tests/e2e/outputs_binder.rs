//! The `outputs` binder end to end (issue 6: a second binder that needs no Vault): `serve`
//! without Vault against the Cloudify simulator, the service switched to the binder with
//! `cloudify-osb service set-binder … --binder outputs --config NAMES`; bind, fetch, an
//! identical re-PUT and unbind as a platform drives them.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::lifecycle::{Broker, assert_nothing_left, broker_bin, start};

fn set_binder(broker: &Broker, config: &str) {
    let out = Command::new(broker_bin())
        .args([
            "service",
            "set-binder",
            "mysql-external",
            "--binder",
            "outputs",
        ])
        .args(["--config", config, "--store", broker.store()])
        .output()
        .expect("run cloudify-osb service set-binder");
    assert!(
        out.status.success(),
        "set-binder: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn binding_path(instance: &str, binding: &str) -> String {
    format!("/v2/service_instances/{instance}/service_bindings/{binding}")
}

#[tokio::test]
async fn the_outputs_binder_hands_out_allow_listed_outputs_without_vault() {
    let (sim, broker) = start("7.0").await;
    broker.sync();
    set_binder(&broker, "mysql_ip,db_name");
    broker.sync();
    let svc = broker.service("mysql-external").await;
    let services = broker.call(Method::GET, "/v2/catalog", None).await.1;
    let entry = services["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "mysql-external"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(entry["bindable"], true, "{entry}");

    let id = "outputs-e2e-1";
    let (status, body) = broker
        .provision(id, &svc, json!({"db_name": "orders"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (state, description) = broker.wait(id, body["operation"].as_str()).await;
    assert_eq!(state, "succeeded", "{description}");

    let bind_body = json!({"service_id": svc.0, "plan_id": svc.1});
    let (status, bound) = broker
        .call(
            Method::PUT,
            &binding_path(id, "b1"),
            Some(bind_body.clone()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{bound}; log: {}",
        broker.log()
    );
    let creds = bound["credentials"].clone();
    assert_eq!(creds["db_name"], "orders");
    assert!(
        creds["mysql_ip"].as_str().is_some_and(|v| !v.is_empty()),
        "{creds}"
    );
    assert_eq!(creds["provider"], "cloudify");
    assert_eq!(creds["type"], "mysql-external");
    assert_eq!(
        creds.as_object().map(|m| m.len()),
        Some(4),
        "only the allow-listed outputs, type and provider: {creds}"
    );
    assert!(bound.get("metadata").is_none(), "nothing expires: {bound}");

    // Fetch and an identical re-PUT answer the same, read from Cloudify again.
    let (status, fetched) = broker
        .call(Method::GET, &binding_path(id, "b1"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{fetched}");
    assert_eq!(fetched["credentials"], creds);
    let (status, again) = broker
        .call(
            Method::PUT,
            &binding_path(id, "b1"),
            Some(bind_body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["credentials"], creds);

    // A listed output the deployment lacks: 422 naming it, no binding.
    set_binder(&broker, "mysql_ip,no_such_output");
    let (status, err) = broker
        .call(Method::PUT, &binding_path(id, "b2"), Some(bind_body))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["description"]
            .as_str()
            .is_some_and(|d| d.contains("no_such_output")),
        "{err}"
    );
    let (status, _) = broker
        .call(Method::GET, &binding_path(id, "b2"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Unbind: nothing to revoke; the binding is forgotten.
    let query = format!("?service_id={}&plan_id={}", svc.0, svc.1);
    let unbind = format!("{}{query}", binding_path(id, "b1"));
    let (status, body) = broker.call(Method::DELETE, &unbind, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = broker.call(Method::DELETE, &unbind, None).await;
    assert_eq!(status, StatusCode::GONE);
    let (status, readiness) = broker.call(Method::GET, "/readyz", None).await;
    assert_eq!(
        readiness["checks"]["vault"], "not configured",
        "{status} {readiness}"
    );

    broker.remove(id, &svc).await;
    assert_nothing_left(&sim, "osb-").await;
}
