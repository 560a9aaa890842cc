//! Catalog sync at scale (BENCHMARKS.md, "Catalog sync"): N generated blueprints on a private
//! `cloudify-sim`, synced twice into a fresh store through the real Cloudify adapter; prints
//! time, store writes and entries written for the first and the repeated run, and the size
//! of the served catalog document. Not part of `tests/run`.
//!
//! ```text
//! cargo build --release -p cloudify-sim
//! CLOUDIFY_SIM_BIN=$CARGO_TARGET_DIR/release/cloudify-sim BENCH_BLUEPRINTS=10000 \
//!   cargo bench --bench catalog_sync            # BENCH_STORE=sqlite (default) or dynamodb
//! ```
//!
//! With `BENCH_STORE=dynamodb` (moto at `AWS_ENDPOINT_URL_DYNAMODB`) the store talks to moto
//! through `bench/timing_proxy.py`, which counts the DynamoDB requests per operation and the
//! time they spent in moto; the Cloudify listing is timed once on its own. The broker's share
//! of a sync is then its time minus the listing and minus moto's time.

#[path = "../tests/support/counting_store.rs"]
mod counting_store;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};

use cloudify_osb::adapters::cloudify::{CloudifyConfig, CloudifyCredentials, CloudifyOrchestrator};
use cloudify_osb::adapters::sqlite::SqliteStore;
use cloudify_osb::domain::ids::DEFAULT_ID_NAMESPACE;
use cloudify_osb::domain::mapping::Selection;
use cloudify_osb::domain::ports::{Orchestrator, Store};
use cloudify_osb::domain::snapshot::CatalogCache;
use cloudify_osb::domain::sync::{SyncOptions, sync_catalog_with};

use counting_store::Counting;

/// `bench/timing_proxy.py` in front of moto: DynamoDB requests per operation and the time
/// they spent in moto.
struct Proxy {
    url: String,
    child: std::process::Child,
}

