//! `infra/template.yaml`, `Cargo.toml` and `examples/events/` against [`Route`] and the
//! access table: every route has exactly one function and one event, and the reverse; every
//! function's IAM policies and secret ARNs are what its access needs, and no more.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use super::Access;
use crate::http::Route;

const TEMPLATE: &str = include_str!("../../infra/template.yaml");
const CARGO_TOML: &str = include_str!("../../Cargo.toml");

fn route_name(route: Route) -> &'static str {
    route.name()
}

fn route_method(route: Route) -> String {
    route.method().to_string()
}

fn route_path(route: Route) -> &'static str {
    route.path()
}

/// The DynamoDB actions each function's operations use (src/adapters/dynamodb): reads are
/// GetItem and Query; creates and version-checked replaces are PutItem; deletes DeleteItem;
/// the catalog sync stages entries with BatchWriteItem (and deletes superseded ones with it),
/// claims and publishes the version with UpdateItem; the renewal pass writes with PutItem.
fn store_actions(route: Option<Route>) -> BTreeSet<&'static str> {
    let read = ["dynamodb:GetItem", "dynamodb:Query"];
    let extra: &[&str] = match route {
        None => &[
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:BatchWriteItem",
        ],
        Some(Route::Catalog | Route::GetInstance | Route::GetBinding) => &[],
        Some(Route::BindingLastOperation) => &[],
        Some(Route::Update) => &["dynamodb:PutItem"],
        Some(
            Route::Provision
            | Route::Deprovision
            | Route::LastOperation
            | Route::Bind
            | Route::Unbind,
        ) => &["dynamodb:PutItem", "dynamodb:DeleteItem"],
    };
    read.iter().chain(extra).copied().collect()
}

fn pascal(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

fn template() -> Value {
    serde_yaml::from_str(TEMPLATE).expect("infra/template.yaml is YAML")
}

fn resources(t: &Value) -> &serde_yaml::Mapping {
    t["Resources"].as_mapping().expect("Resources")
}

/// Logical ID → properties of every `AWS::Serverless::Function`, and its binary.
fn functions(t: &Value) -> BTreeMap<String, (String, Value)> {
    resources(t)
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(id, r)| {
            let id = id.as_str().expect("logical ID").to_owned();
            let binary = r["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} names no Binary"))
                .to_owned();
            assert_eq!(
                r["Metadata"]["BuildMethod"].as_str(),
                Some("rust-cargolambda"),
                "{id}"
            );
            (id, (binary, r["Properties"].clone()))
        })
        .collect()
}

/// `!Ref X` → X; `!If [c, !Ref X, !Ref AWS::NoValue]` → X; `!GetAtt A.B` → A.B; `!Sub s` → s.
fn reference(v: &Value) -> String {
    match v {
        Value::Tagged(t) if t.tag == "!If" => {
            let seq = t.value.as_sequence().expect("!If list");
            assert_eq!(seq.len(), 3, "!If takes three items");
            assert_eq!(reference(&seq[2]), "AWS::NoValue", "{v:?}");
            reference(&seq[1])
        }
        Value::Tagged(t) => t.value.as_str().expect("simple tag").to_owned(),
        Value::String(s) => s.clone(),
        other => panic!("unexpected reference {other:?}"),
    }
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Resource reference → the actions the function's inline policies allow on it.
fn grants(id: &str, props: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for policy in list(&props["Policies"]) {
        let statements = list(&policy["Statement"]);
        assert!(!statements.is_empty(), "{id}: only inline policies");
        for s in statements {
            assert_eq!(s["Effect"].as_str(), Some("Allow"), "{id}");
            let actions: Vec<String> = list(&s["Action"])
                .iter()
                .map(|a| a.as_str().expect("action").to_owned())
                .collect();
            for a in &actions {
                assert!(!a.contains('*'), "{id}: wildcard action {a}");
            }
            for r in list(&s["Resource"]) {
                out.entry(reference(&r))
                    .or_default()
                    .extend(actions.iter().cloned());
            }
        }
    }
    out
}

/// The secret ARN parameters a function may read, from its access.
fn secret_params(access: Access) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if access.platform {
        out.insert("BrokerCredentialsSecretArn".to_owned());
    }
    if access.cloudify {
        out.insert("CloudifyCredentialsSecretArn".to_owned());
    }
    if access.vault {
        out.insert("VaultCredentialsSecretArn".to_owned());
    }
    out
}

