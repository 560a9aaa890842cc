//! The DynamoDB store on moto (`tests/services/moto.sh`, `AWS_ENDPOINT_URL_DYNAMODB`): the
//! shared `Store` contract (module `suite`, from `tests/contract/store.rs`) plus what is
//! specific to DynamoDB (paging, staged catalog writes and their publish, indexes, TTL, number mapping). Each test
//! works on its own freshly created table.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use cloudify_osb::adapters::dynamodb::DynamoStore;
use cloudify_osb::domain::binding::{Binding, BindingState};
use cloudify_osb::domain::catalog::{CatalogEntry, Plan, Service};
use cloudify_osb::domain::error::StoreError;
use cloudify_osb::domain::ids::{BindingId, InstanceId, PlanId, ServiceId};
use cloudify_osb::domain::instance::{Instance, InstanceState};
use cloudify_osb::domain::ports::Store;

use crate::store::{Fixture, store_contract_tests};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The moto endpoint; fails (never skips) when the server is not there, and refuses anything
/// but loopback so a test can never reach AWS.
fn endpoint() -> String {
    let url = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!(
            "AWS_ENDPOINT_URL_DYNAMODB is not set: start moto with `tests/services/moto.sh start` \
             and source $TEST_STATE/moto.env (tests/run does both)"
        )
    });
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "AWS_ENDPOINT_URL_DYNAMODB must point at a loopback moto server, not {url}"
    );
    url
}

store_contract_tests!(suite, async {
    Fixture::new(Arc::new(store("contract").await))
});

/// A store on a new table named after the test.
pub async fn store(prefix: &str) -> DynamoStore {
    endpoint();
    let table = format!("{prefix}-{}", uuid::Uuid::new_v4().simple());
    let store = DynamoStore::from_env(table).await;
    store
        .create_table()
        .await
        .unwrap_or_else(|e| panic!("creating table {}: {e}", store.table()));
    store
}

async fn raw_client() -> aws_sdk_dynamodb::Client {
    endpoint();
    aws_sdk_dynamodb::Client::new(&aws_config::load_from_env().await)
}

fn instance(id: &str, state: InstanceState) -> Instance {
    Instance {
        id: InstanceId::parse(id).unwrap(),
        service_id: ServiceId::parse("svc-1").unwrap(),
        plan_id: PlanId::parse("plan-1").unwrap(),
        blueprint_id: "bp".into(),
        deployment_id: format!("osb-{id}"),
        organization_guid: "org".into(),
        space_guid: "space".into(),
        context: Some(serde_json::json!({"platform": "kubernetes", "namespace": "ns"})),
        parameters: serde_json::json!({"size": 3, "nested": {"a": [1, 2.5, null, "x"]}})
            .as_object()
            .cloned()
            .unwrap(),
        maintenance_info_version: None,
        dashboard_url: None,
        request_hash: "h".repeat(64),
        state,
        operation: None,
        created_at: OffsetDateTime::now_utc(),
        version: 0,
    }
}

fn binding(
    instance: &str,
    id: &str,
    state: BindingState,
    renew_before: Option<OffsetDateTime>,
) -> Binding {
    Binding {
        instance_id: InstanceId::parse(instance).unwrap(),
        id: BindingId::parse(id).unwrap(),
        service_id: ServiceId::parse("svc-1").unwrap(),
        plan_id: PlanId::parse("plan-1").unwrap(),
        request_hash: "b".repeat(64),
        parameters: Map::new(),
        context: None,
        bind_resource: None,
        predecessor_binding_id: None,
        binder: "vault".into(),
        binder_state: serde_json::json!({"lease_id": "database/creds/x/1"}),
        state,
        expires_at: renew_before.map(|r| r + time::Duration::hours(1)),
        renew_before,
        created_at: OffsetDateTime::now_utc(),
        version: 0,
    }
}

