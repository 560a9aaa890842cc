//! The project's own OpenAPI document (`openapi/cloudify-osb.yaml`) against the official OSB
//! v2.17 files in `../shared/osb/` (DESIGN.md §8): same paths and methods, the official
//! parameters, request-body and success-body fields all present, and every difference (ours
//! stricter, ours adding responses or fields, the official file's gaps) listed explicitly
//! below. When the official files are absent (a clone without `../shared/`), the presence
//! test fails loudly unless `CLOUDIFY_OSB_ALLOW_MISSING_SPEC=1` says that is expected, and
//! the comparison prints that it did not run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/osb` beside the repository, or beside any ancestor (git worktrees nest the
/// checkout one level deeper), or `$OSB_SPEC_DIR`.
fn official_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("OSB_SPEC_DIR") {
        return Some(PathBuf::from(dir));
    }
    repo()
        .ancestors()
        .skip(1)
        .map(|a| a.join("shared").join("osb"))
        .find(|d| d.join("openapi.yaml").is_file())
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn ours() -> Value {
    load(&repo().join("openapi/cloudify-osb.yaml"))
}

/// Follows local `$ref`s and merges `allOf` members (properties and required).
fn resolve(doc: &Value, v: &Value) -> Value {
    let mut v = v.clone();
    for _ in 0..16 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let pointer = r.trim_start_matches('#');
        v = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("unresolved $ref {r}"))
            .clone();
    }
    if let Some(all) = v.get("allOf").and_then(Value::as_array).cloned() {
        let mut merged = serde_json::Map::new();
        let mut props = serde_json::Map::new();
        let mut required = Vec::new();
        for member in all {
            let m = resolve(doc, &member);
            if let Some(p) = m.get("properties").and_then(Value::as_object) {
                props.extend(p.clone());
            }
            if let Some(r) = m.get("required").and_then(Value::as_array) {
                required.extend(r.clone());
            }
        }
        merged.insert("properties".into(), Value::Object(props));
        merged.insert("required".into(), Value::Array(required));
        return Value::Object(merged);
    }
    v
}

const METHODS: [&str; 4] = ["get", "put", "patch", "delete"];

fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            if let Some(op) = item.get(m) {
                let mut params: Vec<Value> = Vec::new();
                for p in item
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    params.push(resolve(doc, p));
                }
                for p in op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    params.push(resolve(doc, p));
                }
                let mut op = op.clone();
                op["parameters"] = Value::Array(params);
                out.insert((path.clone(), m.to_owned()), op);
            }
        }
    }
    out
}

fn params(op: &Value) -> BTreeMap<(String, String), bool> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let key = (
                p["in"].as_str().unwrap_or_default().to_owned(),
                p["name"].as_str().unwrap_or_default().to_ascii_lowercase(),
            );
            (key, p["required"].as_bool().unwrap_or(false))
        })
        .collect()
}