impl Proxy {
    fn start(upstream: &str) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/timing_proxy.py");
        let mut child = Command::new("python3")
            .args([script, upstream])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the timing proxy");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = lines
            .next()
            .expect("proxy prints its address")
            .expect("utf-8");
        let url = line
            .strip_prefix("listening on ")
            .expect("proxy address")
            .to_owned();
        Self { url, child }
    }

    /// Requests per operation and seconds in moto since the last call: (total requests,
    /// total seconds, "Op ×n" list).
    async fn take(&self) -> (u64, f64, String) {
        let counts: serde_json::Map<String, Value> = reqwest::get(format!("{}/_counts", self.url))
            .await
            .expect("proxy answers")
            .json()
            .await
            .expect("counts");
        let (mut n, mut secs, mut ops) = (0, 0.0, Vec::new());
        for (op, v) in &counts {
            let c = v[0].as_u64().unwrap_or_default();
            n += c;
            secs += v[1].as_f64().unwrap_or_default();
            ops.push(format!("{op} ×{c}"));
        }
        (n, secs, ops.join(", "))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts write calls and catalog entries written.
/// The same blueprint shape as `tests/e2e/catalog.rs`: five inputs (one hidden), a range, an
/// enum, a pattern; every 10th declares two plans in `metadata.osb`.
fn fixture(i: usize) -> Value {
    let mut metadata = json!({"owner": "bench"});
    if i % 10 == 0 {
        metadata["osb"] = json!({"tags": ["bench"], "plans": [
            {"name": "small", "inputs": {"size": "small"}},
            {"name": "large", "inputs": {"size": "large"}, "free": false}]});
    }
    json!({
        "id": format!("bench-bp-{i:05}"),
        "description": format!("Generated blueprint number {i}"),
        "labels": [{"key": "tier", "value": "bench"}],
        "plan": {
            "inputs": {
                "host": {"type": "string", "description": "Server host", "default": "127.0.0.1"},
                "port": {"type": "integer", "default": 3306, "constraints": [{"in_range": [1, 65535]}]},
                "size": {"type": "string", "default": "small", "constraints": [{"valid_values": ["small", "large"]}]},
                "db_name": {"type": "string", "default": "app", "constraints": [{"pattern": "^[a-z_]+$"}]},
                "admin_password": {"type": "string", "hidden": true, "default": {"get_secret": "pw"}}
            },
            "metadata": metadata
        }
    })
}

async fn open_store(kind: &str, proxy: Option<&Proxy>) -> Arc<dyn Store> {
    #[cfg(not(feature = "aws"))]
    let _ = proxy;
    match kind {
        "sqlite" => {
            let dir = std::env::temp_dir().join(format!("catalog-bench-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("bench dir");
            let path = dir.join("bench.db");
            let _ = std::fs::remove_file(&path);
            Arc::new(SqliteStore::open(&path).expect("SQLite store"))
        }
        #[cfg(feature = "aws")]
        "dynamodb" => {
            let url = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
                .expect("AWS_ENDPOINT_URL_DYNAMODB (moto) for BENCH_STORE=dynamodb");
            assert!(url.starts_with("http://127.0.0.1:"), "loopback moto only");
            let endpoint = proxy.map_or(url, |p| p.url.clone());
            let config = aws_config::from_env().endpoint_url(endpoint).load().await;
            let table = format!("catalog-bench-{}", uuid::Uuid::new_v4().simple());
            let s = cloudify_osb::adapters::dynamodb::DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&config),
                table,
            );
            s.create_table().await.expect("table");
            Arc::new(s)
        }
        other => panic!("BENCH_STORE={other}: use sqlite or dynamodb"),
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_BLUEPRINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let kind = std::env::var("BENCH_STORE").unwrap_or_else(|_| "sqlite".into());
    let bin = std::env::var("CLOUDIFY_SIM_BIN").expect("CLOUDIFY_SIM_BIN");
    let dir = tempfile::tempdir().expect("temp dir");
    for i in 0..n {
        std::fs::write(
            dir.path().join(format!("bp-{i:05}.json")),
            fixture(i).to_string(),
        )
        .expect("fixture");
    }
    let mut child = Command::new(&bin)
        .args(["--listen", "127.0.0.1:0", "--fixtures"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cloudify-sim starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("sim prints its address")
            .expect("utf-8");
        if let Some(u) = line.strip_prefix("cloudify-sim listening on ") {
            break u.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});

    let mut config = CloudifyConfig::new(url);
    config.credentials = CloudifyCredentials::Basic {
        username: "admin".into(),
        password: SecretString::from("admin"),
    };
    config.request_timeout = Duration::from_secs(120);
    let page = config.page_size;
    let orchestrator = CloudifyOrchestrator::new(config).expect("adapter");
    let proxy = (kind == "dynamodb").then(|| {
        Proxy::start(
            &std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
                .expect("AWS_ENDPOINT_URL_DYNAMODB (moto) for BENCH_STORE=dynamodb"),
        )
    });
    let counting = Counting::new(open_store(&kind, proxy.as_ref()).await);
    let options = SyncOptions {
        namespace: DEFAULT_ID_NAMESPACE,
        tenant: "default_tenant".into(),
        selection: Selection::All,
    };
    // Cloudify's part alone: listing every blueprint page through the adapter (the simulator
    // is another process; this is the same listing each sync starts with).
    let started = Instant::now();
    let listed = orchestrator.blueprints().await.expect("listing").len();
    let listing = started.elapsed();
    println!("listing {listed} blueprints from the simulator alone: {listing:.2?}");
    if let Some(p) = &proxy {
        p.take().await;
    }
    println!(
        "| store | blueprints | run | time | store write calls | entries written | DynamoDB requests | in moto | rest (time − listing − moto) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for run in ["first", "repeated"] {
        let started = Instant::now();
        let report = sync_catalog_with(&orchestrator, counting.as_ref(), &options)
            .await
            .expect("sync");
        let took = started.elapsed();
        let (writes, entries) = counting.take();
        assert_eq!(report.blueprints, n);
        let (requests, moto, rest) = match &proxy {
            Some(p) => {
                let (count, secs, ops) = p.take().await;
                let rest = took.as_secs_f64() - listing.as_secs_f64() - secs;
                (
                    format!("{count} ({ops})"),
                    format!("{secs:.2} s"),
                    format!("{rest:.2} s"),
                )
            }
            None => {
                let rest = took.as_secs_f64() - listing.as_secs_f64();
                ("".into(), "".into(), format!("{rest:.2} s"))
            }
        };
        println!(
            "| {kind} | {n} | {run} | {took:.2?} | {writes} | {entries} | {requests} | {moto} | {rest} |"
        );
    }
    let started = Instant::now();
    let snapshot = CatalogCache::new()
        .current(counting.as_ref())
        .await
        .expect("catalog");
    let size = snapshot.document().body.len();
    let lambda = cloudify_osb::http::catalog::lambda_body_size(&snapshot.document().body);
    println!(
        "catalog document: {} services, {size} bytes ({:.0} bytes per service; {lambda} bytes as a Lambda response body, {:.0} per service), read and serialised in {:.2?}; blueprint pages of {page}",
        snapshot.catalog.active_services().len(),
        size as f64 / n as f64,
        lambda as f64 / n as f64,
        started.elapsed()
    );
    let _ = child.kill();
    let _ = child.wait();
}