fn entry(n: usize, description: String) -> CatalogEntry {
    CatalogEntry {
        service: Service {
            id: ServiceId::parse(&format!("service-{n:04}")).unwrap(),
            name: format!("svc{n:04}"),
            description,
            bindable: true,
            tags: vec!["db".into()],
            instances_retrievable: true,
            bindings_retrievable: true,
            plan_updateable: false,
            allow_context_updates: None,
            metadata: Some(
                serde_json::json!({"displayName": "x"})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
            plans: vec![Plan {
                id: PlanId::parse(&format!("plan-{n:04}")).unwrap(),
                name: "default".into(),
                description: "default plan".into(),
                free: true,
                bindable: None,
                plan_updateable: None,
                binding_rotatable: None,
                maximum_polling_duration: None,
                maintenance_info: None,
                metadata: None,
                schemas: None,
            }],
        },
        blueprint_id: format!("bp{n}"),
        tenant: "default_tenant".into(),
        active: true,
        blueprint_updated_at: Some("2026-01-01T00:00:00Z".into()),
        presets: BTreeMap::from([(
            PlanId::parse(&format!("plan-{n:04}")).unwrap(),
            serde_json::json!({"size": "small"})
                .as_object()
                .cloned()
                .unwrap(),
        )]),
        retired_plans: vec![],
    }
}

#[tokio::test]
async fn creating_the_table_twice_changes_nothing() {
    let s = store("ddb-twice").await;
    s.create_table().await.unwrap();
    assert_eq!(s.catalog_version().await.unwrap(), 0);
}

#[tokio::test]
async fn an_expired_item_not_yet_removed_by_ttl_is_gone_for_reads_and_creates() {
    let s = store("ddb-ttl").await;
    let id = InstanceId::parse("i-old").unwrap();
    let old = s
        .create_instance(&instance("i-old", InstanceState::Provisioned))
        .await
        .unwrap();
    let expired_at = OffsetDateTime::now_utc().unix_timestamp() - 60;
    raw_client()
        .await
        .update_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S("INSTANCE#i-old".into()))
        .key("sk", AttributeValue::S("META".into()))
        .update_expression("SET #ttl = :t")
        .expression_attribute_names("#ttl", "ttl")
        .expression_attribute_values(":t", AttributeValue::N(expired_at.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(s.instance(&id).await.unwrap(), None);
    assert!(s.instances(None).await.unwrap().iter().all(|i| i.id != id));
    assert!(matches!(
        s.update_instance(&old).await,
        Err(StoreError::Conflict)
    ));
    let again = s
        .create_instance(&instance("i-old", InstanceState::Provisioning))
        .await
        .unwrap();
    assert_eq!(s.instance(&id).await.unwrap(), Some(again));
}

#[tokio::test]
async fn bindings_due_come_from_the_renewal_index_only_when_bound_with_a_lease() {
    let s = store("ddb-due").await;
    let now = OffsetDateTime::now_utc();
    let past = now - time::Duration::minutes(5);
    let future = now + time::Duration::minutes(5);
    let due = s
        .create_binding(&binding("i", "due", BindingState::Bound, Some(past)))
        .await
        .unwrap();
    s.create_binding(&binding("i", "later", BindingState::Bound, Some(future)))
        .await
        .unwrap();
    s.create_binding(&binding("i", "no-lease", BindingState::Bound, None))
        .await
        .unwrap();
    s.create_binding(&binding(
        "i",
        "creating",
        BindingState::Creating,
        Some(past),
    ))
    .await
    .unwrap();
    s.create_binding(&binding("other", "due2", BindingState::Bound, Some(past)))
        .await
        .unwrap();

    let mut names: Vec<String> = s
        .bindings_due(now)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id.as_str().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["due", "due2"]);

    let mut unbinding = due.clone();
    unbinding.state = BindingState::Unbinding;
    s.update_binding(&unbinding).await.unwrap();
    let left: Vec<String> = s
        .bindings_due(now)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.id.as_str().to_owned())
        .collect();
    assert_eq!(left, ["due2"]);

    let of_i = s
        .bindings_of(&InstanceId::parse("i").unwrap())
        .await
        .unwrap();
    assert_eq!(of_i.len(), 4);
    assert!(
        s.bindings_of(&InstanceId::parse("nobody").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_catalog_is_read_page_by_page_with_a_small_page_limit() {
    let s = store("ddb-pages").await.with_page_limit(4);
    let entries: Vec<CatalogEntry> = (0..25).map(|n| entry(n, format!("service {n}"))).collect();
    assert_eq!(s.put_catalog_entries(&entries).await.unwrap(), 1);
    let catalog = s.catalog().await.unwrap();
    assert_eq!(catalog.version, 1);
    assert_eq!(catalog.entries.len(), 25);
    for e in &entries {
        assert_eq!(catalog.entry(&e.service.id), Some(e));
    }
}

#[tokio::test]
async fn a_catalog_over_one_megabyte_is_read_completely() {
    let s = store("ddb-big").await;
    // 40 entries of ~40 KB: more than one 1 MB Query page.
    let entries: Vec<CatalogEntry> = (0..40)
        .map(|n| entry(n, format!("{n} {}", "x".repeat(40_000))))
        .collect();
    assert_eq!(s.put_catalog_entries(&entries).await.unwrap(), 1);
    let catalog = s.catalog().await.unwrap();
    assert_eq!(catalog.entries.len(), 40);
    assert!(
        catalog
            .entries
            .iter()
            .all(|e| e.service.description.len() > 40_000)
    );
}

#[tokio::test]
async fn more_entries_than_one_batch_write_holds_bump_the_version_once() {
    let s = store("ddb-chunks").await;
    let entries: Vec<CatalogEntry> = (0..230).map(|n| entry(n, format!("s{n}"))).collect();
    assert_eq!(s.put_catalog_entries(&entries).await.unwrap(), 1);
    assert_eq!(s.catalog_version().await.unwrap(), 1);
    assert_eq!(s.catalog().await.unwrap().entries.len(), 230);

    let mut changed = entries[7].clone();
    changed.active = false;
    assert_eq!(s.put_catalog_entries(&[changed.clone()]).await.unwrap(), 2);
    assert_eq!(s.put_catalog_entries(&[]).await.unwrap(), 2);
    let catalog = s.catalog().await.unwrap();
    assert_eq!(catalog.version, 2);
    assert_eq!(catalog.entry(&changed.service.id), Some(&changed));
}

/// Catalog writers in different processes (one store each, so no shared in-process lock) are
/// kept apart only by the write lease on the version item.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_writers_in_separate_processes_each_bump_the_version() {
    let first = store("ddb-cv-race").await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let own = DynamoStore::from_env(first.table()).await;
        tasks.push(tokio::spawn(async move {
            own.put_catalog_entries(&[entry(n, format!("w{n}"))]).await
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap().unwrap());
    }
    versions.sort();
    assert_eq!(versions, (1..=8).collect::<Vec<u64>>());
    assert_eq!(first.catalog_version().await.unwrap(), 8);
}

/// The raw catalog entry items of a table (every tag, committed or not).
async fn raw_entry_items(table: &str) -> Vec<BTreeMap<String, AttributeValue>> {
    let out = raw_client()
        .await
        .query()
        .table_name(table)
        .consistent_read(true)
        .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
        .expression_attribute_values(":pk", AttributeValue::S("CATALOG".into()))
        .expression_attribute_values(":p", AttributeValue::S("SERVICE#".into()))
        .send()
        .await
        .unwrap();
    out.items
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.into_iter().collect())
        .collect()
}

/// Puts an entry item as a writer would stage it under `tag`, without publishing.
async fn stage(table: &str, e: &CatalogEntry, tag: u64) {
    let mut item: std::collections::HashMap<String, AttributeValue> =
        serde_dynamo::to_item(e).unwrap();
    item.insert("pk".into(), AttributeValue::S("CATALOG".into()));
    item.insert(
        "sk".into(),
        AttributeValue::S(format!("SERVICE#{}#{tag:020}", e.service.id.as_str())),
    );
    item.insert("catalog_tag".into(), AttributeValue::N(tag.to_string()));
    raw_client()
        .await
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn staged_entries_of_a_writer_that_died_are_never_read_and_the_next_writer_publishes() {
    let s = store("ddb-staged").await;
    assert_eq!(
        s.put_catalog_entries(&[entry(1, "v1".into())])
            .await
            .unwrap(),
        1
    );
    // A writer claimed tag 2, staged a changed entry 1 and a new entry 2, then died with
    // its lease run out.
    let now = OffsetDateTime::now_utc().unix_timestamp();
    raw_client()
        .await
        .update_item()
        .table_name(s.table())
        .key("pk", AttributeValue::S("CATALOG".into()))
        .key("sk", AttributeValue::S("VERSION".into()))
        .update_expression("SET next_tag = :t, writer = :w, writer_until = :u")
        .expression_attribute_values(":t", AttributeValue::N("2".into()))
        .expression_attribute_values(":w", AttributeValue::S("dead".into()))
        .expression_attribute_values(":u", AttributeValue::N((now - 1).to_string()))
        .send()
        .await
        .unwrap();
    stage(s.table(), &entry(1, "half-written".into()), 2).await;
    stage(s.table(), &entry(2, "half-written".into()), 2).await;
    let c = s.catalog().await.unwrap();
    assert_eq!(c.version, 1);
    assert_eq!(
        c.entries,
        vec![entry(1, "v1".into())],
        "staged items are not read"
    );

    // The next writer takes the expired lease, gets a fresh tag and publishes only its own.
    assert_eq!(
        s.put_catalog_entries(&[entry(3, "v3".into())])
            .await
            .unwrap(),
        3
    );
    let c = s.catalog().await.unwrap();
    assert_eq!(c.version, 3);
    let mut got: Vec<_> = c
        .entries
        .iter()
        .map(|e| e.service.description.clone())
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["v1", "v3"],
        "tag 2 was abandoned: never part of the catalog"
    );
    // The read above saw the abandoned items; the next write collects them.
    assert_eq!(
        s.put_catalog_entries(&[entry(3, "v4".into())])
            .await
            .unwrap(),
        4
    );
    let left: Vec<String> = raw_entry_items(s.table())
        .await
        .iter()
        .map(|i| match &i["catalog_tag"] {
            AttributeValue::N(t) => t.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        left,
        ["1", "4"],
        "one item per service, abandoned and superseded ones gone"
    );
}

#[tokio::test]
async fn a_live_lease_of_another_writer_makes_a_writer_wait_until_it_runs_out() {
    let s = store("ddb-lease").await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    raw_client()
        .await
        .put_item()
        .table_name(s.table())
        .item("pk", AttributeValue::S("CATALOG".into()))
        .item("sk", AttributeValue::S("VERSION".into()))
        .item("catalog_version", AttributeValue::N("0".into()))
        .item("next_tag", AttributeValue::N("1".into()))
        .item("writer", AttributeValue::S("other".into()))
        .item("writer_until", AttributeValue::N((now + 3).to_string()))
        .send()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        s.put_catalog_entries(&[entry(1, "x".into())])
            .await
            .unwrap(),
        2
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "waited for the other lease: {:?}",
        started.elapsed()
    );
    assert_eq!(s.catalog().await.unwrap().entries.len(), 1);
}

#[tokio::test]
async fn entries_written_before_tags_existed_are_read_and_superseded() {
    let s = store("ddb-legacy").await;
    // The layout before staged writes: sk SERVICE#<id>, no tag, version item with only
    // catalog_version.
    let old = entry(1, "legacy".into());
    let mut item: std::collections::HashMap<String, AttributeValue> =
        serde_dynamo::to_item(&old).unwrap();
    item.insert("pk".into(), AttributeValue::S("CATALOG".into()));
    item.insert(
        "sk".into(),
        AttributeValue::S(format!("SERVICE#{}", old.service.id.as_str())),
    );
    let raw = raw_client().await;
    raw.put_item()
        .table_name(s.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    raw.put_item()
        .table_name(s.table())
        .item("pk", AttributeValue::S("CATALOG".into()))
        .item("sk", AttributeValue::S("VERSION".into()))
        .item("catalog_version", AttributeValue::N("7".into()))
        .send()
        .await
        .unwrap();
    let c = s.catalog().await.unwrap();
    assert_eq!((c.version, c.entries.clone()), (7, vec![old]));
    let new = entry(1, "new".into());
    assert_eq!(
        s.put_catalog_entries(std::slice::from_ref(&new))
            .await
            .unwrap(),
        8
    );
    assert_eq!(s.catalog().await.unwrap().entries, vec![new]);
    assert_eq!(
        raw_entry_items(s.table()).await.len(),
        1,
        "legacy item collected"
    );
}

/// Readers racing a writer that rewrites every entry each time: every catalog read is one
/// whole version (all entries of one generation), never a mix.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_a_half_published_catalog() {
    let s = store("ddb-atomic").await.with_page_limit(7);
    let generation =
        |g: u64| -> Vec<CatalogEntry> { (0..40).map(|n| entry(n, format!("gen {g}"))).collect() };
    assert_eq!(s.put_catalog_entries(&generation(1)).await.unwrap(), 1);
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for g in 2..=6 {
                s.catalog().await.unwrap();
                assert_eq!(s.put_catalog_entries(&generation(g)).await.unwrap(), g);
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..3 {
        let reader = DynamoStore::from_env(s.table()).await.with_page_limit(7);
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            loop {
                let c = reader.catalog().await.unwrap();
                reads += 1;
                assert_eq!(c.entries.len(), 40, "version {}", c.version);
                let gens: std::collections::BTreeSet<&str> = c
                    .entries
                    .iter()
                    .map(|e| e.service.description.as_str())
                    .collect();
                assert_eq!(gens.len(), 1, "one generation per read: {gens:?}");
                let g: u64 = gens.first().unwrap()[4..].parse().unwrap();
                assert!(g >= c.version, "content at least as new as its version");
                if c.version == 6 {
                    return reads;
                }
            }
        }));
    }
    writer.await.unwrap();
    for r in readers {
        assert!(r.await.unwrap() >= 1);
    }
}