fn fields(doc: &Value, schema: Option<&Value>) -> (BTreeSet<String>, BTreeSet<String>) {
    let Some(schema) = schema else {
        return Default::default();
    };
    let s = resolve(doc, schema);
    let props = s["properties"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let required = s["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    (props, required)
}

fn json_schema<'a>(doc: &'a Value, holder: &'a Value) -> Option<Value> {
    let holder = resolve(doc, holder);
    holder.pointer("/content/application~1json/schema").cloned()
}

/// Every difference between the official document and ours, one line each.
fn differences(official: &Value, ours: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let theirs = operations(official);
    let mine = operations(ours);
    for key in mine.keys() {
        if !theirs.contains_key(key) {
            diffs.push(format!("{} {}: operation not in v2.17", key.1, key.0));
        }
    }
    for (key, t) in &theirs {
        let op = format!("{} {}", key.1, key.0);
        let Some(m) = mine.get(key) else {
            diffs.push(format!("{op}: operation missing"));
            continue;
        };
        let (tp, mp) = (params(t), params(m));
        for (p, req) in &tp {
            match mp.get(p) {
                None => diffs.push(format!("{op}: parameter {}:{} missing", p.0, p.1)),
                Some(r) if r != req => diffs.push(format!(
                    "{op}: parameter {}:{} required={r} (v2.17: {req})",
                    p.0, p.1
                )),
                _ => {}
            }
        }
        for p in mp.keys().filter(|p| !tp.contains_key(*p)) {
            diffs.push(format!("{op}: adds parameter {}:{}", p.0, p.1));
        }
        let codes = |o: &Value| -> BTreeSet<String> {
            o["responses"]
                .as_object()
                .map(|r| r.keys().cloned().collect())
                .unwrap_or_default()
        };
        let (tc, mc) = (codes(t), codes(m));
        for c in tc.difference(&mc) {
            diffs.push(format!("{op}: response {c} missing"));
        }
        let added: Vec<_> = mc.difference(&tc).cloned().collect();
        if !added.is_empty() {
            diffs.push(format!("{op}: adds responses {}", added.join(",")));
        }
        let tb = t.get("requestBody").and_then(|b| json_schema(official, b));
        let mb = m.get("requestBody").and_then(|b| json_schema(ours, b));
        compare_fields(
            &mut diffs,
            &format!("{op} body"),
            official,
            tb.as_ref(),
            ours,
            mb.as_ref(),
        );
        for c in tc.intersection(&mc).filter(|c| c.starts_with('2')) {
            let ts = json_schema(official, &t["responses"][c]);
            let ms = json_schema(ours, &m["responses"][c]);
            compare_fields(
                &mut diffs,
                &format!("{op} {c}"),
                official,
                ts.as_ref(),
                ours,
                ms.as_ref(),
            );
        }
    }
    diffs
}

fn compare_fields(
    diffs: &mut Vec<String>,
    what: &str,
    official: &Value,
    t: Option<&Value>,
    ours: &Value,
    m: Option<&Value>,
) {
    let (tp, tr) = fields(official, t);
    let (mp, mr) = fields(ours, m);
    for f in tp.difference(&mp) {
        diffs.push(format!("{what}: field {f} missing"));
    }
    for f in mp.difference(&tp) {
        diffs.push(format!("{what}: adds field {f}"));
    }
    for f in tr.difference(&mr) {
        diffs.push(format!("{what}: field {f} optional (v2.17: required)"));
    }
    for f in mr.difference(&tr) {
        diffs.push(format!("{what}: field {f} required (v2.17: optional)"));
    }
}

/// The differences we know and mean. Each line is checked: a new or vanished difference
/// fails the test, so this list stays the truth.
const EXPECTED: &[&str] = &[
    // 412 (version header), 503 (dependency named), 413/415 (body limit, content type),
    // 404/409/410/422 where the spec defines them but the v2.17 file does not.
    "delete /v2/service_instances/{instance_id}: adds responses 412,503",
    "delete /v2/service_instances/{instance_id}/service_bindings/{binding_id}: adds responses 404,412,503",
    "get /v2/catalog: adds responses 400,401,412,503",
    "get /v2/service_instances/{instance_id}: adds responses 400,401,412,422,503",
    "get /v2/service_instances/{instance_id}/last_operation: adds responses 412,503",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id}: adds responses 400,401,412,422,503",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation: adds responses 412,503",
    "patch /v2/service_instances/{instance_id}: adds responses 404,409,412,413,415,503",
    "put /v2/service_instances/{instance_id}: adds responses 412,413,415,503",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id}: adds responses 404,412,413,415,503",
    // Every Cloudify-backed operation is asynchronous (osb.md §6.1): provision never answers 201.
    "put /v2/service_instances/{instance_id}: response 201 missing",
    // Bindings are synchronous (Vault only): no 202 on bind and unbind.
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id}: response 202 missing",
    "delete /v2/service_instances/{instance_id}/service_bindings/{binding_id}: response 202 missing",
    // The request identity (missing from the v2.17 file) and the originating identity on the
    // routes where the file forgot it.
    "get /v2/catalog: adds parameter header:x-broker-api-request-identity",
    "get /v2/catalog: adds parameter header:x-broker-api-originating-identity",
    "delete /v2/service_instances/{instance_id}: adds parameter header:x-broker-api-request-identity",
    "get /v2/service_instances/{instance_id}: adds parameter header:x-broker-api-request-identity",
    "patch /v2/service_instances/{instance_id}: adds parameter header:x-broker-api-request-identity",
    "put /v2/service_instances/{instance_id}: adds parameter header:x-broker-api-request-identity",
    "get /v2/service_instances/{instance_id}/last_operation: adds parameter header:x-broker-api-request-identity",
    "get /v2/service_instances/{instance_id}/last_operation: adds parameter header:x-broker-api-originating-identity",
    "delete /v2/service_instances/{instance_id}/service_bindings/{binding_id}: adds parameter header:x-broker-api-request-identity",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id}: adds parameter header:x-broker-api-request-identity",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id}: adds parameter header:x-broker-api-request-identity",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation: adds parameter header:x-broker-api-request-identity",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation: adds parameter header:x-broker-api-originating-identity",
    // The official file lacks maintenance_info on provision and update bodies (a known gap).
    "patch /v2/service_instances/{instance_id} body: adds field maintenance_info",
    "put /v2/service_instances/{instance_id} body: adds field maintenance_info",
    // Rotation (osb.md §10): a bind with predecessor_binding_id may omit service_id/plan_id.
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} body: field plan_id optional (v2.17: required)",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} body: field service_id optional (v2.17: required)",
    // Stricter answers: what the broker always sends is declared required.
    "delete /v2/service_instances/{instance_id} 202: field operation required (v2.17: optional)",
    "patch /v2/service_instances/{instance_id} 202: field operation required (v2.17: optional)",
    "put /v2/service_instances/{instance_id} 202: field operation required (v2.17: optional)",
    "get /v2/catalog 200: field services required (v2.17: optional)",
    "get /v2/service_instances/{instance_id} 200: field plan_id required (v2.17: optional)",
    "get /v2/service_instances/{instance_id} 200: field service_id required (v2.17: optional)",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id} 200: field credentials required (v2.17: optional)",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} 200: field credentials required (v2.17: optional)",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} 201: field credentials required (v2.17: optional)",
    // Fields the broker may add: dashboard_url/operation on every instance answer (one
    // response type), the binding's parameters (spec: fetch binding returns them).
    "delete /v2/service_instances/{instance_id} 202: adds field dashboard_url",
    "patch /v2/service_instances/{instance_id} 200: adds field dashboard_url",
    "patch /v2/service_instances/{instance_id} 200: adds field operation",
    "put /v2/service_instances/{instance_id} 200: adds field operation",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} 200: adds field parameters",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} 201: adds field parameters",
    // Fields the broker never sends: instance metadata (no labels/attributes kept), and the
    // binding's syslog_drain_url, route_service_url, volume_mounts (no `requires` in the
    // catalog); instance_usable/update_repeatable are for instances only (osb.md §6.3).
    "patch /v2/service_instances/{instance_id} 202: field metadata missing",
    "put /v2/service_instances/{instance_id} 200: field metadata missing",
    "put /v2/service_instances/{instance_id} 202: field metadata missing",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id} 200: field route_service_url missing",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id} 200: field syslog_drain_url missing",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id} 200: field volume_mounts missing",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} 200: field route_service_url missing",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} 200: field syslog_drain_url missing",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} 200: field volume_mounts missing",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} 201: field route_service_url missing",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} 201: field syslog_drain_url missing",
    "put /v2/service_instances/{instance_id}/service_bindings/{binding_id} 201: field volume_mounts missing",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation 200: field instance_usable missing",
    "get /v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation 200: field update_repeatable missing",
];

