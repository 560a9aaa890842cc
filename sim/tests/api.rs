//! Loopback tests of the simulator's REST surface, control routes and CLI.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudify_sim::fixtures::{Fixture, load_dir};
use cloudify_sim::{Config, Sim};
use serde_json::{Value, json};

const EXAMPLE: &str = include_str!("../fixtures/mysql-external.json");

struct T {
    base: String,
    http: reqwest::Client,
    _sim: Arc<Sim>,
}

async fn start_with(version: &str, exec_ms: u64, fixtures: Vec<Fixture>) -> T {
    let cfg = Config {
        version: version.parse().unwrap(),
        execution: Duration::from_millis(exec_ms),
        fixtures,
        ..Config::default()
    };
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let (local, sim) = cloudify_sim::spawn(addr, cfg).await.unwrap();
    T {
        base: format!("http://{local}"),
        http: reqwest::Client::new(),
        _sim: sim,
    }
}

async fn start(version: &str) -> T {
    start_with(version, 200, vec![Fixture::builtin_sample()]).await
}

fn example() -> Fixture {
    Fixture::from_json(&serde_json::from_str(EXAMPLE).unwrap()).unwrap()
}

impl T {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if path.starts_with("/api") {
            req = req.basic_auth("admin", Some("admin"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }
    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }

    async fn wait_execution(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (s, e) = self.get(&format!("/api/v3.1/executions/{id}")).await;
            assert_eq!(s, 200, "{e}");
            if ["terminated", "failed", "cancelled"].contains(&e["status"].as_str().unwrap()) {
                return e;
            }
            assert!(Instant::now() < deadline, "execution {id} did not end");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn create_ready(&self, dep: &str, blueprint: &str, inputs: Value) {
        let (s, d) = self
            .put(
                &format!("/api/v3.1/deployments/{dep}?async_create=true"),
                json!({"blueprint_id": blueprint, "inputs": inputs}),
            )
            .await;
        assert_eq!(s, 201, "{d}");
        let (_, list) = self
            .get(&format!(
                "/api/v3.1/executions?deployment_id={dep}&workflow_id=create_deployment_environment"
            ))
            .await;
        let id = list["items"][0]["id"].as_str().unwrap().to_string();
        assert_eq!(self.wait_execution(&id).await["status"], "terminated");
    }

    async fn run(&self, dep: &str, workflow: &str) -> Value {
        let (s, e) = self
            .post(
                "/api/v3.1/executions",
                json!({"deployment_id": dep, "workflow_id": workflow, "parameters": null,
                       "force": "false", "queue": "false", "id": null, "created_by": null}),
            )
            .await;
        assert_eq!(s, 201, "{e}");
        self.wait_execution(e["id"].as_str().unwrap()).await
    }
}

#[tokio::test]
async fn requests_without_credentials_or_with_a_foreign_tenant_are_refused() {
    let t = start("7.0").await;
    let r = t
        .http
        .get(format!("{}/api/v3.1/blueprints", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "unauthorized_error");
    assert!(body["server_traceback"].is_null());
    let r = t
        .http
        .get(format!("{}/api/v3.1/blueprints", t.base))
        .basic_auth("1admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "digit-first user names count as no credentials"
    );
    let r = t
        .http
        .get(format!("{}/api/v3.1/blueprints", t.base))
        .basic_auth("admin", Some("admin"))
        .header("Tenant", "other")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error_code"], "forbidden_error");
}

#[tokio::test]
async fn tokens_from_post_tokens_authenticate_on_6_4() {
    let t = start("6.4").await;
    let (s, tok) = t
        .post("/api/v3.1/tokens", json!({"description": "x"}))
        .await;
    assert_eq!(s, 200);
    let value = tok["value"].as_str().unwrap();
    assert!(value.starts_with("ctok-"));
    let r = t
        .http
        .get(format!("{}/api/v3.1/blueprints", t.base))
        .header("Authentication-Token", value)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn blueprint_lists_page_project_sort_and_filter() {
    let t = start("7.0").await;
    for i in 0..4 {
        let (s, _) = t
            .post(
                "/_sim/blueprints",
                json!({"id": format!("bp-{i}"), "plan": {}, "state": if i == 3 { "failed_parsing" } else { "uploaded" }}),
            )
            .await;
        assert_eq!(s, 201);
    }
    let (s, page) = t
        .get("/api/v3.1/blueprints?_size=2&_offset=2&_include=id,state&_sort=-id")
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        page["metadata"]["pagination"],
        json!({"total": 5, "offset": 2, "size": 2})
    );
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["bp-2", "bp-1"], "sample-mysql, bp-3 come first");
    assert_eq!(page["items"][0].as_object().unwrap().len(), 2);
    let (_, uploaded) = t
        .get("/api/v3.1/blueprints?state=uploaded&unknown_param=1")
        .await;
    assert_eq!(uploaded["metadata"]["pagination"]["total"], 4);
    let (s, bad) = t.get("/api/v3.1/blueprints?_include=nope").await;
    assert_eq!(
        (s, bad["error_code"].as_str()),
        (400, Some("no_such_include_field_error"))
    );
    let (s, bad) = t.get("/api/v3.1/blueprints?_size=-1").await;
    assert_eq!(
        (s, bad["error_code"].as_str()),
        (400, Some("bad_parameters_error"))
    );
}

#[tokio::test]
async fn blueprint_fields_follow_the_version() {
    for (v, state, labels) in [
        ("4.3", false, false),
        ("5.1", false, false),
        ("6.4", true, true),
    ] {
        let t = start(v).await;
        let (_, b) = t.get("/api/v3.1/blueprints/sample-mysql").await;
        assert_eq!(b.get("state").is_some(), state, "{v}");
        assert_eq!(b.get("labels").is_some(), labels, "{v}");
    }
    let t = start("4.3").await;
    let (s, e) = t.get("/api/v3.1/blueprints?_size=1001").await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("illegal_action_error"))
    );
    assert!(
        e["server_traceback"]
            .as_str()
            .unwrap()
            .contains("Traceback")
    );
}