#[tokio::test]
async fn catalog_entries_with_arbitrary_json_round_trip() {
    let s = store("ddb-json").await;
    let mut e = entry(3, String::new());
    e.service.metadata = Some(
        serde_json::json!({"empty": "", "list": [], "map": {}, "n": -1.5, "integral_float": 2.0, "big": u64::MAX, "t": true, "nil": null})
            .as_object()
            .cloned()
            .unwrap(),
    );
    e.service.plans[0].schemas = Some(
        serde_json::from_value(serde_json::json!({
            "service_instance": {"create": {"parameters": {"type": "object", "properties": {"size": {"type": "integer"}}}}}
        }))
        .unwrap(),
    );
    s.put_catalog_entries(std::slice::from_ref(&e))
        .await
        .unwrap();
    let catalog = s.catalog().await.unwrap();
    let mut read = catalog.entry(&e.service.id).unwrap().clone();
    // DynamoDB numbers carry no int/float distinction: 2.0 comes back as the same number 2.
    let metadata = read.service.metadata.as_mut().unwrap();
    assert_eq!(metadata["integral_float"].as_f64(), Some(2.0));
    metadata.insert("integral_float".into(), Value::from(2.0));
    assert_eq!(read, e);
    assert_eq!(
        read.service.metadata.as_ref().unwrap()["big"],
        Value::from(u64::MAX)
    );
}