#[test]
fn official_osb_files_are_present_or_reported() {
    match official_dir() {
        Some(dir) => {
            assert!(dir.join("openapi.yaml").is_file(), "{}", dir.display());
            println!("official OSB v2.17 files: {}", dir.display());
        }
        None => {
            eprintln!(
                "!!! OFFICIAL OSB v2.17 FILES ABSENT: no ../shared/osb/openapi.yaml beside the \
                 repository; openapi/cloudify-osb.yaml was NOT compared with them"
            );
            assert!(
                std::env::var("CLOUDIFY_OSB_ALLOW_MISSING_SPEC").as_deref() == Ok("1"),
                "the official OSB files are absent; set CLOUDIFY_OSB_ALLOW_MISSING_SPEC=1 to \
                 accept running without the comparison"
            );
        }
    }
}

#[test]
fn our_openapi_agrees_with_the_official_v2_17_file_except_the_listed_differences() {
    let Some(dir) = official_dir() else {
        eprintln!(
            "!!! comparison NOT RUN: official OSB v2.17 files absent (see the presence test)"
        );
        return;
    };
    let official = load(&dir.join("openapi.yaml"));
    let mut found = differences(&official, &ours());
    found.sort();
    let mut expected: Vec<String> = EXPECTED.iter().map(|s| s.to_string()).collect();
    expected.sort();
    for d in &found {
        println!("difference: {d}");
    }
    let unexpected: Vec<_> = found.iter().filter(|d| !expected.contains(d)).collect();
    let vanished: Vec<_> = expected.iter().filter(|d| !found.contains(d)).collect();
    assert!(
        unexpected.is_empty() && vanished.is_empty(),
        "unlisted differences: {unexpected:#?}\nlisted but no longer found: {vanished:#?}"
    );
}