fn check_access(id: &str, props: &Value, route: Option<Route>, access: Access) {
    let mut grants = grants(id, props);
    let store: BTreeSet<String> = store_actions(route)
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        grants.remove("Table.Arn"),
        Some(store),
        "{id}: store actions"
    );
    if route.is_none() {
        let index = grants.remove("${Table.Arn}/index/gsi1");
        assert_eq!(
            index,
            Some(BTreeSet::from(["dynamodb:Query".to_owned()])),
            "{id}: the renewal pass queries bindings by renewal time"
        );
    }
    let expected = secret_params(access);
    let mut secrets = BTreeSet::new();
    for (resource, actions) in grants {
        assert_eq!(
            actions,
            BTreeSet::from(["secretsmanager:GetSecretValue".to_owned()]),
            "{id}: unexpected grant on {resource}"
        );
        secrets.insert(resource);
    }
    assert_eq!(secrets, expected, "{id}: secrets it may read");
    let env: BTreeSet<String> = props["Environment"]["Variables"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str().is_some_and(|k| k.ends_with("_SECRET_ARN")))
                .map(|(_, v)| reference(v))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(env, expected, "{id}: secret ARNs in its environment");
    for source in access.secrets() {
        let param = props["Environment"]["Variables"][source.arn_env].clone();
        assert!(!param.is_null(), "{id}: {} is not set", source.arn_env);
    }
}

#[test]
fn every_route_has_exactly_one_function_and_one_http_event_and_the_reverse() {
    let t = template();
    let functions = functions(&t);
    let mut seen_events = BTreeSet::new();
    for route in Route::ALL {
        let name = route_name(route);
        let binary = format!("osb-{name}");
        let id = format!("{}Function", pascal(name));
        let matching: Vec<&String> = functions
            .iter()
            .filter(|(_, (b, _))| *b == binary)
            .map(|(id, _)| id)
            .collect();
        assert_eq!(matching, vec![&id], "functions building {binary}");
        let props = &functions[&id].1;
        let events = props["Events"].as_mapping().expect("Events");
        assert_eq!(events.len(), 1, "{id} has exactly one event");
        let (_, event) = events.iter().next().expect("one event");
        assert_eq!(event["Type"].as_str(), Some("HttpApi"), "{id}");
        assert_eq!(reference(&event["Properties"]["ApiId"]), "BrokerApi");
        let key = (
            event["Properties"]["Method"]
                .as_str()
                .expect("Method")
                .to_owned(),
            event["Properties"]["Path"]
                .as_str()
                .expect("Path")
                .to_owned(),
        );
        assert_eq!(
            key,
            (route_method(route), route_path(route).to_owned()),
            "{id}"
        );
        assert!(seen_events.insert(key), "{id}: event used twice");
    }
    // The reverse: nothing but the routes' functions and the sync function.
    let expected: BTreeSet<String> = Route::ALL
        .iter()
        .map(|r| format!("{}Function", pascal(route_name(*r))))
        .chain(["SyncCatalogFunction".to_owned()])
        .collect();
    assert_eq!(functions.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let sync = &functions["SyncCatalogFunction"];
    assert_eq!(sync.0, "osb-sync-catalog");
    let events = sync.1["Events"].as_mapping().expect("sync events");
    assert_eq!(events.len(), 1);
    let (_, event) = events.iter().next().expect("one event");
    assert_eq!(event["Type"].as_str(), Some("Schedule"));
    assert_eq!(
        reference(&sync.1["DeadLetterQueue"]["TargetArn"]),
        "SyncDeadLetterQueue.Arn"
    );
}

#[test]
fn every_function_has_the_policies_of_the_access_table_and_no_wildcard_action() {
    let t = template();
    let functions = functions(&t);
    for route in Route::ALL {
        let id = format!("{}Function", pascal(route_name(route)));
        check_access(&id, &functions[&id].1, Some(route), Access::of(route));
    }
    check_access(
        "SyncCatalogFunction",
        &functions["SyncCatalogFunction"].1,
        None,
        Access::SYNC,
    );
}

#[test]
fn access_table_gives_cloudify_and_vault_to_the_routes_that_call_them() {
    let cloudify: BTreeSet<&str> = Route::ALL
        .into_iter()
        .filter(|r| Access::of(*r).cloudify)
        .map(route_name)
        .collect();
    let vault: BTreeSet<&str> = Route::ALL
        .into_iter()
        .filter(|r| Access::of(*r).vault)
        .map(route_name)
        .collect();
    assert_eq!(
        cloudify,
        BTreeSet::from([
            "provision",
            "update",
            "deprovision",
            "last-operation",
            "bind",
            "get-binding"
        ])
    );
    assert_eq!(
        vault,
        BTreeSet::from([
            "bind",
            "unbind",
            "get-binding",
            "deprovision",
            "last-operation"
        ])
    );
    assert_eq!(
        Access::SYNC,
        Access {
            cloudify: true,
            vault: true,
            platform: false
        }
    );
    let all = Access::of_routes(&Route::ALL);
    assert!(all.cloudify && all.vault && all.platform);
}

#[test]
fn every_function_has_a_bin_target_a_watch_route_and_an_example_event() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/events");
    for route in Route::ALL {
        let name = route_name(route);
        assert!(
            CARGO_TOML.contains(&format!("name = \"osb-{name}\"")),
            "Cargo.toml has no [[bin]] osb-{name}"
        );
        let entry = format!(
            "{{ method = \"{}\", function = \"osb-{name}\" }}",
            route_method(route)
        );
        assert!(
            CARGO_TOML.contains(&entry),
            "Cargo.toml's watch router lacks {entry}"
        );
        assert!(
            CARGO_TOML.contains(&format!("\"{}\" = [", route_path(route))),
            "Cargo.toml's watch router lacks {}",
            route_path(route)
        );
        let text = std::fs::read_to_string(format!("{dir}/{name}.json"))
            .unwrap_or_else(|e| panic!("examples/events/{name}.json: {e}"));
        let event: serde_json::Value = serde_json::from_str(&text).expect("JSON event");
        assert_eq!(
            event["routeKey"],
            format!("{} {}", route_method(route), route_path(route)),
            "examples/events/{name}.json"
        );
    }
    assert!(CARGO_TOML.contains("name = \"osb-sync-catalog\""));
    assert!(std::path::Path::new(&format!("{dir}/sync-catalog.json")).exists());
}

