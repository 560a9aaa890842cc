//! Races, faults and security through the built `cloudify-osb serve` (temp SQLite store)
//! against a private `cloudify-sim` per test (issue 13). Every test starts its own servers,
//! so it may fault them; what is left in Cloudify is asserted through the simulator's
//! inspection routes.

// lifecycle.rs includes the same file privately; each module keeps its own copy.
#[allow(clippy::duplicate_mod)]
#[path = "../contract/cloudify/sim.rs"]
mod sim;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::world::{join_all, wait_healthy};
use sim::Sim;

const USER: &str = "platform";
const PASSWORD: &str = "broker-pw-5f1c9a7e";
const CLOUDIFY_PASSWORD: &str = "cfy-pw-8d2b4e61";

fn broker_bin() -> String {
    std::env::var("CLOUDIFY_OSB_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cloudify-osb").to_owned())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn start_sim() -> Sim {
    Sim::start_with("7.0", 0.3, &["--password", CLOUDIFY_PASSWORD])
}

/// A running `cloudify-osb serve`, killed on drop; its stderr is captured in `serve.log`.
struct Serve {
    url: String,
    child: Child,
    db: PathBuf,
    http: reqwest::Client,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cloudify_args(db: &Path, cloudify_url: &str) -> Vec<String> {
    [
        "--store",
        &format!("sqlite:{}", db.display()),
        "--cloudify-url",
        cloudify_url,
        "--cloudify-username",
        "admin",
        "--cloudify-password",
        CLOUDIFY_PASSWORD,
        "--log-format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

impl Serve {
    /// `sync` then `serve` on `dir/broker.db`, Cloudify at `cloudify_url`.
    async fn start(dir: &Path, cloudify_url: &str, sync: bool) -> Serve {
        Self::start_full(dir, cloudify_url, sync, &[]).await
    }

    /// `serve` (no sync) with extra flags.
    async fn start_with(dir: &Path, cloudify_url: &str, extra: &[&str]) -> Serve {
        Self::start_full(dir, cloudify_url, false, extra).await
    }

    async fn start_full(dir: &Path, cloudify_url: &str, sync: bool, extra: &[&str]) -> Serve {
        let db = dir.join("broker.db");
        if sync {
            let out = Command::new(broker_bin())
                .arg("sync")
                .args(cloudify_args(&db, cloudify_url))
                .env_remove("VAULT_ADDR")
                .output()
                .expect("cloudify-osb sync runs");
            assert!(
                out.status.success(),
                "sync: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let port = free_port();
        let log = dir.join(format!("serve-{port}.log"));
        let child = Command::new(broker_bin())
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--username", USER, "--password", PASSWORD])
            .args(cloudify_args(&db, cloudify_url))
            .args(extra)
            .env_remove("VAULT_ADDR")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start cloudify-osb serve");
        let serve = Serve {
            url: format!("http://127.0.0.1:{port}"),
            child,
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
            log,
        };
        wait_healthy(&serve.http, &serve.url, &serve.log).await;
        serve
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, String) {
        self.try_raw(method, path, auth, body)
            .await
            .expect("broker answers")
    }

    async fn try_raw(
        &self,
        method: Method,
        path: &str,
        auth: Option<(&str, &str)>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, String), reqwest::Error> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("X-Broker-API-Version", "2.17");
        if let Some((u, p)) = auth {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        Ok((status, resp.text().await.unwrap_or_default()))
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| serde_json::to_vec(&b).expect("json"));
        let (status, text) = self.raw(method, path, Some((USER, PASSWORD)), body).await;
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON answer {status} to {path}: {text}"));
        (status, value)
    }

    async fn offering(&self) -> (String, String) {
        let (status, body) = self.call(Method::GET, "/v2/catalog", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let s = &body["services"][0];
        (
            s["id"].as_str().expect("service id").to_owned(),
            s["plans"][0]["id"].as_str().expect("plan id").to_owned(),
        )
    }

    async fn provision(&self, id: &str, o: &(String, String)) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/v2/service_instances/{id}?accepts_incomplete=true"),
            Some(json!({"service_id": o.0, "plan_id": o.1,
                        "organization_guid": "org", "space_guid": "space"})),
        )
        .await
    }

    async fn deprovision(&self, id: &str, o: &(String, String)) -> (StatusCode, Value) {
        self.call(
            Method::DELETE,
            &format!(
                "/v2/service_instances/{id}?accepts_incomplete=true&service_id={}&plan_id={}",
                o.0, o.1
            ),
            None,
        )
        .await
    }

    /// Polls last_operation until a terminal state (or 410 after a delete).
    async fn settle(&self, id: &str) -> (StatusCode, Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self
                .call(
                    Method::GET,
                    &format!("/v2/service_instances/{id}/last_operation"),
                    None,
                )
                .await;
            if status != StatusCode::OK || body["state"] != "in progress" {
                return (status, body);
            }
            assert!(Instant::now() < deadline, "{id} still in progress: {body}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The platform's deprovision: DELETE and poll, again, until the broker says 410.
    async fn deprovision_until_gone(&self, id: &str, o: &(String, String)) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (status, body) = self.deprovision(id, o).await;
            match status {
                StatusCode::GONE => return,
                StatusCode::OK | StatusCode::ACCEPTED | StatusCode::UNPROCESSABLE_ENTITY => {
                    self.settle(id).await;
                }
                other => panic!("deprovision {id}: {other} {body}"),
            }
            assert!(Instant::now() < deadline, "{id} never went away");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [PASSWORD, CLOUDIFY_PASSWORD] {
        assert!(
            !text.contains(secret),
            "{what} contains a broker secret: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_identical_provisions_create_one_deployment_and_agree() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Serve::start(dir.path(), &sim.url, true).await;
    let o = serve.offering().await;
    let id = "race-prov-1";
    let answers = join_all((0..50).map(|_| {
        let serve = &serve;
        let o = &o;
        async move { serve.provision(id, o).await }
    }))
    .await;
    let mut operations = std::collections::BTreeSet::new();
    for (status, body) in &answers {
        match *status {
            StatusCode::ACCEPTED => {
                operations.insert(body["operation"].as_str().expect("operation").to_owned());
            }
            StatusCode::OK => {}
            other => panic!("a concurrent identical provision answered {other} {body}"),
        }
    }
    assert_eq!(operations.len(), 1, "one operation for all: {operations:?}");
    let deployments = sim.deployment_ids(&format!("osb-{id}")).await;
    assert_eq!(deployments, vec![format!("osb-{id}")]);
    let (status, body) = serve.settle(id).await;
    assert_eq!(
        (status, body["state"].clone()),
        (StatusCode::OK, json!("succeeded")),
        "{body}"
    );
    let installs = sim
        .executions()
        .await
        .iter()
        .filter(|e| e["deployment_id"] == format!("osb-{id}") && e["workflow_id"] == "install")
        .count();
    assert_eq!(installs, 1, "one install workflow");
    assert_no_secret("serve log", &serve.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provision_racing_deprovision_leaves_no_deployment_once_the_platform_deletes() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Serve::start(dir.path(), &sim.url, true).await;
    let o = serve.offering().await;
    for round in 0..5 {
        let id = format!("race-del-{round}");
        let (p, d) = tokio::join!(serve.provision(&id, &o), async {
            tokio::time::sleep(Duration::from_millis(20 * round)).await;
            serve.deprovision(&id, &o).await
        });
        for (what, (status, body)) in [("provision", &p), ("deprovision", &d)] {
            assert!(
                !status.is_server_error(),
                "{what} during the race answered {status} {body}"
            );
        }
        serve.deprovision_until_gone(&id, &o).await;
        assert!(
            sim.deployment_ids(&format!("osb-{id}")).await.is_empty(),
            "round {round}: a deployment was left behind"
        );
    }
}

const ROUTES: [(&str, &str); 10] = [
    ("GET", "/v2/catalog"),
    ("PUT", "/v2/service_instances/i1?accepts_incomplete=true"),
    ("PATCH", "/v2/service_instances/i1?accepts_incomplete=true"),
    (
        "DELETE",
        "/v2/service_instances/i1?accepts_incomplete=true&service_id=s&plan_id=p",
    ),
    ("GET", "/v2/service_instances/i1"),
    ("GET", "/v2/service_instances/i1/last_operation"),
    ("PUT", "/v2/service_instances/i1/service_bindings/b1"),
    (
        "DELETE",
        "/v2/service_instances/i1/service_bindings/b1?service_id=s&plan_id=p",
    ),
    ("GET", "/v2/service_instances/i1/service_bindings/b1"),
    (
        "GET",
        "/v2/service_instances/i1/service_bindings/b1/last_operation",
    ),
];

#[tokio::test]
async fn every_route_answers_401_without_or_with_wrong_credentials() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Serve::start(dir.path(), &sim.url, false).await;
    let wrong_user = ("someone", PASSWORD);
    let wrong_password = (USER, "not-the-password");
    for (method, path) in ROUTES {
        for auth in [None, Some(wrong_user), Some(wrong_password)] {
            let body = matches!(method, "PUT" | "PATCH").then(|| b"{}".to_vec());
            let (status, text) = serve.raw(method.parse().unwrap(), path, auth, body).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}: {text}"
            );
            let v: Value = serde_json::from_str(&text).expect("JSON 401");
            assert_eq!(v["error"], "Unauthorized");
            assert_no_secret("401 body", &text);
        }
    }
}

#[tokio::test]
async fn ids_unsafe_in_cloudify_vault_or_the_store_are_refused_with_400() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Serve::start(dir.path(), &sim.url, true).await;
    let o = serve.offering().await;
    let long = "a".repeat(201);
    let unsafe_ids = [
        "a%2Fb",
        "a%2F..%2Fb",
        "a%20b",
        "%C3%A9t%C3%A9",
        "a%3Bb",
        "a%00b",
        "a%23b",
        "%7B%7Bname%7D%7D",
        "INSTANCE%23x",
        long.as_str(),
    ];
    let body = json!({"service_id": o.0, "plan_id": o.1,
                      "organization_guid": "org", "space_guid": "space"});
    for bad in unsafe_ids {
        let paths = [
            (
                Method::PUT,
                format!("/v2/service_instances/{bad}?accepts_incomplete=true"),
            ),
            (
                Method::GET,
                format!("/v2/service_instances/{bad}/last_operation"),
            ),
            (
                Method::PUT,
                format!("/v2/service_instances/ok-1/service_bindings/{bad}"),
            ),
            (
                Method::GET,
                format!("/v2/service_instances/ok-1/service_bindings/{bad}"),
            ),
        ];
        for (method, path) in paths {
            let (status, v) = serve.call(method.clone(), &path, Some(body.clone())).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path}: {v}");
            assert!(v["description"].is_string(), "{v}");
        }
    }
    // `.` and `..` over a raw socket: URL clients resolve dot segments before sending.
    let addr = serve.url.trim_start_matches("http://").to_owned();
    for bad in [".", "..", "%2E%2E"] {
        let request = format!(
            "GET /v2/service_instances/{bad}/last_operation HTTP/1.1\r\nHost: x\r\n\
             Authorization: Basic {}\r\nX-Broker-API-Version: 2.17\r\n\
             Connection: close\r\n\r\n",
            basic()
        );
        let answer = raw_request(&addr, &request);
        assert!(answer.starts_with("HTTP/1.1 400"), "{bad}: {answer}");
    }
    assert!(
        sim.deployment_ids("osb-").await.is_empty(),
        "nothing reached Cloudify"
    );
}

#[tokio::test]
async fn a_body_over_the_size_limit_is_refused_with_a_json_413() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Serve::start(dir.path(), &sim.url, true).await;
    let big = format!(
        r#"{{"service_id":"s","plan_id":"p","pad":"{}"}}"#,
        "x".repeat(1 << 21)
    );
    for path in [
        "/v2/service_instances/big-1?accepts_incomplete=true",
        "/v2/service_instances/big-1/service_bindings/b1",
    ] {
        // The broker answers 413 as soon as the limit is passed and closes the connection
        // without reading the rest (RFC 9110 §15.5.14 allows it); a client still sending can
        // then see the reset before the answer. Such attempts are retried: at least one must
        // read the JSON 413, and none may get any other answer.
        let mut answer = None;
        for _ in 0..10 {
            match serve
                .try_raw(
                    Method::PUT,
                    path,
                    Some((USER, PASSWORD)),
                    Some(big.clone().into_bytes()),
                )
                .await
            {
                Ok(a) => {
                    answer = Some(a);
                    break;
                }
                Err(e) => eprintln!("{path}: connection closed before the answer was read: {e}"),
            }
        }
        let (status, text) = answer.expect("one attempt reads the broker's answer");
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {text}");
        let v: Value = serde_json::from_str(&text).expect("JSON 413");
        assert_eq!(v["error"], "PayloadTooLarge");
    }
}

#[tokio::test]
async fn cloudify_answering_500s_gives_a_503_naming_it_and_a_retry_converges() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Serve::start(dir.path(), &sim.url, true).await;
    let o = serve.offering().await;
    let id = "fault-500";
    sim.faults(1000, 0, 0).await;
    let (status, body) = serve.provision(id, &o).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let description = body["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("Cloudify"),
        "names the dependency: {body}"
    );
    assert!(
        !description.contains("Internal Server Error"),
        "no upstream text: {body}"
    );
    assert_no_secret("503 body", &body.to_string());
    sim.faults(0, 0, 0).await;
    // A 5xx on provision makes the platform delete the instance (orphan mitigation, osb.md
    // §9) before it provisions again.
    serve.deprovision_until_gone(id, &o).await;
    let (status, body) = serve.provision(id, &o).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, last) = serve.settle(id).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert_eq!(sim.deployment_ids(&format!("osb-{id}")).await.len(), 1);
    serve.deprovision_until_gone(id, &o).await;
    assert!(
        sim.deployment_ids(&format!("osb-{id}")).await.is_empty(),
        "nothing orphaned"
    );
    assert_no_secret("serve log", &serve.log_text());
}

