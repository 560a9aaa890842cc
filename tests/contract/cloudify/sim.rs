//! Starting and steering `cloudify-sim` from tests: a private simulator per test (from
//! `$CLOUDIFY_SIM_BIN`, on a free loopback port, killed on drop) or the shared one
//! (`$CLOUDIFY_SIM_URL`), and its `/_sim/` control and inspection routes. Also used by the
//! e2e suite (`#[path]`-included), so it depends only on std, reqwest, serde_json and tokio.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// A running simulator: its base URL, and the process when this test started it.
pub struct Sim {
    pub url: String,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `$CLOUDIFY_SIM_BIN`, or a failing test that says how to get it.
pub fn sim_bin() -> String {
    std::env::var("CLOUDIFY_SIM_BIN").unwrap_or_else(|_| {
        panic!(
            "CLOUDIFY_SIM_BIN is not set: run the suite through tests/run (it starts \
             tests/services/cloudify-sim.sh), or build the workspace and export \
             CLOUDIFY_SIM_BIN=$CARGO_TARGET_DIR/debug/cloudify-sim"
        )
    })
}

/// `$CLOUDIFY_SIM_URL` (the shared 7.0 simulator), or a failing test that says how to get it.
pub fn shared_sim_url() -> String {
    std::env::var("CLOUDIFY_SIM_URL").unwrap_or_else(|_| {
        panic!(
            "CLOUDIFY_SIM_URL is not set: run the suite through tests/run, or start \
             tests/services/cloudify-sim.sh and source $TEST_STATE/cloudify-sim.env"
        )
    })
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("a reqwest client")
}

impl Sim {
    /// Starts a private simulator of `version` whose executions take `execution_seconds`.
    pub fn start(version: &str, execution_seconds: f64) -> Sim {
        Self::start_with(version, execution_seconds, &[])
    }

    /// As [`Sim::start`], with extra command-line arguments.
    pub fn start_with(version: &str, execution_seconds: f64, extra: &[&str]) -> Sim {
        let bin = sim_bin();
        let mut child = Command::new(&bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--manager-version",
                version,
                "--execution-seconds",
                &execution_seconds.to_string(),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("cloudify-sim listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                    break;
                }
            }
            // Keep draining so the simulator never blocks on a full pipe.
            for _ in lines {}
        });
        match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(url) => Sim {
                url,
                child: Some(child),
                http: client(),
            },
            Err(_) => {
                let _ = child.kill();
                panic!("{bin} --manager-version {version} did not print its address within 15 s");
            }
        }
    }

    /// The shared simulator of `tests/run` (7.0, admin/admin); never reset or faulted.
    pub fn shared() -> Sim {
        Sim {
            url: shared_sim_url(),
            child: None,
            http: client(),
        }
    }

    async fn ctl(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/_sim/{path}", self.url);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        assert!(status.is_success(), "{method} {url}: {status} {text}");
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        }
    }

    /// Adds a blueprint fixture at runtime (`POST /_sim/blueprints`).
    pub async fn add_blueprint(&self, fixture: Value) {
        self.ctl(reqwest::Method::POST, "blueprints", Some(fixture))
            .await;
    }

    /// Removes a blueprint (`DELETE /_sim/blueprints/{id}`).
    pub async fn delete_blueprint(&self, id: &str) {
        self.ctl(reqwest::Method::DELETE, &format!("blueprints/{id}"), None)
            .await;
    }

    /// Fails the next execution of `workflow` on `deployment` with `message`.
    pub async fn fail_next(&self, workflow: &str, deployment: &str, message: &str) {
        self.ctl(
            reqwest::Method::POST,
            "fail-next",
            Some(json!({"workflow_id": workflow, "deployment_id": deployment, "message": message})),
        )
        .await;
    }

    /// Sets HTTP faults: the next `http_500` API requests answer 500, the next
    /// `drop_connections` are closed without an answer, every request waits `latency_ms`.
    pub async fn faults(&self, http_500: u64, drop_connections: u64, latency_ms: u64) {
        self.ctl(
            reqwest::Method::POST,
            "faults",
            Some(json!({
                "http_500": http_500,
                "drop_connections": drop_connections,
                "latency_ms": latency_ms
            })),
        )
        .await;
    }

    /// The next API request matching `method` and `path_prefix` is carried out, then answered
    /// 500 (`POST /_sim/lose-answer`): the manager acted, the answer was lost.
    pub async fn lose_answer(&self, method: &str, path_prefix: &str) {
        self.ctl(
            reqwest::Method::POST,
            "lose-answer",
            Some(json!({"method": method, "path_prefix": path_prefix})),
        )
        .await;
    }

    /// The simulator's deployments (inspection route), with `_installed` etc.
    pub async fn deployments(&self) -> Vec<Value> {
        match self.ctl(reqwest::Method::GET, "deployments", None).await {
            Value::Array(v) => v,
            other => panic!("GET /_sim/deployments: {other}"),
        }
    }

    /// IDs of the simulator's deployments that start with `prefix`.
    pub async fn deployment_ids(&self, prefix: &str) -> Vec<String> {
        self.deployments()
            .await
            .iter()
            .filter_map(|d| d["id"].as_str())
            .filter(|id| id.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    /// The simulator's executions (inspection route).
    pub async fn executions(&self) -> Vec<Value> {
        match self.ctl(reqwest::Method::GET, "executions", None).await {
            Value::Array(v) => v,
            other => panic!("GET /_sim/executions: {other}"),
        }
    }
}