#[test]
fn secrets_keep_only_the_settings_they_may_carry() {
    let values = super::parse_secret(
        &super::BROKER_SECRET,
        r#"{"BROKER_USERNAME": "u", "BROKER_PASSWORD": "p", "VAULT_TOKEN": "t"}"#,
    )
    .expect("valid secret");
    let names: BTreeSet<&str> = values.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        names,
        BTreeSet::from(["BROKER_PASSWORD", "BROKER_USERNAME"])
    );
    assert!(super::parse_secret(&super::BROKER_SECRET, "not json").is_err());
    assert!(super::parse_secret(&super::BROKER_SECRET, r#"{"BROKER_PASSWORD": 1}"#).is_err());
}

#[test]
fn the_table_has_the_keys_indexes_ttl_recovery_and_encryption_of_the_dynamodb_store() {
    let t = template();
    let table = &resources(&t)["Table"];
    assert_eq!(table["Type"].as_str(), Some("AWS::DynamoDB::Table"));
    assert_eq!(table["DeletionPolicy"].as_str(), Some("Retain"));
    let p = &table["Properties"];
    let types: BTreeMap<String, String> = list(&p["AttributeDefinitions"])
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().expect("name").to_owned(),
                a["AttributeType"].as_str().expect("type").to_owned(),
            )
        })
        .collect();
    // As `cloudify-osb store create-table` makes it (src/adapters/dynamodb/table.rs).
    let expected: BTreeMap<String, String> = [
        ("pk", "S"),
        ("sk", "S"),
        ("gsi1pk", "S"),
        ("gsi1sk", "N"),
        ("gsi2pk", "S"),
        ("gsi2sk", "S"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(types, expected);
    let keys = |v: &Value| -> Vec<(String, String)> {
        list(v)
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().expect("name").to_owned(),
                    k["KeyType"].as_str().expect("type").to_owned(),
                )
            })
            .collect()
    };
    let pair = |h: &str, r: &str| {
        vec![
            (h.to_owned(), "HASH".to_owned()),
            (r.to_owned(), "RANGE".to_owned()),
        ]
    };
    assert_eq!(keys(&p["KeySchema"]), pair("pk", "sk"));
    let indexes: BTreeMap<String, Vec<(String, String)>> = list(&p["GlobalSecondaryIndexes"])
        .iter()
        .map(|i| {
            assert_eq!(i["Projection"]["ProjectionType"].as_str(), Some("ALL"));
            (
                i["IndexName"].as_str().expect("index").to_owned(),
                keys(&i["KeySchema"]),
            )
        })
        .collect();
    assert_eq!(
        indexes,
        BTreeMap::from([
            ("gsi1".to_owned(), pair("gsi1pk", "gsi1sk")),
            ("gsi2".to_owned(), pair("gsi2pk", "gsi2sk")),
        ])
    );
    assert_eq!(
        p["TimeToLiveSpecification"]["AttributeName"].as_str(),
        Some("ttl")
    );
    assert_eq!(
        p["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true)
    );
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(true)
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
}
