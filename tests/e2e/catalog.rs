//! The catalog at scale, end to end: 1,000 generated fixture blueprints on a private
//! `cloudify-sim` (`$CLOUDIFY_SIM_BIN --fixtures DIR`), the real Cloudify adapter, the real
//! store (SQLite in a temp dir; DynamoDB on moto with its own table), the catalog sync and
//! the OSB router in process. Store calls are counted by a wrapper, so "a re-sync with
//! nothing changed writes nothing" and "the catalog GET reads the catalog only when its
//! version moved" are measured, not assumed.

#[path = "../support/counting_store.rs"]
mod counting_store;
// The lifecycle module includes the same helper privately.
#[allow(clippy::duplicate_mod)]
#[path = "../contract/cloudify/sim.rs"]
mod sim;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use tower::ServiceExt;

use cloudify_osb::adapters::cloudify::{CloudifyConfig, CloudifyCredentials, CloudifyOrchestrator};
use cloudify_osb::adapters::sqlite::SqliteStore;
use cloudify_osb::domain::broker::{Broker, BrokerSettings};
use cloudify_osb::domain::ids::{DEFAULT_ID_NAMESPACE, service_id_for};
use cloudify_osb::domain::mapping::Selection;
use cloudify_osb::domain::ports::{BinderRegistry, Orchestrator, Store};
use cloudify_osb::domain::sync::{SyncOptions, SyncReport, sync_catalog_with};
use cloudify_osb::http::{ApiState, BasicAuth, Route, router};

use counting_store::Counting;
use sim::Sim;

const USER: &str = "platform";
const PASSWORD: &str = "catalog-e2e-pw";
const TENANT: &str = "default_tenant";
const BLUEPRINTS: usize = 1000;

// ------------------------------------------------------------------ fixtures

/// Blueprint `i` of the generated set: every input has a default (so `{}` provisions), one
/// integer input with a range, every 10th blueprint declares two plans in `metadata.osb`,
/// every 7th opts in by label.
pub fn fixture(prefix: &str, i: usize) -> Value {
    let id = format!("{prefix}-bp-{i:05}");
    let mut metadata = json!({"owner": "catalog e2e"});
    if i % 10 == 0 {
        metadata["osb"] = json!({
            "displayName": format!("Generated {i}"),
            "tags": ["generated", "planned"],
            "plans": [
                {"name": "small", "description": "One small node", "inputs": {"size": "small"}},
                {"name": "large", "description": "One large node", "inputs": {"size": "large"}, "free": false}
            ]
        });
    }
    let mut labels = vec![json!({"key": "tier", "value": "generated"})];
    if i % 7 == 0 {
        labels.push(json!({"key": "osb", "value": "true"}));
    }
    json!({
        "id": id,
        "description": if i % 3 == 0 { String::new() } else { format!("Generated blueprint number {i}") },
        "labels": labels,
        "plan": {
            "inputs": {
                "host": {"type": "string", "description": "Server host", "default": "127.0.0.1"},
                "port": {"type": "integer", "description": "Server port", "default": 3306,
                         "constraints": [{"in_range": [1, 65535]}]},
                "size": {"type": "string", "default": "small",
                         "constraints": [{"valid_values": ["small", "large"]}]},
                "db_name": {"type": "string", "default": "app",
                            "constraints": [{"min_length": 1}, {"max_length": 64}, {"pattern": "^[a-z_]+$"}]},
                "admin_password": {"type": "string", "hidden": true, "default": {"get_secret": "pw"}}
            },
            "outputs": {"endpoint": {"value": {"concat": [{"get_input": "host"}, ":", {"get_input": "port"}]}}},
            "metadata": metadata
        }
    })
}

/// Writes `n` fixture files into `dir`.
pub fn write_fixtures(dir: &Path, prefix: &str, n: usize) {
    for i in 0..n {
        let path = dir.join(format!("{prefix}-{i:05}.json"));
        std::fs::write(&path, fixture(prefix, i).to_string()).expect("fixture written");
    }
}