#[test]
fn our_openapi_has_all_ten_routes_with_links_request_identity_and_error_bodies() {
    let doc = ours();
    let ops = operations(&doc);
    assert_eq!(ops.len(), 10);
    let ids: BTreeSet<_> = ops
        .values()
        .filter_map(|o| o["operationId"].as_str())
        .collect();
    assert_eq!(ids.len(), 10, "{ids:?}");
    for ((path, method), op) in &ops {
        let p = params(op);
        assert_eq!(
            p.get(&("header".into(), "x-broker-api-version".into())),
            Some(&true),
            "{method} {path}"
        );
        assert!(p.contains_key(&("header".into(), "x-broker-api-request-identity".into())));
        for (code, resp) in op["responses"].as_object().unwrap() {
            let r = resolve(&doc, resp);
            assert!(
                r["headers"].get("X-Broker-API-Request-Identity").is_some(),
                "{method} {path} {code}"
            );
            if code.starts_with('4') || code.starts_with('5') {
                let s = json_schema(&doc, resp).unwrap();
                assert_eq!(
                    s["$ref"], "#/components/schemas/Error",
                    "{method} {path} {code}"
                );
            }
        }
        for code in ["401", "412"] {
            assert!(
                op["responses"].get(code).is_some(),
                "{method} {path} lacks {code}"
            );
        }
    }
    // Stateful chains: provision links on to the routes that use the instance.
    let links =
        &doc["paths"]["/v2/service_instances/{instance_id}"]["put"]["responses"]["202"]["links"];
    let targets: BTreeSet<_> = links
        .as_object()
        .unwrap()
        .values()
        .map(|l| resolve(&doc, l)["operationId"].as_str().unwrap().to_owned())
        .collect();
    for t in ["lastOperation", "getInstance", "deprovision"] {
        assert!(targets.contains(t), "{targets:?}");
    }
    for (name, link) in doc["components"]["links"].as_object().unwrap() {
        let id = link["operationId"].as_str().unwrap();
        assert!(ids.contains(id), "link {name} names unknown operation {id}");
    }
}
