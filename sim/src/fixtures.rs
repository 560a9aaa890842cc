//! Blueprint fixtures: the file format, the built-in sample blueprint, deployment input
//! validation against a plan's input definitions, and the evaluation of output expressions.
//!
//! Pure data logic: no HTTP, no clock, no shared state.

use std::path::Path;

use serde_json::{Map, Value, json};

/// A blueprint as the simulator holds it, before any version-dependent rendering.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// Blueprint ID.
    pub id: String,
    /// Top-level DSL `description` (empty when absent).
    pub description: String,
    /// `main_file_name`, default `blueprint.yaml`.
    pub main_file_name: String,
    /// Parsed plan, normalised so `inputs`, `outputs`, `capabilities`, `metadata`,
    /// `workflows` and `description` are always present.
    pub plan: Map<String, Value>,
    /// Blueprint state (5.2+ field), default `uploaded`.
    pub state: String,
    /// Upload error text for failed states.
    pub error: Option<String>,
    /// Labels as (key, value) pairs.
    pub labels: Vec<(String, String)>,
    /// Output values reported once `install` terminated, by output name (expressions).
    pub output_values: Map<String, Value>,
    /// Capability values reported once `install` terminated, by name (expressions).
    pub capability_values: Map<String, Value>,
}

/// An input validation failure: Cloudify error code and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputError {
    /// `error_code` used when the failure is reported by `PUT /deployments` (4.x/5.x).
    pub code: &'static str,
    /// Message (also the execution error text on 6.0+).
    pub message: String,
}

const BLUEPRINT_STATES: &[&str] = &[
    "pending",
    "validating",
    "uploading",
    "extracting",
    "parsing",
    "uploaded",
    "failed_uploading",
    "failed_extracting",
    "failed_parsing",
    "failed_extracting_to_file_server",
    "invalid",
];