/// Runs the `cloudify-osb` binary with the test environment (moto, dummy credentials).
fn cli(args: &[&str]) -> std::process::Output {
    endpoint();
    std::process::Command::new(env!("CARGO_BIN_EXE_cloudify-osb"))
        .args(args)
        .output()
        .expect("cloudify-osb runs")
}

#[tokio::test]
async fn the_cli_creates_a_table_idempotently_and_serve_answers_the_catalog_from_it() {
    let table = format!("ddb-cli-{}", uuid::Uuid::new_v4().simple());
    let location = format!("dynamodb:{table}");
    for _ in 0..2 {
        let out = cli(&["store", "create-table", &location]);
        assert!(
            out.status.success(),
            "create-table failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&location));
    }
    let s = DynamoStore::from_env(table.as_str()).await;
    s.put_catalog_entries(&[entry(1, "from the cli test".into())])
        .await
        .unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let _serve = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_cloudify-osb"))
            .args(["serve", "--store", &location, "--listen", &listen])
            .env("BROKER_USERNAME", "platform")
            .env("BROKER_PASSWORD", "cli-test-password")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("cloudify-osb serve starts"),
    );
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let url = format!("http://{listen}/v2/catalog");
    let mut answer = None;
    for _ in 0..100 {
        match http
            .get(&url)
            .basic_auth("platform", Some("cli-test-password"))
            .header("X-Broker-API-Version", "2.17")
            .send()
            .await
        {
            Ok(r) => {
                answer = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
        }
    }
    let answer = answer.expect("serve listens within 10 s");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["services"][0]["description"], "from the cli test");
}

/// A child process stopped when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_cli_refuses_to_create_a_table_for_the_memory_store() {
    let out = cli(&["store", "create-table", "memory:"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no table"));
}