#[tokio::test]
async fn cloudify_refusing_connections_gives_a_503_and_the_retry_converges_once_it_is_back() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    // Catalog first, from the live simulator; then a broker whose Cloudify refuses connections.
    drop(Serve::start(dir.path(), &sim.url, true).await);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let serve = Serve::start(dir.path(), &dead, false).await;
    let o = serve.offering().await;
    let id = "fault-refused";
    let (status, body) = serve.provision(id, &o).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let description = body["description"].as_str().unwrap_or_default();
    assert!(description.contains("Cloudify"), "{body}");
    assert!(
        !description.to_lowercase().contains("refused"),
        "no upstream text: {body}"
    );
    // Orphan mitigation while Cloudify is still away: any JSON answer but a 500.
    let (status, body) = serve.deprovision(id, &o).await;
    assert!(
        matches!(status.as_u16(), 200 | 202 | 410 | 503),
        "{status} {body}"
    );
    assert_no_secret("serve log", &serve.log_text());
    drop(serve);
    // Cloudify is back: the same store, a broker that reaches it; the platform retries.
    let serve = Serve::start(dir.path(), &sim.url, false).await;
    serve.deprovision_until_gone(id, &o).await;
    let (status, body) = serve.provision(id, &o).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, last) = serve.settle(id).await;
    assert_eq!(last["state"], "succeeded", "{last}");
    assert_eq!(sim.deployment_ids(&format!("osb-{id}")).await.len(), 1);
    serve.deprovision_until_gone(id, &o).await;
    assert!(
        sim.deployment_ids("osb-").await.is_empty(),
        "nothing orphaned"
    );
    let store = std::fs::read(&serve.db).expect("store file");
    assert!(
        !store
            .windows(CLOUDIFY_PASSWORD.len())
            .any(|w| w == CLOUDIFY_PASSWORD.as_bytes()),
        "the Cloudify password is not in the store"
    );
}