/// True when `id` is a valid Cloudify resource ID (`[A-Za-z0-9._-]{1,256}`).
pub fn valid_resource_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl Fixture {
    /// Parses a fixture document (see `sim/README.md` and `sim/fixture.schema.json`).
    pub fn from_json(doc: &Value) -> Result<Fixture, String> {
        let obj = doc.as_object().ok_or("a fixture is a JSON object")?;
        let id = obj
            .get("id")
            .and_then(Value::as_str)
            .ok_or("a fixture needs a string `id`")?
            .to_string();
        if !valid_resource_id(&id) {
            return Err(format!(
                "blueprint id `{id}` must be 1-256 characters from [A-Za-z0-9._-]"
            ));
        }
        let mut plan = match obj.get("plan") {
            Some(Value::Object(p)) => p.clone(),
            _ => return Err("a fixture needs an object `plan`".into()),
        };
        let description = match obj.get("description").or_else(|| plan.get("description")) {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(_) => return Err("`description` must be a string".into()),
        };
        let state = match obj.get("state") {
            None | Some(Value::Null) => "uploaded".to_string(),
            Some(Value::String(s)) if BLUEPRINT_STATES.contains(&s.as_str()) => s.clone(),
            Some(other) => return Err(format!("unknown blueprint state {other}")),
        };
        let labels = parse_labels(obj.get("labels"))?;
        let main_file_name = obj
            .get("main_file_name")
            .and_then(Value::as_str)
            .unwrap_or("blueprint.yaml")
            .to_string();
        let error = obj.get("error").and_then(Value::as_str).map(str::to_string);
        let output_values = object_or_empty(obj.get("output_values"), "output_values")?;
        let capability_values = object_or_empty(obj.get("capability_values"), "capability_values")?;
        for key in ["inputs", "outputs", "capabilities", "metadata"] {
            match plan.get(key) {
                None | Some(Value::Null) => {
                    plan.insert(key.into(), json!({}));
                }
                Some(Value::Object(_)) => {}
                Some(_) => return Err(format!("`plan.{key}` must be an object")),
            }
        }
        if let Some(Value::Object(inputs)) = plan.get("inputs") {
            for (name, def) in inputs {
                if !def.is_object() {
                    return Err(format!("`plan.inputs.{name}` must be an object"));
                }
            }
        }
        if !matches!(plan.get("workflows"), Some(Value::Object(_))) {
            plan.insert("workflows".into(), default_workflows());
        }
        plan.insert("description".into(), Value::String(description.clone()));
        for key in ["data_types", "groups", "policy_types", "policy_triggers"] {
            plan.entry(key).or_insert_with(|| json!({}));
        }
        for key in ["nodes", "node_instances", "deployment_plugins_to_install"] {
            plan.entry(key).or_insert_with(|| json!([]));
        }
        Ok(Fixture {
            id,
            description,
            main_file_name,
            plan,
            state,
            error,
            labels,
            output_values,
            capability_values,
        })
    }

    /// The built-in sample blueprint used when no fixtures are given: every input has a
    /// default, and the `mysql_ip` output comes from the `mysql_host` input.
    pub fn builtin_sample() -> Fixture {
        let doc = json!({
            "id": "sample-mysql",
            "description": "Sample MySQL-compatible database (cloudify-sim built-in)",
            "labels": [{"key": "osb", "value": "true"}],
            "plan": {
                "inputs": {
                    "mysql_host": {
                        "type": "string",
                        "description": "host:port of the database server",
                        "default": "127.0.0.1:3306"
                    },
                    "db_name": {
                        "type": "string",
                        "description": "Database name",
                        "default": "app",
                        "constraints": [{"min_length": 1}, {"max_length": 64}]
                    },
                    "size": {
                        "type": "integer",
                        "description": "Number of replicas",
                        "default": 1,
                        "constraints": [{"in_range": [1, 8]}]
                    },
                    "tier": {
                        "type": "string",
                        "default": "small",
                        "constraints": [{"valid_values": ["small", "large"]}]
                    }
                },
                "outputs": {
                    "mysql_ip": {
                        "description": "host:port of the database",
                        "value": {"get_input": "mysql_host"}
                    },
                    "db_name": {
                        "description": "Database name",
                        "value": {"get_input": "db_name"}
                    }
                },
                "capabilities": {
                    "endpoint": {"value": {"get_input": "mysql_host"}}
                },
                "metadata": {"cloudify_sim": {"builtin": true}}
            }
        });
        match Fixture::from_json(&doc) {
            Ok(f) => f,
            Err(e) => unreachable!("built-in sample blueprint is invalid: {e}"),
        }
    }

    /// Input definitions of the plan.
    pub fn input_defs(&self) -> Map<String, Value> {
        self.plan
            .get("inputs")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

fn object_or_empty(v: Option<&Value>, name: &str) -> Result<Map<String, Value>, String> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(_) => Err(format!("`{name}` must be an object")),
    }
}

/// Labels as `[{"key": k, "value": v}]`, `[{"k": "v"}]` (the PUT form) or `{"k": "v"}`.
pub fn parse_labels(v: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut push = |k: &str, v: &Value| -> Result<(), String> {
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(format!("label `{k}` needs a string value")),
        };
        let key = k.to_ascii_lowercase();
        if key.is_empty()
            || key.len() > 256
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        {
            return Err(format!(
                "The label's key `{k}` contains illegal characters or is too long. Only letters, digits and the characters `-`, `.` and `_` are allowed"
            ));
        }
        if value.contains('"') || value.chars().any(char::is_control) {
            return Err(format!(
                "The label's value `{value}` contains illegal characters"
            ));
        }
        out.push((key, value));
        Ok(())
    };
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                push(k, v)?;
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let m = item.as_object().ok_or("each label is an object")?;
                match (m.get("key"), m.get("value")) {
                    (Some(Value::String(k)), Some(v)) if m.len() <= 4 => push(k, v)?,
                    _ if m.len() == 1 => {
                        for (k, v) in m {
                            push(k, v)?;
                        }
                    }
                    _ => return Err("a label is {\"key\": k, \"value\": v} or {k: v}".into()),
                }
            }
        }
        Some(_) => return Err("labels must be a list".into()),
    }
    Ok(out)
}

fn default_workflows() -> Value {
    let mut m = Map::new();
    for name in [
        "install",
        "uninstall",
        "update",
        "scale",
        "heal",
        "execute_operation",
        "start",
        "stop",
        "restart",
    ] {
        let params = match name {
            "uninstall" => json!({
                "ignore_failure": {"default": false, "type": "boolean"}
            }),
            _ => json!({}),
        };
        m.insert(
            name.into(),
            json!({
                "plugin": "default_workflows",
                "operation": format!("cloudify.plugins.workflows.{name}"),
                "parameters": params,
                "is_cascading": false
            }),
        );
    }
    Value::Object(m)
}

