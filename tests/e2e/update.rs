//! Updates through `cloudify-osb serve` against `cloudify-sim`: parameter and plan changes run
//! as Cloudify deployment updates, polled by last_operation; concurrency and failures.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::lifecycle::sim::Sim;
use crate::lifecycle::{Broker, assert_nothing_left, start};

/// The MariaDB example service: its ID and its plans by name.
async fn mariadb(broker: &Broker) -> (String, Value) {
    let services = broker
        .call(Method::GET, "/v2/catalog", None)
        .await
        .1
        .get("services")
        .cloned()
        .unwrap_or_default();
    let s = services
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == "mariadb"))
        .cloned()
        .unwrap_or_else(|| panic!("no mariadb service in {services}"));
    let plans: serde_json::Map<String, Value> = s["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_owned(), p["id"].clone()))
        .collect();
    (s["id"].as_str().unwrap().to_owned(), Value::Object(plans))
}

async fn patch(broker: &Broker, id: &str, body: Value) -> (StatusCode, Value) {
    broker
        .call(
            Method::PATCH,
            &format!("/v2/service_instances/{id}?accepts_incomplete=true"),
            Some(body),
        )
        .await
}

async fn fetch(broker: &Broker, id: &str) -> (StatusCode, Value) {
    broker
        .call(Method::GET, &format!("/v2/service_instances/{id}"), None)
        .await
}

async fn given_inputs(sim: &Sim, deployment: &str) -> Value {
    sim.deployments()
        .await
        .into_iter()
        .find(|d| d["id"] == deployment)
        .map(|d| d["_given_inputs"].clone())
        .unwrap_or(Value::Null)
}

async fn provisioned(broker: &Broker, id: &str, service: &str, plan: &Value) {
    let svc = (service.to_owned(), plan.as_str().unwrap().to_owned());
    let (status, body) = broker
        .provision(id, &svc, json!({"database": "orders"}))
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{body}; log: {}",
        broker.log()
    );
    let (state, description) = broker.wait(id, body["operation"].as_str()).await;
    assert_eq!(state, "succeeded", "{description}");
}

