//! The instance lifecycle end to end, as a platform would drive it: the built
//! `cloudify-osb serve` (temp SQLite store) and `cloudify-osb sync` against a private
//! `cloudify-sim` (from `$CLOUDIFY_SIM_BIN`, fixtures from the repository), spoken to over
//! HTTP. Asserts OSB answers and, through the simulator's inspection routes, that nothing is
//! left behind in Cloudify — also while the simulator answers 500s and slowly.

#[path = "../contract/cloudify/sim.rs"]
pub(crate) mod sim;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use sim::Sim;

const BROKER_USER: &str = "platform";
const BROKER_PASSWORD: &str = "platform-secret";
const EXEC_SECONDS: &str = "0.3";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The broker binary: cargo's build of this package, or `$CLOUDIFY_OSB_BIN` (useful when
/// several checkouts share one target directory and overwrite each other's binaries).
pub(crate) fn broker_bin() -> String {
    std::env::var("CLOUDIFY_OSB_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cloudify-osb").to_owned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running `cloudify-osb serve`, killed on drop.
pub(crate) struct Broker {
    url: String,
    child: Child,
    store: String,
    cloudify_url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cloudify_args<'a>(store: &'a str, cloudify_url: &'a str) -> Vec<&'a str> {
    vec![
        "--store",
        store,
        "--cloudify-url",
        cloudify_url,
        "--cloudify-username",
        "admin",
        "--cloudify-password",
        "admin",
        "--log-format",
        "json",
    ]
}

impl Broker {
    async fn start(sim: &Sim) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = format!("sqlite:{}", dir.path().join("broker.db").display());
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log file");
        let child = Command::new(broker_bin())
            .arg("serve")
            .args(["--listen", &listen])
            .args(["--username", BROKER_USER, "--password", BROKER_PASSWORD])
            .args(cloudify_args(&store, &sim.url))
            .env_remove("VAULT_ADDR")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cloudify-osb serve");
        let broker = Broker {
            url: format!("http://{listen}"),
            child,
            store,
            cloudify_url: sim.url.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            _dir: dir,
        };
        crate::world::wait_healthy(
            &broker.http,
            &broker.url,
            &broker._dir.path().join("serve.log"),
        )
        .await;
        broker
    }

    /// The `--store` argument of this broker (for admin commands on its store).
    pub(crate) fn store(&self) -> &str {
        &self.store
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("serve.log")).unwrap_or_default()
    }

    /// `cloudify-osb sync` on the same store; returns its report line.
    pub(crate) fn sync(&self) -> String {
        let out = Command::new(broker_bin())
            .arg("sync")
            .args(cloudify_args(&self.store, &self.cloudify_url))
            .env_remove("VAULT_ADDR")
            .output()
            .expect("run cloudify-osb sync");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "cloudify-osb sync failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .basic_auth(BROKER_USER, Some(BROKER_PASSWORD))
            .header("X-Broker-API-Version", "2.17");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("broker answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON answer {status} to {path}: {text}"));
        (status, value)
    }

    async fn catalog(&self) -> Vec<Value> {
        let (status, body) = self.call(reqwest::Method::GET, "/v2/catalog", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["services"].as_array().cloned().unwrap_or_default()
    }

    pub(crate) async fn service(&self, name: &str) -> (String, String) {
        let services = self.catalog().await;
        let s = services
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no service {name} in {services:?}"));
        (
            s["id"].as_str().unwrap().to_owned(),
            s["plans"][0]["id"].as_str().unwrap().to_owned(),
        )
    }

    pub(crate) async fn provision(
        &self,
        id: &str,
        service: &(String, String),
        parameters: Value,
    ) -> (StatusCode, Value) {
        self.call(
            reqwest::Method::PUT,
            &format!("/v2/service_instances/{id}?accepts_incomplete=true"),
            Some(json!({
                "service_id": service.0,
                "plan_id": service.1,
                "organization_guid": "org-e2e",
                "space_guid": "space-e2e",
                "parameters": parameters,
            })),
        )
        .await
    }

    async fn deprovision(&self, id: &str, service: &(String, String)) -> (StatusCode, Value) {
        self.call(
            reqwest::Method::DELETE,
            &format!(
                "/v2/service_instances/{id}?accepts_incomplete=true&service_id={}&plan_id={}",
                service.0, service.1
            ),
            None,
        )
        .await
    }

    /// Polls last_operation until it leaves `in progress`; every answer must be 200 (or 410
    /// once a deprovision finished). Returns the final state and description.
    pub(crate) async fn wait(&self, id: &str, operation: Option<&str>) -> (String, String) {
        let mut path = format!("/v2/service_instances/{id}/last_operation");
        if let Some(op) = operation {
            path.push_str(&format!("?operation={op}"));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.call(reqwest::Method::GET, &path, None).await;
            if status == StatusCode::GONE {
                return ("gone".into(), String::new());
            }
            assert_eq!(
                status,
                StatusCode::OK,
                "last_operation: {body}; log: {}",
                self.log()
            );
            let state = body["state"].as_str().unwrap_or_default().to_owned();
            if state != "in progress" {
                let description = body["description"].as_str().unwrap_or_default().to_owned();
                return (state, description);
            }
            assert!(Instant::now() < deadline, "{id} still in progress: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deprovisions and polls to the end; asserts success (succeeded or 410).
    pub(crate) async fn remove(&self, id: &str, service: &(String, String)) {
        let (status, body) = self.deprovision(id, service).await;
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "deprovision {id}: {status} {body}; log: {}",
            self.log()
        );
        let (state, description) = self.wait(id, body["operation"].as_str()).await;
        assert!(
            state == "succeeded" || state == "gone",
            "deprovision of {id} ended {state}: {description}"
        );
        let (status, _) = self
            .call(
                reqwest::Method::GET,
                &format!("/v2/service_instances/{id}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{id} is forgotten");
    }
}

pub(crate) async fn start(version: &str) -> (Sim, Broker) {
    let fixtures = repo().join("sim/fixtures");
    let sim = Sim::start_with(
        version,
        EXEC_SECONDS.parse().unwrap(),
        &["--fixtures", fixtures.to_str().unwrap()],
    );
    let mariadb = std::fs::read_to_string(repo().join("examples/mariadb/fixtures/mariadb.json"))
        .expect("the MariaDB example fixture");
    sim.add_blueprint(serde_json::from_str(&mariadb).unwrap())
        .await;
    let broker = Broker::start(&sim).await;
    (sim, broker)
}

pub(crate) async fn assert_nothing_left(sim: &Sim, prefix: &str) {
    let left = sim.deployment_ids(prefix).await;
    assert!(
        left.is_empty(),
        "deployments orphaned in Cloudify: {left:?}"
    );
}

async fn provision_poll_deprovision_leaves_nothing_behind(version: &str) {
    let (sim, broker) = start(version).await;
    assert!(
        broker.catalog().await.is_empty(),
        "empty before the first sync"
    );
    let report = broker.sync();
    assert!(report.contains("2 added"), "{report}");
    let names: Vec<String> = broker
        .catalog()
        .await
        .iter()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["mariadb", "mysql-external"]);
    assert!(broker.sync().contains("2 unchanged"));

    let svc = broker.service("mysql-external").await;
    // A digit-first GUID: refused by Cloudify 4.4–5.2 unless prefixed.
    let id = "0c6e1f9a-e2e-ok";
    let (status, body) = broker
        .provision(id, &svc, json!({"db_name": "orders"}))
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{body}; log: {}",
        broker.log()
    );
    let operation = body["operation"].as_str().expect("an operation").to_owned();
    let (state, description) = broker.wait(id, Some(&operation)).await;
    assert_eq!(state, "succeeded", "{description}");
    let (status, instance) = broker
        .call(
            reqwest::Method::GET,
            &format!("/v2/service_instances/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{instance}");
    assert_eq!(instance["service_id"], svc.0.as_str());
    assert_eq!(instance["parameters"]["db_name"], "orders");
    let deployments = sim.deployments().await;
    let d = deployments
        .iter()
        .find(|d| d["id"] == format!("osb-{id}"))
        .expect("the deployment exists in Cloudify");
    assert_eq!(d["_installed"], true);

    broker.remove(id, &svc).await;
    assert_nothing_left(&sim, "osb-").await;
    // Deprovisioning again: 410.
    let (status, _) = broker.deprovision(id, &svc).await;
    assert_eq!(status, StatusCode::GONE);
}

async fn a_failing_install_fails_with_the_simulators_text_and_deprovisions(version: &str) {
    let (sim, broker) = start(version).await;
    broker.sync();
    let svc = broker.service("mysql-external").await;
    let id = "e2e-failing";
    sim.fail_next(
        "install",
        &format!("osb-{id}"),
        "Task failed 'mysql.configure' -> port 3306 already in use",
    )
    .await;
    let (status, body) = broker.provision(id, &svc, json!({"db_name": "x"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (state, description) = broker.wait(id, body["operation"].as_str()).await;
    assert_eq!(state, "failed");
    assert!(
        description.contains("port 3306 already in use"),
        "{description}"
    );
    // Orphan mitigation: the platform deprovisions; uninstall + delete leave nothing.
    broker.remove(id, &svc).await;
    assert_nothing_left(&sim, "osb-").await;
}

async fn bad_parameters_are_refused_or_fail_with_cloudifys_message(version: &str) {
    let (sim, broker) = start(version).await;
    broker.sync();
    let svc = broker.service("mysql-external").await;

    // The plan's schema catches a missing required input before Cloudify is asked.
    let (status, body) = broker
        .provision("e2e-schema", &svc, json!({"plan_size": "small"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["description"]
            .as_str()
            .unwrap_or("")
            .contains("db_name"),
        "{body}"
    );

    // The blueprint changed in Cloudify since the last sync (a new required input): only
    // Cloudify knows, and its message reaches the platform.
    let path = repo().join("sim/fixtures/mysql-external.json");
    let mut fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).unwrap();
    fixture["plan"]["inputs"]["region"] = json!({"type": "string", "description": "new"});
    sim.delete_blueprint("mysql-external").await;
    sim.add_blueprint(fixture).await;
    let id = "e2e-bad-inputs";
    let (status, body) = broker.provision(id, &svc, json!({"db_name": "x"})).await;
    if version < "6.0" {
        // 4.x/5.x validate in the PUT: 400 with Cloudify's message, no instance kept.
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            body["description"]
                .as_str()
                .unwrap_or("")
                .contains("region"),
            "{body}"
        );
        let (status, _) = broker
            .call(
                reqwest::Method::GET,
                &format!("/v2/service_instances/{id}/last_operation"),
                None,
            )
            .await;
        assert!(status == StatusCode::NOT_FOUND || status == StatusCode::GONE);
    } else {
        // 6.0+ validate in the environment execution: failed with Cloudify's message.
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let (state, description) = broker.wait(id, body["operation"].as_str()).await;
        assert_eq!(state, "failed");
        assert!(
            description.contains("region"),
            "Cloudify's message: {description}"
        );
        broker.remove(id, &svc).await;
    }
    assert_nothing_left(&sim, "osb-").await;
}

async fn server_errors_and_latency_still_end_with_the_right_answers(version: &str) {
    let (sim, broker) = start(version).await;
    broker.sync();
    let svc = broker.service("mysql-external").await;

    // Slow Cloudify, with bursts of 500s during the polls.
    sim.faults(0, 0, 150).await;
    let id = "e2e-flaky";
    let (status, body) = broker.provision(id, &svc, json!({"db_name": "f"})).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{body}; log: {}",
        broker.log()
    );
    let operation = body["operation"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut polls = 0;
    let final_state = loop {
        // A burst of two 500s before every fourth poll: GETs absorb them by retrying; a POST that
        // meets one is simply tried again by the next poll.
        if polls % 4 == 0 {
            sim.faults(2, 0, 150).await;
        }
        polls += 1;
        let (status, body) = broker
            .call(
                reqwest::Method::GET,
                &format!("/v2/service_instances/{id}/last_operation?operation={operation}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["state"] != "in progress" {
            break body;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(final_state["state"], "succeeded", "{final_state}");

    // Deprovision through the same weather.
    sim.faults(3, 0, 150).await;
    let (status, body) = broker.deprovision(id, &svc).await;
    assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::OK,
        "{status} {body}"
    );
    let (state, description) = broker.wait(id, body["operation"].as_str()).await;
    assert!(
        state == "succeeded" || state == "gone",
        "{state}: {description}"
    );
    sim.faults(0, 0, 0).await;
    assert_nothing_left(&sim, "osb-").await;

    // A 500 on the deployment PUT itself (not retried): the platform gets a clear error,
    // and its orphan mitigation (deprovision) ends cleanly with nothing left in Cloudify.
    let id = "e2e-put-500";
    sim.faults(1, 0, 0).await;
    let (status, body) = broker.provision(id, &svc, json!({"db_name": "p"})).await;
    assert!(
        status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::ACCEPTED,
        "{status} {body}"
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            body["description"]
                .as_str()
                .unwrap_or("")
                .contains("Cloudify"),
            "{body}"
        );
        assert!(
            !body.to_string().contains("simulated failure"),
            "no upstream text: {body}"
        );
    } else {
        broker.wait(id, body["operation"].as_str()).await;
    }
    broker.remove(id, &svc).await;
    assert_nothing_left(&sim, "osb-").await;

    // Dropped connections during a provision's polls.
    let id = "e2e-dropped";
    let (status, body) = broker.provision(id, &svc, json!({"db_name": "d"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    sim.faults(0, 2, 0).await;
    let (state, description) = broker.wait(id, body["operation"].as_str()).await;
    assert_eq!(state, "succeeded", "{description}");
    broker.remove(id, &svc).await;
    assert_nothing_left(&sim, "osb-").await;
}

async fn deprovision_while_cloudify_still_works_cancels_and_cleans_up(version: &str) {
    let fixtures = repo().join("sim/fixtures");
    let sim = Sim::start_with(version, 2.0, &["--fixtures", fixtures.to_str().unwrap()]);
    let broker = Broker::start(&sim).await;
    broker.sync();
    let svc = broker.service("mysql-external").await;

    // Deprovision at once, while the deployment environment is still being created.
    let id = "e2e-early-delete";
    let (status, body) = broker.provision(id, &svc, json!({"db_name": "e"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = broker.deprovision(id, &svc).await;
    assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::OK,
        "{status} {body}"
    );
    let (state, description) = broker.wait(id, body["operation"].as_str()).await;
    assert!(
        state == "succeeded" || state == "gone",
        "{state}: {description}"
    );
    assert_nothing_left(&sim, "osb-").await;

    // Deprovision while `install` runs: cancel, uninstall, delete.
    let id = "e2e-install-delete";
    let (status, body) = broker.provision(id, &svc, json!({"db_name": "i"})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let path = format!("/v2/service_instances/{id}/last_operation");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = broker.call(reqwest::Method::GET, &path, None).await;
        let description = body["description"].as_str().unwrap_or_default();
        if description.starts_with("install") {
            break;
        }
        assert_eq!(body["state"], "in progress", "{body}");
        assert!(Instant::now() < deadline, "install never started: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = broker.deprovision(id, &svc).await;
    assert!(
        status == StatusCode::ACCEPTED || status == StatusCode::OK,
        "{status} {body}"
    );
    let (state, description) = broker.wait(id, body["operation"].as_str()).await;
    assert!(
        state == "succeeded" || state == "gone",
        "{state}: {description}"
    );
    assert_nothing_left(&sim, "osb-").await;
}

macro_rules! per_version {
    ($($module:ident => $version:literal),* $(,)?) => {$(
        mod $module {
            #[tokio::test]
            async fn provision_poll_deprovision_leaves_nothing_behind() {
                super::provision_poll_deprovision_leaves_nothing_behind($version).await;
            }
            #[tokio::test]
            async fn a_failing_install_fails_with_the_simulators_text_and_deprovisions() {
                super::a_failing_install_fails_with_the_simulators_text_and_deprovisions($version).await;
            }
            #[tokio::test]
            async fn bad_parameters_are_refused_or_fail_with_cloudifys_message() {
                super::bad_parameters_are_refused_or_fail_with_cloudifys_message($version).await;
            }
            #[tokio::test]
            async fn server_errors_and_latency_still_end_with_the_right_answers() {
                super::server_errors_and_latency_still_end_with_the_right_answers($version).await;
            }
            #[tokio::test]
            async fn deprovision_while_cloudify_still_works_cancels_and_cleans_up() {
                super::deprovision_while_cloudify_still_works_cancels_and_cleans_up($version).await;
            }
        }
    )*};
}

// 5.1 refuses deployment IDs that begin with a digit (defect B18): the provision test uses a
// digit-first instance ID.
per_version! {
    v4_3 => "4.3",
    v5_1 => "5.1",
    v7_0 => "7.0",
}