fn basic() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
}

fn raw_request(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Issue 13, known bug: Cloudify carried out the deployment PUT but its answer was a 500.
/// The deployment exists, so the provision goes on (202) instead of being marked failed,
/// and ends with one deployment and one install.
#[tokio::test]
async fn a_500_after_cloudify_created_the_deployment_adopts_it_and_the_provision_succeeds() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    let serve = Serve::start(dir.path(), &sim.url, true).await;
    let o = serve.offering().await;
    let id = "lost-put-1";
    sim.lose_answer("PUT", &format!("/api/v3.1/deployments/osb-{id}"))
        .await;
    let (status, body) = serve.provision(id, &o).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{body}; log: {}",
        serve.log_text()
    );
    let (status, last) = serve.settle(id).await;
    assert_eq!(
        (status, last["state"].clone()),
        (StatusCode::OK, json!("succeeded")),
        "{last}"
    );
    assert_eq!(
        sim.deployment_ids(&format!("osb-{id}")).await,
        vec![format!("osb-{id}")]
    );
    let installs = sim
        .executions()
        .await
        .iter()
        .filter(|e| e["deployment_id"] == format!("osb-{id}") && e["workflow_id"] == "install")
        .count();
    assert_eq!(installs, 1, "one install workflow");
    assert!(
        serve
            .log_text()
            .contains("answer to the deployment PUT was lost"),
        "the adoption is logged"
    );
    serve.deprovision_until_gone(id, &o).await;
    assert!(sim.deployment_ids(&format!("osb-{id}")).await.is_empty());
}

/// A Cloudify answering only after a minute: the provision answers within the
/// `--cloudify-timeout` budget (here 2 s) plus slack, never hangs.
#[tokio::test]
async fn a_slow_cloudify_gets_a_503_within_the_cloudify_timeout() {
    let sim = start_sim();
    let dir = tempfile::tempdir().expect("temp dir");
    drop(Serve::start(dir.path(), &sim.url, true).await);
    let serve = Serve::start_with(dir.path(), &sim.url, &["--cloudify-timeout", "2s"]).await;
    let o = serve.offering().await;
    sim.faults(0, 0, 60_000).await;
    let t0 = Instant::now();
    let (status, body) = serve.provision("slow-1", &o).await;
    let took = t0.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["description"]
            .as_str()
            .unwrap_or_default()
            .contains("Cloudify")
    );
    assert!(took < Duration::from_secs(6), "answered in {took:?}");
    sim.faults(0, 0, 0).await;
    serve.deprovision_until_gone("slow-1", &o).await;
}