#[tokio::test]
async fn install_makes_fixture_output_values_follow_the_inputs() {
    let t = start_with("7.0", 200, vec![example()]).await;
    t.create_ready(
        "out1",
        "mysql-external",
        json!({"mysql_port": 3307, "db_name": "x"}),
    )
    .await;
    let (_, before) = t.get("/api/v3.1/deployments/out1/outputs").await;
    assert_eq!(
        before,
        json!({"deployment_id": "out1", "outputs": {"mysql_ip": null, "db_name": "x"}})
    );
    assert_eq!(t.run("out1", "install").await["status"], "terminated");
    let (_, after) = t.get("/api/v3.1/deployments/out1/outputs").await;
    assert_eq!(after["outputs"]["mysql_ip"], "127.0.0.1:3307");
    let (_, caps) = t.get("/api/v3.1/deployments/out1/capabilities").await;
    assert_eq!(caps["capabilities"]["endpoint"], "127.0.0.1:3307");
    let (_, d) = t.get("/api/v3.1/deployments/out1").await;
    assert_eq!(d["installation_status"], "active");
    assert_eq!(t.run("out1", "uninstall").await["status"], "terminated");
    let (_, again) = t.get("/api/v3.1/deployments/out1/outputs").await;
    assert_eq!(again["outputs"]["mysql_ip"], Value::Null);
}