fn orchestrator(sim: &Sim) -> Arc<dyn Orchestrator> {
    let mut c = CloudifyConfig::new(sim.url.clone());
    c.credentials = CloudifyCredentials::Basic {
        username: "admin".into(),
        password: SecretString::from("admin"),
    };
    Arc::new(CloudifyOrchestrator::new(c).expect("the Cloudify adapter builds"))
}

fn options(selection: Selection) -> SyncOptions {
    SyncOptions {
        namespace: DEFAULT_ID_NAMESPACE,
        tenant: TENANT.into(),
        selection,
    }
}

// ------------------------------------------------------------------ OSB over the router

struct Osb {
    app: Router,
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    bytes: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
}

impl Osb {
    fn new(store: Arc<dyn Store>, orchestrator: Arc<dyn Orchestrator>) -> Self {
        let broker = Broker::new(
            store,
            Some(orchestrator),
            BinderRegistry::new(),
            BrokerSettings::default(),
        );
        let auth = BasicAuth::new(USER, &SecretString::from(PASSWORD));
        Self {
            app: router(ApiState::new(Arc::new(broker), auth), &Route::ALL),
        }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Basic {token}"))
            .header("X-Broker-API-Version", "2.17");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("a request");
        let response = self
            .app
            .clone()
            .oneshot(req)
            .await
            .expect("the router answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes()
            .to_vec();
        Answer {
            status,
            headers,
            bytes,
        }
    }

    /// Polls last_operation until it leaves `in progress` (or the instance is gone: 410).
    async fn settle(&self, instance: &str) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let a = self
                .call(
                    Method::GET,
                    &format!("/v2/service_instances/{instance}/last_operation"),
                    None,
                    &[],
                )
                .await;
            if a.status != StatusCode::OK || a.json()["state"] != "in progress" {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "{instance} still in progress after 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

// ------------------------------------------------------------------ the scenario

async fn sync(o: &dyn Orchestrator, s: &dyn Store) -> (SyncReport, Duration) {
    let started = Instant::now();
    let r = sync_catalog_with(o, s, &options(Selection::All))
        .await
        .expect("the sync succeeds");
    (r, started.elapsed())
}

/// First sync, zero-write re-sync, the catalog GET (size, ETag, 304, reads), a blueprint
/// deleted under a running instance (hidden, refused for new instances, its instance still
/// deprovisioned), on `store`.
async fn catalog_scenario(store: Arc<dyn Store>, label: &str, n: usize) {
    let prefix = format!("cat{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let dir = tempfile::tempdir().expect("temp dir");
    write_fixtures(dir.path(), &prefix, n);
    let sim = Sim::start_with(
        "7.0",
        0.2,
        &["--fixtures", dir.path().to_str().expect("utf-8 temp path")],
    );
    let cloudify = orchestrator(&sim);
    let counting = Counting::new(store);

    let (first, t1) = sync(cloudify.as_ref(), counting.as_ref()).await;
    eprintln!("{label}: first sync of {n} blueprints: {first} in {t1:?}");
    assert_eq!((first.blueprints, first.added), (n, n));
    assert_eq!(counting.entries_written.load(Ordering::SeqCst), n);
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);

    let before = counting.writes();
    let (again, t2) = sync(cloudify.as_ref(), counting.as_ref()).await;
    eprintln!("{label}: repeated sync: {again} in {t2:?}");
    assert_eq!(
        counting.writes(),
        before,
        "a re-sync with nothing changed writes nothing"
    );
    assert_eq!((again.unchanged, again.written), (n, 0));
    assert_eq!(again.catalog_version, first.catalog_version);

    // The catalog GET: the whole catalog is read once, then only the version.
    let osb = Osb::new(counting.clone(), cloudify.clone());
    let reads = counting.catalog_reads.load(Ordering::SeqCst);
    let got = osb.call(Method::GET, "/v2/catalog", None, &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    let services = got.json()["services"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(services.len(), n);
    eprintln!(
        "{label}: GET /v2/catalog with {n} services: {} bytes",
        got.bytes.len()
    );
    assert!(
        got.bytes.len() < 6 * 1024 * 1024 / 2,
        "well under API Gateway's 6 MB"
    );
    let etag = got.headers[header::ETAG]
        .to_str()
        .expect("ascii ETag")
        .to_owned();
    let cached = osb
        .call(
            Method::GET,
            "/v2/catalog",
            None,
            &[("If-None-Match", &etag)],
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.bytes.is_empty());
    assert_eq!(counting.catalog_reads.load(Ordering::SeqCst), reads + 1);

    // Names are unique DNS labels; planned blueprints have two plans with presets left out.
    let names: std::collections::BTreeSet<&str> =
        services.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names.len(), n);
    let planned = format!("{prefix}-bp-00010");
    let planned = services
        .iter()
        .find(|s| s["name"] == planned)
        .expect("the planned blueprint is offered");
    assert_eq!(planned["plans"].as_array().map(Vec::len), Some(2));
    let schema = &planned["plans"][0]["schemas"]["service_instance"]["create"]["parameters"];
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-04/schema#");
    assert!(
        schema["properties"].get("size").is_none(),
        "preset input left out"
    );
    assert!(
        schema["properties"].get("admin_password").is_none(),
        "hidden input left out"
    );

    // An instance of blueprint 7, whose blueprint is then deleted.
    let blueprint = format!("{prefix}-bp-00007");
    let service = services
        .iter()
        .find(|s| s["name"] == blueprint)
        .expect("blueprint 7 is offered")
        .clone();
    let (service_id, plan_id) = (
        service["id"].as_str().unwrap_or_default().to_owned(),
        service["plans"][0]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let instance = format!("{prefix}-i1");
    let body = json!({"service_id": service_id, "plan_id": plan_id,
        "organization_guid": "org", "space_guid": "space", "parameters": {"port": 3307}});
    let put = osb
        .call(
            Method::PUT,
            &format!("/v2/service_instances/{instance}?accepts_incomplete=true"),
            Some(body.clone()),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::ACCEPTED, "{}", put.json());
    assert_eq!(osb.settle(&instance).await.json()["state"], "succeeded");

    sim.delete_blueprint(&blueprint).await;
    let (gone, _) = sync(cloudify.as_ref(), counting.as_ref()).await;
    assert_eq!((gone.deactivated, gone.written), (1, 1));
    let listed = osb.call(Method::GET, "/v2/catalog", None, &[]).await;
    assert_ne!(
        listed.headers[header::ETAG].to_str().ok(),
        Some(etag.as_str())
    );
    let listed = listed.json();
    let still: Vec<&Value> = listed["services"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|s| s["id"] == service_id.as_str())
                .collect()
        })
        .unwrap_or_default();
    assert!(still.is_empty(), "the deleted blueprint is hidden");
    let refused = osb
        .call(
            Method::PUT,
            &format!("/v2/service_instances/{prefix}-i2?accepts_incomplete=true"),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "no new instance of an inactive service"
    );
    let fetched = osb
        .call(
            Method::GET,
            &format!("/v2/service_instances/{instance}"),
            None,
            &[],
        )
        .await;
    assert_eq!(fetched.status, StatusCode::OK, "{}", fetched.json());
    let delete = osb
        .call(
            Method::DELETE,
            &format!(
                "/v2/service_instances/{instance}?accepts_incomplete=true&service_id={service_id}&plan_id={plan_id}"
            ),
            None,
            &[],
        )
        .await;
    assert!(
        matches!(delete.status, StatusCode::ACCEPTED | StatusCode::OK),
        "{} {}",
        delete.status,
        delete.json()
    );
    if delete.status == StatusCode::ACCEPTED {
        let done = osb.settle(&instance).await;
        assert!(
            done.status == StatusCode::GONE || done.json()["state"] == "succeeded",
            "{} {}",
            done.status,
            done.json()
        );
    }
    assert!(
        sim.deployment_ids(&format!("osb-{prefix}"))
            .await
            .is_empty(),
        "nothing left in Cloudify"
    );
    let hidden = counting
        .catalog()
        .await
        .expect("catalog")
        .entry(&service_id_for(&DEFAULT_ID_NAMESPACE, TENANT, &blueprint))
        .map(|e| e.active);
    assert_eq!(hidden, Some(false), "kept, inactive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_blueprints_sync_resync_without_writes_and_hide_a_deleted_one_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("catalog.db")).expect("SQLite store");
    catalog_scenario(Arc::new(store), "sqlite", BLUEPRINTS).await;
}

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_blueprints_sync_resync_without_writes_and_hide_a_deleted_one_on_dynamodb() {
    let url = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL_DYNAMODB is not set: start moto with `tests/services/moto.sh start` \
             and source $TEST_STATE/moto.env (tests/run does both)"
        )
    });
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "moto must be on loopback: {url}"
    );
    let table = format!("catalog-e2e-{}", uuid::Uuid::new_v4().simple());
    let store = cloudify_osb::adapters::dynamodb::DynamoStore::from_env(table).await;
    store.create_table().await.expect("table created on moto");
    catalog_scenario(Arc::new(store), "dynamodb", BLUEPRINTS).await;
}

