//! Operations end to end (issue 12, docs/runbook.md): `cloudify-osb instance list|show|purge`
//! and `reconcile` against a private simulator; credential rotation; `/readyz` following the
//! simulator down and up; `serve` over HTTPS with a certificate made here by the `openssl`
//! CLI. Everything runs the built `cloudify-osb` binary.

// The lifecycle module includes the same helper privately.
#[allow(clippy::duplicate_mod)]
#[path = "../contract/cloudify/sim.rs"]
mod sim;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use sim::Sim;

const USER: &str = "platform";
const PASSWORD: &str = "platform-secret";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

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

fn unique(tag: &str) -> String {
    format!(
        "ops-{tag}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// A running `cloudify-osb serve`, killed on drop.
struct Serve {
    url: String,
    child: Child,
    log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    /// Starts `serve` with `args` (plus listen address and log format) and waits for
    /// `/healthz` through `client`.
    async fn start(dir: &Path, scheme: &str, args: &[&str], client: &reqwest::Client) -> Serve {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = dir.join(format!("serve-{port}.log"));
        let child = Command::new(broker_bin())
            .arg("serve")
            .args(["--listen", &listen, "--log-format", "json"])
            .args(args)
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start cloudify-osb serve");
        let serve = Serve {
            url: format!("{scheme}://{listen}"),
            child,
            log,
        };
        crate::world::wait_healthy(client, &serve.url, &serve.log).await;
        serve
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

async fn catalog_status(client: &reqwest::Client, url: &str, user: &str, pw: &str) -> StatusCode {
    client
        .get(format!("{url}/v2/catalog"))
        .basic_auth(user, Some(pw))
        .header("X-Broker-API-Version", "2.17")
        .send()
        .await
        .expect("broker answers")
        .status()
}

fn cloudify_args(sim_url: &str) -> Vec<String> {
    [
        "--cloudify-url",
        sim_url,
        "--cloudify-username",
        "admin",
        "--cloudify-password",
        "admin",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs `cloudify-osb ARGS` (no Vault), feeding `stdin`.
fn cli(args: &[String], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(broker_bin())
        .args(args)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cloudify-osb");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().expect("cloudify-osb output")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn args(base: &[&str], rest: &[String]) -> Vec<String> {
    base.iter()
        .map(|s| (*s).to_owned())
        .chain(rest.iter().cloned())
        .collect()
}

struct Platform<'a> {
    http: &'a reqwest::Client,
    url: &'a str,
}

impl Platform<'_> {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .basic_auth(USER, Some(PASSWORD))
            .header("X-Broker-API-Version", "2.17");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("broker answers");
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn provision(&self, id: &str, service: &Value) -> Value {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v2/service_instances/{id}?accepts_incomplete=true"),
                Some(json!({
                    "service_id": service["id"],
                    "plan_id": service["plans"][0]["id"],
                    "organization_guid": "org-ops",
                    "space_guid": "space-ops",
                    "context": {
                        "platform": "kubernetes",
                        "namespace": "team-\"ops\"",
                        "clusterid": "cluster-7",
                    },
                    "parameters": {},
                })),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "provision {id}: {body}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, last) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v2/service_instances/{id}/last_operation"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{last}");
            if last["state"] != "in progress" {
                assert_eq!(last["state"], "succeeded", "{last}");
                return body;
            }
            assert!(Instant::now() < deadline, "{id} still provisioning");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn instance_list_show_purge_and_reconcile_find_and_repair_drift_in_cloudify() {
    let fixtures = repo().join("sim/fixtures");
    let sim = Sim::start_with("7.0", 0.2, &["--fixtures", fixtures.to_str().unwrap()]);
    let mariadb = std::fs::read_to_string(repo().join("examples/mariadb/fixtures/mariadb.json"))
        .expect("the MariaDB example fixture");
    sim.add_blueprint(serde_json::from_str(&mariadb).unwrap())
        .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = format!("sqlite:{}", dir.path().join("ops.db").display());
    let mut common = vec!["--store".to_owned(), store.clone()];
    common.extend(cloudify_args(&sim.url));
    let sync = cli(&args(&["sync"], &common), "");
    assert!(sync.status.success(), "{sync:?}");

    let http = client();
    let mut serve_args: Vec<String> = common.clone();
    serve_args.extend(
        [
            "--username",
            USER,
            "--password",
            PASSWORD,
            "--cloudify-ui-url",
            "https://ui.example/",
        ]
        .map(str::to_owned),
    );
    let serve_refs: Vec<&str> = serve_args.iter().map(String::as_str).collect();
    let serve = Serve::start(dir.path(), "http", &serve_refs, &http).await;
    let platform = Platform {
        http: &http,
        url: &serve.url,
    };
    let (_, catalog) = platform
        .call(reqwest::Method::GET, "/v2/catalog", None)
        .await;
    let service = catalog["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "mariadb"))
        .cloned()
        .unwrap_or_else(|| panic!("no mariadb service in {catalog}"));

    let kept = unique("kept");
    let gone = unique("gone");
    let stuck = unique("stuck");
    let answer = platform.provision(&kept, &service).await;
    assert_eq!(
        answer["dashboard_url"],
        format!("https://ui.example/console/page/deployment?id=osb-{kept}"),
        "the provision 202 answer carries dashboard_url"
    );
    platform.provision(&gone, &service).await;
    platform.provision(&stuck, &service).await;

    // Labels on the deployment: instance, platform, namespace (sanitised), cluster.
    let deployment = sim
        .deployments()
        .await
        .into_iter()
        .find(|d| d["id"] == format!("osb-{kept}"))
        .expect("the kept deployment");
    let labels = deployment["labels"].to_string();
    for want in [
        "osb-instance",
        &kept,
        "osb-namespace",
        "team-ops",
        "osb-cluster-id",
        "cluster-7",
    ] {
        assert!(labels.contains(want), "label {want} in {labels}");
    }

    // list and show.
    let list = json_of(&cli(&args(&["instance", "list", "--json"], &common), ""));
    let ids: Vec<&str> = list["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["instance_id"].as_str())
        .collect();
    for id in [&kept, &gone, &stuck] {
        assert!(ids.contains(&id.as_str()), "{id} listed in {list}");
    }
    let text = cli(&args(&["instance", "list"], &common), "");
    assert!(String::from_utf8_lossy(&text.stdout).contains(&kept));
    let show = json_of(&cli(
        &args(&["instance", "show", &kept, "--json"], &common),
        "",
    ));
    assert_eq!(show["instance"]["state"], "provisioned", "{show}");
    assert_eq!(show["deployment"]["exists"], true, "{show}");
    let workflows: Vec<&str> = show["deployment"]["executions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["workflow_id"].as_str())
        .collect();
    assert!(workflows.contains(&"install"), "executions {workflows:?}");

    // A deployment deleted behind the broker's back, and one the broker never knew.
    let orphan = format!("osb-{}", unique("orphan"));
    let cfy = reqwest::Client::new();
    let api = format!("{}/api/v3.1", sim.url.trim_end_matches('/'));
    let r = cfy
        .delete(format!("{api}/deployments/osb-{gone}?force=true"))
        .basic_auth("admin", Some("admin"))
        .header("Tenant", "default_tenant")
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "delete behind the back: {}",
        r.status()
    );
    let r = cfy
        .put(format!("{api}/deployments/{orphan}"))
        .basic_auth("admin", Some("admin"))
        .header("Tenant", "default_tenant")
        .json(&json!({"blueprint_id": deployment["blueprint_id"], "inputs": {}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "orphan deployment: {}", r.status());
    tokio::time::sleep(Duration::from_millis(500)).await;

    let report = cli(&args(&["reconcile", "--json"], &common), "");
    assert!(!report.status.success(), "drift exits non-zero");
    let drift = json_of(&report);
    assert_eq!(drift["orphan_deployments"], json!([orphan]), "{drift}");
    assert_eq!(
        drift["instances_without_deployment"],
        json!([gone]),
        "{drift}"
    );
    assert!(drift["unchecked"].to_string().contains("Vault"), "{drift}");

    let fixed = cli(
        &args(
            &["reconcile", "--fix", "--min-age", "0s", "--json"],
            &common,
        ),
        "",
    );
    let fixed_json = json_of(&fixed);
    assert!(fixed.status.success(), "{fixed_json}");
    assert_eq!(
        fixed_json["fixed"].as_array().map(Vec::len),
        Some(2),
        "{fixed_json}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let after = cli(&args(&["reconcile"], &common), "");
        if after.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "drift left after --fix: {}",
            String::from_utf8_lossy(&after.stdout)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !cli(&args(&["instance", "show", &gone], &common), "")
            .status
            .success()
    );

    // purge: refused without confirmation, then done with --yes --delete-deployment.
    let refused = cli(&args(&["instance", "purge", &stuck], &common), "n\n");
    assert!(!refused.status.success());
    assert!(
        cli(&args(&["instance", "show", &stuck], &common), "")
            .status
            .success()
    );
    let purged = cli(
        &args(
            &[
                "instance",
                "purge",
                &stuck,
                "--yes",
                "--delete-deployment",
                "--json",
            ],
            &common,
        ),
        "",
    );
    let purged_json = json_of(&purged);
    assert!(purged.status.success(), "{purged_json}");
    assert_eq!(purged_json["deployment_deleted"], true);
    let (status, _) = platform
        .call(
            reqwest::Method::GET,
            &format!("/v2/service_instances/{stuck}"),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "purged instance is forgotten"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sim.deployment_ids(&format!("osb-{stuck}")).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "purged deployment still in Cloudify"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sim.deployment_ids(&format!("osb-{kept}")).await.len(), 1);
    drop(serve);
}

#[tokio::test]
async fn during_rotation_both_pairs_work_and_after_it_only_the_new_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let http = client();
    let during = Serve::start(
        dir.path(),
        "http",
        &[
            "--store",
            "memory:",
            "--username",
            "old-user",
            "--password",
            "old-secret",
            "--username-next",
            "new-user",
            "--password-next",
            "new-secret",
        ],
        &http,
    )
    .await;
    assert_eq!(
        catalog_status(&http, &during.url, "old-user", "old-secret").await,
        StatusCode::OK
    );
    assert_eq!(
        catalog_status(&http, &during.url, "new-user", "new-secret").await,
        StatusCode::OK
    );
    assert_eq!(
        catalog_status(&http, &during.url, "old-user", "new-secret").await,
        StatusCode::UNAUTHORIZED,
        "pairs do not mix"
    );
    drop(during);
    let after = Serve::start(
        dir.path(),
        "http",
        &[
            "--store",
            "memory:",
            "--username",
            "new-user",
            "--password",
            "new-secret",
        ],
        &http,
    )
    .await;
    assert_eq!(
        catalog_status(&http, &after.url, "new-user", "new-secret").await,
        StatusCode::OK
    );
    assert_eq!(
        catalog_status(&http, &after.url, "old-user", "old-secret").await,
        StatusCode::UNAUTHORIZED
    );
}

fn spawn_sim(port: u16) -> Child {
    Command::new(sim::sim_bin())
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--manager-version",
            "7.0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cloudify-sim")
}

async fn readyz(http: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let r = http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .expect("readyz answers");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn wait_readyz(http: &reqwest::Client, url: &str, want: StatusCode) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = readyz(http, url).await;
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_turns_unready_while_the_simulator_is_stopped_and_ready_when_it_is_back() {
    let port = free_port();
    let mut sim = spawn_sim(port);
    let sim_url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("temp dir");
    let http = client();
    let mut a = vec!["--store".to_owned(), "memory:".to_owned()];
    a.extend(cloudify_args(&sim_url));
    a.extend(["--username", USER, "--password", PASSWORD].map(str::to_owned));
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    let serve = Serve::start(dir.path(), "http", &refs, &http).await;

    let ready = wait_readyz(&http, &serve.url, StatusCode::OK).await;
    assert_eq!(ready["checks"]["cloudify"], "ok", "{ready}");
    assert_eq!(ready["checks"]["store"], "ok", "{ready}");

    let _ = sim.kill();
    let _ = sim.wait();
    let down = wait_readyz(&http, &serve.url, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(down["ready"], false, "{down}");
    assert_eq!(down["checks"]["cloudify"], "unavailable", "{down}");
    assert_eq!(down["checks"]["store"], "ok", "{down}");
    let healthz = http
        .get(format!("{}/healthz", serve.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        healthz.status(),
        StatusCode::OK,
        "liveness does not follow Cloudify"
    );

    let mut sim = spawn_sim(port);
    let back = wait_readyz(&http, &serve.url, StatusCode::OK).await;
    assert_eq!(
        back["checks"]["cloudify"],
        "ok",
        "{back}; log: {}",
        serve.log()
    );
    let _ = sim.kill();
    let _ = sim.wait();
}

#[tokio::test]
async fn serve_answers_over_https_with_a_self_signed_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            // webpki refuses a CA certificate as a server's own.
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl CLI is installed");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pem = std::fs::read(&cert).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let serve = Serve::start(
        dir.path(),
        "https",
        &[
            "--store",
            "memory:",
            "--username",
            USER,
            "--password",
            PASSWORD,
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &https,
    )
    .await;
    assert_eq!(
        catalog_status(&https, &serve.url, USER, PASSWORD).await,
        StatusCode::OK
    );
    let (status, body) = readyz(&https, &serve.url).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let plain = client()
        .get(serve.url.replace("https://", "http://") + "/healthz")
        .send()
        .await;
    assert!(
        plain.map(|r| !r.status().is_success()).unwrap_or(true),
        "plain HTTP is not served on the TLS port"
    );
}