async fn parameter_and_plan_updates_succeed_and_show_the_new_values(version: &str) {
    let (sim, broker) = start(version).await;
    broker.sync();
    let (service, plans) = mariadb(&broker).await;
    let catalog = broker.call(Method::GET, "/v2/catalog", None).await.1;
    let entry = catalog["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mariadb")
        .unwrap()
        .clone();
    assert_eq!(entry["plan_updateable"], true, "{entry}");
    let id = "e2e-upd-ok";
    provisioned(&broker, id, &service, &plans["small"]).await;

    // A parameter change.
    let (status, body) = patch(
        &broker,
        id,
        json!({"service_id": service, "parameters": {"database": "billing"}}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{body}; log: {}",
        broker.log()
    );
    let operation = body["operation"].as_str().expect("an operation").to_owned();
    // An identical resend while it runs: the same operation.
    let (status, again) = patch(
        &broker,
        id,
        json!({"service_id": service, "parameters": {"database": "billing"}}),
    )
    .await;
    if status == StatusCode::ACCEPTED {
        assert_eq!(again["operation"], operation.as_str(), "{again}");
    } else {
        // The update already ended: nothing left to change.
        assert_eq!(status, StatusCode::OK, "{again}");
    }
    let (state, description) = broker.wait(id, Some(&operation)).await;
    assert_eq!(state, "succeeded", "{description}");
    let (status, instance) = fetch(&broker, id).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["parameters"]["database"], "billing");
    assert_eq!(instance["plan_id"], plans["small"]);
    let inputs = given_inputs(&sim, &format!("osb-{id}")).await;
    assert_eq!(inputs["database"], "billing", "{inputs}");

    // A plan change: the new plan's presets reach Cloudify; the parameters stay.
    let (status, body) = patch(
        &broker,
        id,
        json!({"service_id": service, "plan_id": plans["large"],
               "previous_values": {"plan_id": plans["small"]}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (state, description) = broker.wait(id, body["operation"].as_str()).await;
    assert_eq!(state, "succeeded", "{description}");
    let (_, instance) = fetch(&broker, id).await;
    assert_eq!(instance["plan_id"], plans["large"], "{instance}");
    assert_eq!(instance["parameters"]["database"], "billing");
    let inputs = given_inputs(&sim, &format!("osb-{id}")).await;
    assert_eq!(inputs["buffer_pool_size"], "1G", "{inputs}");

    // Nothing to change: 200 {} at once.
    let (status, body) = patch(&broker, id, json!({"service_id": service})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({}));

    let svc = (service.clone(), plans["large"].as_str().unwrap().to_owned());
    broker.remove(id, &svc).await;
    assert_nothing_left(&sim, "osb-e2e-upd-ok").await;
}

async fn an_update_during_the_install_is_a_concurrency_error(version: &str) {
    let (sim, broker) = start(version).await;
    broker.sync();
    let (service, plans) = mariadb(&broker).await;
    let id = "e2e-upd-busy";
    let svc = (service.clone(), plans["small"].as_str().unwrap().to_owned());
    let (status, body) = broker
        .provision(id, &svc, json!({"database": "orders"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, answer) = patch(
        &broker,
        id,
        json!({"service_id": service, "parameters": {"database": "other"}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"], "ConcurrencyError");
    let (state, description) = broker.wait(id, body["operation"].as_str()).await;
    assert_eq!(state, "succeeded", "{description}");
    broker.remove(id, &svc).await;
    assert_nothing_left(&sim, "osb-e2e-upd-busy").await;
}

async fn a_failing_update_reports_failed_and_a_later_update_works(version: &str) {
    let (sim, broker) = start(version).await;
    broker.sync();
    let (service, plans) = mariadb(&broker).await;
    let id = "e2e-upd-fail";
    provisioned(&broker, id, &service, &plans["small"]).await;
    sim.fail_next(
        "update",
        &format!("osb-{id}"),
        "Task failed 'mariadb.reconfigure' -> disk full",
    )
    .await;
    let (status, body) = patch(
        &broker,
        id,
        json!({"service_id": service, "parameters": {"database": "broken"}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let operation = body["operation"].as_str().unwrap().to_owned();
    // Fetching the instance while the update runs: ConcurrencyError.
    let (status, answer) = fetch(&broker, id).await;
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        assert_eq!(answer["error"], "ConcurrencyError");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let last = loop {
        let (status, body) = broker
            .call(
                Method::GET,
                &format!("/v2/service_instances/{id}/last_operation?operation={operation}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["state"] != "in progress" {
            break body;
        }
        assert!(Instant::now() < deadline, "still in progress: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(last["state"], "failed", "{last}");
    assert_eq!(last["instance_usable"], true, "{last}");
    assert!(
        last["description"]
            .as_str()
            .unwrap_or_default()
            .contains("disk full"),
        "{last}"
    );
    let (status, instance) = fetch(&broker, id).await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["parameters"]["database"], "orders", "unchanged");

    let (status, body) = patch(
        &broker,
        id,
        json!({"service_id": service, "parameters": {"database": "fixed"}}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (state, description) = broker.wait(id, body["operation"].as_str()).await;
    assert_eq!(state, "succeeded", "{description}");
    let (_, instance) = fetch(&broker, id).await;
    assert_eq!(instance["parameters"]["database"], "fixed");

    let svc = (service.clone(), plans["small"].as_str().unwrap().to_owned());
    broker.remove(id, &svc).await;
    assert_nothing_left(&sim, "osb-e2e-upd-fail").await;
}

macro_rules! per_version {
    ($($module:ident => $version:literal),* $(,)?) => {$(
        mod $module {
            #[tokio::test]
            async fn parameter_and_plan_updates_succeed_and_show_the_new_values() {
                super::parameter_and_plan_updates_succeed_and_show_the_new_values($version).await;
            }
            #[tokio::test]
            async fn an_update_during_the_install_is_a_concurrency_error() {
                super::an_update_during_the_install_is_a_concurrency_error($version).await;
            }
            #[tokio::test]
            async fn a_failing_update_reports_failed_and_a_later_update_works() {
                super::a_failing_update_reports_failed_and_a_later_update_works($version).await;
            }
        }
    )*};
}

per_version! {
    v4_3 => "4.3",
    v7_0 => "7.0",
}