fn python_list(names: &[&String]) -> String {
    let inner: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", inner.join(", "))
}

fn is_intrinsic(v: &Value) -> bool {
    match v {
        Value::Object(m) if m.len() == 1 => m.keys().all(|k| {
            matches!(
                k.as_str(),
                "get_input"
                    | "get_secret"
                    | "get_property"
                    | "get_attribute"
                    | "get_capability"
                    | "get_environment_capability"
                    | "get_sys"
                    | "get_label"
                    | "concat"
                    | "merge"
                    | "string_find"
                    | "string_replace"
                    | "string_split"
                    | "string_lower"
                    | "string_upper"
            )
        }),
        _ => false,
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "integer" => v.is_i64() || v.is_u64(),
        "float" => v.is_number(),
        "boolean" => v.is_boolean(),
        "list" => v.is_array(),
        "dict" => v.is_object(),
        "string" | "textarea" | "regex" => v.is_string(),
        // Object-based types (`blueprint_id`, `deployment_id`, `secret_key`, …) and custom
        // data types: anything goes here.
        _ => true,
    }
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn size_of(v: &Value) -> Option<usize> {
    match v {
        Value::String(s) => Some(s.chars().count()),
        Value::Array(a) => Some(a.len()),
        Value::Object(m) => Some(m.len()),
        _ => None,
    }
}

/// Checks one constraint; `Ok(false)` = violated. Unknown constraints are not enforced.
fn constraint_holds(op: &str, arg: &Value, v: &Value) -> bool {
    let cmp = |f: fn(f64, f64) -> bool| match (num(v), num(arg)) {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    };
    match op {
        "equal" => v == arg,
        "valid_values" => arg.as_array().is_some_and(|a| a.contains(v)),
        "greater_than" => cmp(|a, b| a > b),
        "greater_or_equal" => cmp(|a, b| a >= b),
        "less_than" => cmp(|a, b| a < b),
        "less_or_equal" => cmp(|a, b| a <= b),
        "in_range" => match (arg.as_array().map(Vec::as_slice), num(v)) {
            (Some([lo, hi]), Some(x)) => {
                num(lo).is_some_and(|lo| x >= lo) && num(hi).is_none_or(|hi| x <= hi)
            }
            _ => false,
        },
        "length" => size_of(v).is_some_and(|n| arg.as_u64() == Some(n as u64)),
        "min_length" => size_of(v).is_some_and(|n| arg.as_u64().is_some_and(|m| n as u64 >= m)),
        "max_length" => size_of(v).is_some_and(|n| arg.as_u64().is_some_and(|m| n as u64 <= m)),
        // `pattern` (a Python regex) and the object-type constraints are not enforced.
        _ => true,
    }
}

/// Validates deployment inputs against the plan's input definitions and returns the
/// effective inputs (given values over defaults).
pub fn validate_inputs(
    defs: &Map<String, Value>,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, InputError> {
    let expected: Vec<&String> = defs.keys().collect();
    let mut unknown: Vec<&String> = given.keys().filter(|k| !defs.contains_key(*k)).collect();
    unknown.sort();
    if !unknown.is_empty() {
        return Err(InputError {
            code: "unknown_deployment_input_error",
            message: format!(
                "Unknown input{} {} specified - expected inputs: {}",
                if unknown.len() > 1 { "s" } else { "" },
                python_list(&unknown),
                python_list(&expected)
            ),
        });
    }
    let mut missing: Vec<&String> = defs
        .iter()
        .filter(|(name, def)| {
            !given.contains_key(*name)
                && def.get("default").is_none()
                && def.get("required") != Some(&Value::Bool(false))
        })
        .map(|(name, _)| name)
        .collect();
    missing.sort();
    if !missing.is_empty() {
        return Err(InputError {
            code: "missing_required_deployment_input_error",
            message: format!(
                "Required inputs {} were not specified - expected inputs: {}",
                python_list(&missing),
                python_list(&expected)
            ),
        });
    }
    let mut effective = Map::new();
    for (name, def) in defs {
        let value = match given.get(name).or_else(|| def.get("default")) {
            Some(v) => v.clone(),
            None => Value::Null,
        };
        if given.contains_key(name) && !is_intrinsic(&value) {
            if let Some(ty) = def.get("type").and_then(Value::as_str) {
                if !type_matches(ty, &value) {
                    return Err(InputError {
                        code: "bad_parameters_error",
                        message: format!(
                            "Property type validation failed in '{name}': property '{name}' type is '{ty}', but the value {value} does not match"
                        ),
                    });
                }
            }
            if let Some(Value::Array(constraints)) = def.get("constraints") {
                for c in constraints {
                    let Some((op, arg)) = c.as_object().and_then(|m| m.iter().next()) else {
                        continue;
                    };
                    if !constraint_holds(op, arg, &value) {
                        return Err(InputError {
                            code: "bad_parameters_error",
                            message: format!(
                                "Value {value} of input {name} violates constraint {op}({arg}) operator."
                            ),
                        });
                    }
                }
            }
        }
        effective.insert(name.clone(), value);
    }
    Ok(effective)
}

/// Evaluates an output or capability expression against a deployment's effective inputs.
///
/// `{"get_input": name}` / `{"get_input": [name, key-or-index…]}` read inputs; `{"concat":
/// [...]}` joins; strings may embed `${inputs.NAME}`; other intrinsic functions (runtime
/// attributes, secrets) evaluate to `null`. Arrays and objects are walked recursively.
pub fn evaluate(expr: &Value, inputs: &Map<String, Value>) -> Result<Value, String> {
    match expr {
        Value::Object(m) if m.len() == 1 && m.contains_key("get_input") => {
            let arg = &m["get_input"];
            let (name, path): (&str, &[Value]) = match arg {
                Value::String(s) => (s.as_str(), &[]),
                Value::Array(a) => match a.split_first() {
                    Some((Value::String(s), rest)) => (s.as_str(), rest),
                    _ => return Err(format!("get_input: bad argument {arg}")),
                },
                _ => return Err(format!("get_input: bad argument {arg}")),
            };
            let mut cur = inputs
                .get(name)
                .ok_or_else(|| format!("Input `{name}` does not exist"))?
                .clone();
            for step in path {
                cur = match (step, &cur) {
                    (Value::String(k), Value::Object(o)) => {
                        o.get(k).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Number(i), Value::Array(a)) => i
                        .as_u64()
                        .and_then(|i| a.get(i as usize))
                        .cloned()
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                };
            }
            Ok(cur)
        }
        Value::Object(m) if m.len() == 1 && m.contains_key("concat") => {
            let parts = m["concat"]
                .as_array()
                .ok_or("concat needs a list")?
                .iter()
                .map(|p| evaluate(p, inputs).map(|v| plain_string(&v)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Value::String(parts.concat()))
        }
        v if is_intrinsic(v) => Ok(Value::Null),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), evaluate(v, inputs)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(a) => Ok(Value::Array(
            a.iter()
                .map(|v| evaluate(v, inputs))
                .collect::<Result<_, _>>()?,
        )),
        Value::String(s) if s.contains("${inputs.") => interpolate(s, inputs).map(Value::String),
        other => Ok(other.clone()),
    }
}

fn plain_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn interpolate(s: &str, inputs: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${inputs.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "${inputs.".len()..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{inputs.` in `{s}`"))?;
        let name = &after[..end];
        let v = inputs
            .get(name)
            .ok_or_else(|| format!("Input `{name}` does not exist"))?;
        out.push_str(&plain_string(v));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Loads every fixture in `dir` (files ending in `.json`, sorted by name). Files that are not
/// fixtures are skipped with a warning on stderr.
pub fn load_dir(dir: &Path) -> Result<Vec<Fixture>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    let mut out: Vec<Fixture> = Vec::new();
    for path in paths {
        if path.is_dir() {
            continue;
        }
        let is_json = path.extension().is_some_and(|e| e == "json");
        let warn = |why: &str| {
            eprintln!("cloudify-sim: warning: skipping {}: {why}", path.display());
        };
        if !is_json {
            warn("not a .json fixture");
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                warn(&e.to_string());
                continue;
            }
        };
        let doc: Value = match serde_json::from_str(&text) {
            Ok(d) => d,
            Err(e) => {
                warn(&format!("invalid JSON: {e}"));
                continue;
            }
        };
        match Fixture::from_json(&doc) {
            Ok(f) if out.iter().any(|o| o.id == f.id) => {
                warn(&format!("duplicate blueprint id `{}`", f.id));
            }
            Ok(f) => out.push(f),
            Err(e) => warn(&e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn builtin_sample_deploys_with_empty_inputs_and_reports_mysql_ip() {
        let f = Fixture::builtin_sample();
        let eff = validate_inputs(&f.input_defs(), &Map::new()).unwrap();
        let out = evaluate(&f.plan["outputs"]["mysql_ip"]["value"], &eff).unwrap();
        assert_eq!(out, json!("127.0.0.1:3306"));
    }

    #[test]
    fn unknown_input_is_refused_with_its_error_code() {
        let f = Fixture::builtin_sample();
        let err = validate_inputs(&f.input_defs(), &obj(json!({"nope": 1}))).unwrap_err();
        assert_eq!(err.code, "unknown_deployment_input_error");
        assert!(err.message.contains("'nope'"), "{}", err.message);
    }

    #[test]
    fn missing_required_input_is_refused_with_its_error_code() {
        let defs = obj(json!({"a": {"type": "string"}, "b": {"required": false}}));
        let err = validate_inputs(&defs, &Map::new()).unwrap_err();
        assert_eq!(err.code, "missing_required_deployment_input_error");
        assert!(err.message.starts_with("Required inputs ['a']"));
    }

    #[test]
    fn type_and_constraint_violations_are_refused() {
        let f = Fixture::builtin_sample();
        let defs = f.input_defs();
        assert!(validate_inputs(&defs, &obj(json!({"size": "two"}))).is_err());
        assert!(validate_inputs(&defs, &obj(json!({"size": 9}))).is_err());
        assert!(validate_inputs(&defs, &obj(json!({"tier": "huge"}))).is_err());
        assert!(validate_inputs(&defs, &obj(json!({"db_name": ""}))).is_err());
        let ok = validate_inputs(&defs, &obj(json!({"size": 8, "tier": "large"}))).unwrap();
        assert_eq!(ok["size"], json!(8));
    }

    #[test]
    fn expressions_read_inputs_in_both_forms() {
        let inputs = obj(json!({"h": "db.example", "p": 3307, "d": {"k": ["x", "y"]}}));
        assert_eq!(
            evaluate(&json!("${inputs.h}:${inputs.p}"), &inputs).unwrap(),
            json!("db.example:3307")
        );
        assert_eq!(
            evaluate(&json!({"get_input": ["d", "k", 1]}), &inputs).unwrap(),
            json!("y")
        );
        assert_eq!(
            evaluate(
                &json!({"concat": [{"get_input": "h"}, ":", {"get_input": "p"}]}),
                &inputs
            )
            .unwrap(),
            json!("db.example:3307")
        );
        assert_eq!(
            evaluate(&json!({"get_attribute": ["vm", "ip"]}), &inputs).unwrap(),
            Value::Null
        );
        assert!(evaluate(&json!({"get_input": "missing"}), &inputs).is_err());
    }

    #[test]
    fn labels_accept_the_three_forms() {
        let a = parse_labels(Some(&json!([{"key": "A", "value": "1"}]))).unwrap();
        let b = parse_labels(Some(&json!([{"a": "1"}]))).unwrap();
        let c = parse_labels(Some(&json!({"a": "1"}))).unwrap();
        assert_eq!(a, b);
        assert_eq!(b, c);
        assert!(parse_labels(Some(&json!([{"bad key": "1"}]))).is_err());
    }

    #[test]
    fn fixture_without_plan_is_refused() {
        assert!(Fixture::from_json(&json!({"id": "x"})).is_err());
        assert!(Fixture::from_json(&json!({"id": "bad id", "plan": {}})).is_err());
        let f = Fixture::from_json(&json!({"id": "x", "plan": {}})).unwrap();
        assert_eq!(f.state, "uploaded");
        assert!(f.plan["workflows"]["install"].is_object());
    }
}