#[tokio::test]
async fn a_provision_with_a_parameter_of_the_wrong_type_gets_400_and_never_reaches_cloudify() {
    let prefix = format!("typ{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let dir = tempfile::tempdir().expect("temp dir");
    write_fixtures(dir.path(), &prefix, 3);
    let sim = Sim::start_with(
        "7.0",
        0.2,
        &["--fixtures", dir.path().to_str().expect("utf-8 temp path")],
    );
    let cloudify = orchestrator(&sim);
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().expect("SQLite store"));
    sync_catalog_with(cloudify.as_ref(), store.as_ref(), &options(Selection::All))
        .await
        .expect("sync");
    let osb = Osb::new(store, cloudify);
    let blueprint = format!("{prefix}-bp-00001");
    let service_id = service_id_for(&DEFAULT_ID_NAMESPACE, TENANT, &blueprint);
    let catalog = osb.call(Method::GET, "/v2/catalog", None, &[]).await.json();
    let service = catalog["services"]
        .as_array()
        .and_then(|v| v.iter().find(|s| s["id"] == service_id.as_str()))
        .expect("offered")
        .clone();
    for (parameters, named) in [
        (json!({"port": "not a number"}), "port"),
        (json!({"db_name": "Bad-Name"}), "db_name"),
        (json!({"colour": "blue"}), "colour"),
    ] {
        let body = json!({"service_id": service["id"], "plan_id": service["plans"][0]["id"],
            "organization_guid": "org", "space_guid": "space", "parameters": parameters});
        let a = osb
            .call(
                Method::PUT,
                &format!("/v2/service_instances/{prefix}-i?accepts_incomplete=true"),
                Some(body),
                &[],
            )
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.json());
        let description = a.json()["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(description.contains(named), "{description}");
    }
    assert!(
        sim.deployments().await.is_empty(),
        "nothing reached the simulator"
    );
    let gone = osb
        .call(
            Method::GET,
            &format!("/v2/service_instances/{prefix}-i"),
            None,
            &[],
        )
        .await;
    assert_eq!(
        gone.status,
        StatusCode::NOT_FOUND,
        "no instance record left"
    );
}

#[tokio::test]
async fn opt_in_offers_only_blueprints_with_a_metadata_block_or_the_osb_label() {
    let prefix = format!("opt{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    let dir = tempfile::tempdir().expect("temp dir");
    write_fixtures(dir.path(), &prefix, 30);
    let sim = Sim::start_with(
        "7.0",
        0.2,
        &["--fixtures", dir.path().to_str().expect("utf-8 temp path")],
    );
    let store = SqliteStore::open_in_memory().expect("SQLite store");
    let r = sync_catalog_with(
        orchestrator(&sim).as_ref(),
        &store,
        &options(Selection::OptIn),
    )
    .await
    .expect("sync");
    // Metadata block: 0, 10, 20; label: 0, 7, 14, 21, 28.
    assert_eq!((r.blueprints, r.offered), (30, 7), "{r}");
}