#[tokio::test]
async fn input_errors_come_from_the_put_on_5_1_and_from_the_create_execution_on_7_0() {
    let t = start_with("5.1", 200, vec![example()]).await;
    let (s, e) = t
        .put(
            "/api/v3.1/deployments/in1",
            json!({"blueprint_id": "mysql-external"}),
        )
        .await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("missing_required_deployment_input_error"))
    );
    let (s, e) = t
        .put(
            "/api/v3.1/deployments/in1",
            json!({"blueprint_id": "mysql-external", "inputs": {"db_name": "x", "mysql_port": 70000}}),
        )
        .await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("bad_parameters_error")),
        "{e}"
    );
    let (s, _) = t.get("/api/v3.1/deployments/in1").await;
    assert_eq!(s, 404, "nothing was created");

    let t = start_with("7.0", 200, vec![example()]).await;
    let (s, e) = t
        .put(
            "/api/v3.1/deployments/in1",
            json!({"blueprint_id": "mysql-external"}),
        )
        .await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("deployment_creation_error"))
    );
    assert!(e["message"].as_str().unwrap().contains("db_name"), "{e}");
    let (s, d) = t
        .put(
            "/api/v3.1/deployments/in1",
            json!({"blueprint_id": "mysql-external", "inputs": {"db_name": "y"}}),
        )
        .await;
    assert_eq!(s, 201, "a failed leftover is replaced: {d}");
}

#[tokio::test]
async fn starting_install_before_the_environment_is_ready_is_refused() {
    let t = start_with("7.0", 400, vec![Fixture::builtin_sample()]).await;
    let (s, _) = t
        .put(
            "/api/v3.1/deployments/env1?async_create=true",
            json!({"blueprint_id": "sample-mysql"}),
        )
        .await;
    assert_eq!(s, 201);
    let (s, e) = t
        .post(
            "/api/v3.1/executions",
            json!({"deployment_id": "env1", "workflow_id": "install"}),
        )
        .await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("deployment_environment_creation_pending_error"))
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (s, e) = t
        .post(
            "/api/v3.1/executions",
            json!({"deployment_id": "env1", "workflow_id": "install"}),
        )
        .await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (
            400,
            Some("deployment_environment_creation_in_progress_error")
        )
    );
}

#[tokio::test]
async fn deployment_id_rules_follow_the_version() {
    let t = start("5.1").await;
    let (s, e) = t
        .put(
            "/api/v3.1/deployments/9abc",
            json!({"blueprint_id": "sample-mysql"}),
        )
        .await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("bad_parameters_error"))
    );
    let (s, _) = t
        .put(
            "/api/v3.1/deployments/a%20b",
            json!({"blueprint_id": "sample-mysql"}),
        )
        .await;
    assert_eq!(s, 400);
    let t = start("7.0").await;
    let (s, d) = t
        .put(
            "/api/v3.1/deployments/9abc",
            json!({"blueprint_id": "sample-mysql"}),
        )
        .await;
    assert_eq!(s, 201, "{d}");
    assert_eq!(
        d["latest_execution_status"], "completed",
        "7.0 PUT blocks until the environment"
    );
    let (s, e) = t
        .put(
            "/api/v3.1/deployments/9abc",
            json!({"blueprint_id": "sample-mysql"}),
        )
        .await;
    assert_eq!((s, e["error_code"].as_str()), (409, Some("conflict_error")));
    let (s, e) = t
        .put("/api/v3.1/deployments/zz", json!({"blueprint_id": "nope"}))
        .await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (404, Some("not_found_error"))
    );
}

#[tokio::test]
async fn delete_answers_200_synchronously_on_4_3_and_204_on_7_0() {
    let t = start("4.3").await;
    t.create_ready("del1", "sample-mysql", json!({})).await;
    let (s, body) = t.delete("/api/v3.1/deployments/del1").await;
    assert_eq!(s, 200);
    assert_eq!(body["id"], "del1");
    let (s, _) = t.get("/api/v3.1/deployments/del1").await;
    assert_eq!(s, 404, "4.3 removes the row during the request");

    let t = start("4.6").await;
    t.create_ready("del3", "sample-mysql", json!({})).await;
    let (s, body) = t
        .delete("/api/v3.1/deployments/del3?ignore_live_nodes=true")
        .await;
    assert_eq!((s, body["id"].as_str()), (200, Some("del3")));
    let (s, _) = t.get("/api/v3.1/deployments/del3").await;
    assert_eq!(
        s, 200,
        "4.4 - 5.0 remove the row when delete_deployment_environment ends"
    );
    let (_, list) = t
        .get("/api/v3.1/executions?deployment_id=del3&workflow_id=delete_deployment_environment")
        .await;
    assert_eq!(list["metadata"]["pagination"]["total"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(t.get("/api/v3.1/deployments/del3").await.0, 404);

    let t = start("7.0").await;
    t.create_ready("del2", "sample-mysql", json!({})).await;
    t.run("del2", "install").await;
    let (s, e) = t.delete("/api/v3.1/deployments/del2").await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("dependent_exists_error"))
    );
    let (s, body) = t.delete("/api/v3.1/deployments/del2?force=true").await;
    assert_eq!((s, body), (204, Value::Null));
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.get("/api/v3.1/deployments/del2").await.0 != 404 {
        assert!(Instant::now() < deadline, "deployment never disappeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn fail_next_fails_the_named_workflow_with_the_message() {
    let t = start("7.0").await;
    t.create_ready("f1", "sample-mysql", json!({})).await;
    let (s, _) = t
        .post(
            "/_sim/fail-next",
            json!({"workflow_id": "install", "deployment_id": "f1", "message": "disk full"}),
        )
        .await;
    assert_eq!(s, 201);
    let e = t.run("f1", "install").await;
    assert_eq!(
        (e["status"].as_str(), e["error"].as_str()),
        (Some("failed"), Some("disk full"))
    );
    assert_eq!(
        t.run("f1", "install").await["status"],
        "terminated",
        "only the next one fails"
    );
}

#[tokio::test]
async fn queued_executions_wait_on_5_1_and_are_refused_on_4_3() {
    let t = start("5.1").await;
    t.create_ready("q1", "sample-mysql", json!({})).await;
    let (_, first) = t
        .post(
            "/api/v3.1/executions",
            json!({"deployment_id": "q1", "workflow_id": "install"}),
        )
        .await;
    let (s, e) = t
        .post(
            "/api/v3.1/executions",
            json!({"deployment_id": "q1", "workflow_id": "uninstall"}),
        )
        .await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("existing_running_execution_error"))
    );
    let (s, q) = t
        .post(
            "/api/v3.1/executions",
            json!({"deployment_id": "q1", "workflow_id": "uninstall", "queue": "true"}),
        )
        .await;
    assert_eq!((s, q["status"].as_str()), (201, Some("queued")));
    assert_eq!(
        t.wait_execution(first["id"].as_str().unwrap()).await["status"],
        "terminated"
    );
    assert_eq!(
        t.wait_execution(q["id"].as_str().unwrap()).await["status"],
        "terminated"
    );

    let t = start("4.3").await;
    t.create_ready("q2", "sample-mysql", json!({})).await;
    t.post(
        "/api/v3.1/executions",
        json!({"deployment_id": "q2", "workflow_id": "install"}),
    )
    .await;
    let (s, _) = t
        .post(
            "/api/v3.1/executions",
            json!({"deployment_id": "q2", "workflow_id": "uninstall", "queue": true}),
        )
        .await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn cancel_ends_an_execution_as_cancelled() {
    let t = start_with("7.0", 1000, vec![Fixture::builtin_sample()]).await;
    t.create_ready("c1", "sample-mysql", json!({})).await;
    let (_, e) = t
        .post(
            "/api/v3.1/executions",
            json!({"deployment_id": "c1", "workflow_id": "install"}),
        )
        .await;
    let id = e["id"].as_str().unwrap();
    let (s, c) = t
        .post(
            &format!("/api/v3.1/executions/{id}"),
            json!({"action": "cancel"}),
        )
        .await;
    assert_eq!((s, c["status"].as_str()), (200, Some("cancelling")));
    assert_eq!(t.wait_execution(id).await["status"], "cancelled");
    let (s, e) = t
        .post(&format!("/_sim/executions/{id}/cancel"), json!({}))
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = t
        .post(
            "/api/v3.1/executions",
            json!({"deployment_id": "c1", "workflow_id": "install", "parameters": "x"}),
        )
        .await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (400, Some("bad_parameters_error"))
    );
}

#[tokio::test]
async fn injected_500s_latency_and_dropped_connections_hit_api_requests_only() {
    let t = start("7.0").await;
    t.post("/_sim/faults", json!({"http_500": 2})).await;
    assert_eq!(
        t.get("/_sim/config").await.0,
        200,
        "control routes are never faulted"
    );
    let (s, e) = t.get("/api/v3.1/blueprints").await;
    assert_eq!(
        (s, e["error_code"].as_str()),
        (500, Some("internal_server_error"))
    );
    assert_eq!(t.get("/api/v3.1/blueprints").await.0, 500);
    assert_eq!(t.get("/api/v3.1/blueprints").await.0, 200);

    t.post("/_sim/faults", json!({"latency_ms": 150})).await;
    let t0 = Instant::now();
    assert_eq!(t.get("/api/v3.1/blueprints").await.0, 200);
    assert!(t0.elapsed() >= Duration::from_millis(150));
    t.post(
        "/_sim/faults",
        json!({"latency_ms": 0, "drop_connections": 1}),
    )
    .await;
    let err = t
        .http
        .get(format!("{}/api/v3.1/blueprints", t.base))
        .basic_auth("admin", Some("admin"))
        .send()
        .await;
    assert!(
        err.is_err(),
        "the connection closes without a response: {err:?}"
    );
    assert_eq!(t.get("/api/v3.1/blueprints").await.0, 200);
    let (_, f) = t.get("/_sim/faults").await;
    assert_eq!(f["drop_connections"], 0);
}

#[tokio::test]
async fn removing_a_blueprint_keeps_its_deployments_and_reset_restores_the_start() {
    let t = start("7.0").await;
    t.create_ready("r1", "sample-mysql", json!({})).await;
    assert_eq!(t.delete("/_sim/blueprints/sample-mysql").await.0, 204);
    let (_, list) = t.get("/api/v3.1/blueprints").await;
    assert_eq!(list["metadata"]["pagination"]["total"], 0);
    assert_eq!(t.run("r1", "install").await["status"], "terminated");
    let (_, outs) = t.get("/api/v3.1/deployments/r1/outputs").await;
    assert_eq!(outs["outputs"]["mysql_ip"], "127.0.0.1:3306");
    let (_, deps) = t.get("/_sim/deployments").await;
    assert_eq!(deps[0]["_installed"], true);
    assert_eq!(t.post("/_sim/reset", json!({})).await.0, 204);
    assert_eq!(t.get("/api/v3.1/deployments/r1").await.0, 404);
    let (_, list) = t.get("/api/v3.1/blueprints").await;
    assert_eq!(list["items"][0]["id"], "sample-mysql");
}

#[tokio::test]
async fn label_search_finds_deployments_on_7_0() {
    let t = start("7.0").await;
    let (s, _) = t
        .put(
            "/api/v3.1/deployments/l1",
            json!({"blueprint_id": "sample-mysql", "labels": [{"osb-instance": "abc"}]}),
        )
        .await;
    assert_eq!(s, 201);
    t.put(
        "/api/v3.1/deployments/l2",
        json!({"blueprint_id": "sample-mysql"}),
    )
    .await;
    let (s, found) = t
        .post(
            "/api/v3.1/searches/deployments?_include=id",
            json!({"filter_rules": [{"key": "osb-instance", "values": ["abc"], "operator": "any_of", "type": "label"}]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(found["items"], json!([{"id": "l1"}]));
}

#[test]
fn fixture_folder_loads_json_fixtures_and_skips_other_files() {
    let dir = std::env::temp_dir().join(format!("cloudify-sim-fx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.json"), EXAMPLE).unwrap();
    std::fs::write(dir.join("b.json"), r#"{"not": "a fixture"}"#).unwrap();
    std::fs::write(dir.join("c.json"), "{ broken").unwrap();
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    let loaded = load_dir(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, "mysql-external");
    assert_eq!(loaded[0].labels.len(), 2);
}

#[test]
fn binary_prints_its_real_address_when_listening_on_port_0() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cloudify-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--manager-version",
            "5.1",
            "--execution-seconds",
            "0.2",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let addr = line
        .trim()
        .strip_prefix("cloudify-sim listening on http://127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert_ne!(addr.parse::<u16>().unwrap(), 0);
}
