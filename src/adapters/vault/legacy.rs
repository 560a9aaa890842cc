//! The original broker's binder config format, read as a legacy mode (issue 6,
//! `reference/original-broker.md` §7.1, `schemas/binder-config.md` "Legacy documents"):
//!
//! ```json
//! {"__credoutputs__": ["mysql_ip"], "__credpath__": "database/creds/my-role",
//!  "__path__": "database/config/vault_test", "plugin_name": "mysql-database-plugin",
//!  "connection_url": "demo:new_password@tcp({{[\"mysql_ip\"]}})/",
//!  "allowed_roles": "my-role", "username": "demo", "password": "new_password"}
//! ```
//!
//! Read without its defects (B13–B15): the connection named by `__path__` and the role named
//! by `__credpath__` are per-instance copies (`<name>-<instance>`), the role cloned from the
//! one Vault holds under that name (the template an admin wrote) with `db_name` rewritten and
//! the connection's `allowed_roles` naming the copy only; `__credoutputs__` is the output
//! allow-list; the special keys are never sent to Vault; `{{["a"]["b"]}}` is a subscript
//! chain into the outputs (never evaluated as code), anything else inside `{{[`…`]}}` is an
//! error. The document is converted to the current format ([`Legacy::convert`]) and then
//! rendered as any other, so every check of the current format applies.
//!
//! Pure: no I/O; must not import reqwest.

use serde_json::{Map, Value, json};

use super::config::{check_mount_path, instance_object_name};
use super::template::map_expressions;
use crate::domain::error::BinderError;

/// The special keys of the original format.
pub const SPECIAL_KEYS: &[&str] = &["__path__", "__credpath__", "__credoutputs__"];

/// Whether `doc` is in the original broker's format.
pub fn is_legacy(doc: &Value) -> bool {
    SPECIAL_KEYS.iter().any(|k| doc.get(k).is_some())
}

/// A legacy document, parsed (expressions not yet substituted).
#[derive(Debug, Clone, PartialEq)]
pub struct Legacy {
    /// The database engine mount (what precedes `/config/` and `/creds/`).
    pub engine: String,
    /// The connection name in `__path__`, e.g. `vault_test`.
    pub connection: String,
    /// The role name in `__credpath__`: the template cloned per instance.
    pub role: String,
    /// `__credoutputs__`.
    pub outputs: Vec<String>,
    /// The connection fields, special keys removed, expressions converted.
    body: Map<String, Value>,
}

/// The per-instance names of a legacy document's connection and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyNames {
    pub connection: String,
    pub role: String,
}

fn bad(m: impl Into<String>) -> BinderError {
    BinderError::Config(m.into())
}

/// Splits `MOUNT/<kind>/NAME` (the mount may have several segments).
fn split_path(key: &str, path: &str, kind: &str) -> Result<(String, String), BinderError> {
    check_mount_path(key, path)?;
    let marker = format!("/{kind}/");
    let Some(at) = path.rfind(&marker) else {
        return Err(bad(format!(
            "{key} must be ENGINE_MOUNT/{kind}/NAME, e.g. database/{kind}/x; it is {path:?}"
        )));
    };
    let (mount, name) = (&path[..at], &path[at + marker.len()..]);
    if mount.is_empty() || name.is_empty() || name.contains('/') {
        return Err(bad(format!("{key} must be ENGINE_MOUNT/{kind}/NAME")));
    }
    // Room for the per-instance suffix within the 64 characters of an object name.
    if name.len() > 40 {
        return Err(bad(format!(
            "the name in {key} is longer than 40 characters"
        )));
    }
    Ok((mount.to_owned(), name.to_owned()))
}

/// The connection fields the original format sent that the current format knows, and where
/// they go. `allowed_roles` is dropped: the binder sets it to the instance's role.
const CONNECTION_KEYS: &[&str] = &[
    "plugin_name",
    "connection_url",
    "username",
    "password",
    "allowed_roles",
    "verify_connection",
    "max_open_connections",
    "username_template",
    "password_policy",
];

impl Legacy {
    /// Parses a legacy document. Unknown keys are refused (only the intended fields are ever
    /// written, B14).
    pub fn parse(doc: &Value) -> Result<Self, BinderError> {
        let map = doc
            .as_object()
            .ok_or_else(|| bad("the binder config must be a JSON object"))?;
        let text = |k: &str| -> Result<&str, BinderError> {
            map.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("the legacy binder config needs {k} (a string)")))
        };
        let (engine, connection) = split_path("__path__", text("__path__")?, "config")?;
        let (role_engine, role) = split_path("__credpath__", text("__credpath__")?, "creds")?;
        if role_engine != engine {
            return Err(bad(format!(
                "__path__ and __credpath__ name different engine mounts ({engine:?}, {role_engine:?})"
            )));
        }
        let outputs = match map.get("__credoutputs__") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad("__credoutputs__ must be a list of output names"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("__credoutputs__ must be a list of output names")),
        };
        let mut body = Map::new();
        for (k, v) in map {
            if SPECIAL_KEYS.contains(&k.as_str()) {
                continue;
            }
            if !CONNECTION_KEYS.contains(&k.as_str()) {
                return Err(bad(format!(
                    "the legacy binder config has key {k:?}, which cloudify-osb does not send to \
                     Vault; known: {}",
                    CONNECTION_KEYS.join(", ")
                )));
            }
            body.insert(k.clone(), convert_expressions(v)?);
        }
        for k in ["plugin_name", "connection_url", "username", "password"] {
            if !body.get(k).is_some_and(Value::is_string) {
                return Err(bad(format!(
                    "the legacy binder config needs {k} (a string)"
                )));
            }
        }
        Ok(Self {
            engine,
            connection,
            role,
            outputs,
            body,
        })
    }

    /// Where the template role is: `<engine>/roles/<role>`.
    pub fn template_role_path(&self) -> String {
        format!("{}/roles/{}", self.engine, self.role)
    }

    /// The per-instance names: `<name>-<instance>`, shortened with a hash when long.
    pub fn names(&self, instance_id: &str) -> LegacyNames {
        LegacyNames {
            connection: instance_object_name(&self.connection, instance_id),
            role: instance_object_name(&self.role, instance_id),
        }
    }

    /// The document in the current format (`schemas/binder-config.schema.json`), with the
    /// role taken from `template` (the `data` of Vault's `GET <engine>/roles/<role>`).
    pub fn convert(&self, template: &Value) -> Result<Value, BinderError> {
        let field = |k: &str| self.body.get(k).cloned();
        let plugin = field("plugin_name").unwrap_or(Value::Null);
        let mut connection = Map::new();
        connection.insert("url".into(), field("connection_url").unwrap_or_default());
        connection.insert("username".into(), field("username").unwrap_or_default());
        connection.insert("password".into(), field("password").unwrap_or_default());
        if let Some(v) = field("verify_connection") {
            let verify = match &v {
                Value::Bool(b) => *b,
                Value::String(s) if s == "true" => true,
                Value::String(s) if s == "false" => false,
                _ => return Err(bad("verify_connection must be true or false")),
            };
            connection.insert("verify".into(), json!(verify));
        }
        if let Some(v) = field("max_open_connections") {
            let n = match &v {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse::<u64>().ok(),
                _ => None,
            }
            .ok_or_else(|| bad("max_open_connections must be a whole number"))?;
            connection.insert("max_open_connections".into(), json!(n));
        }
        for k in ["username_template", "password_policy"] {
            if let Some(v) = field(k) {
                connection.insert(k.into(), v);
            }
        }

        let template = template
            .as_object()
            .ok_or_else(|| bad(format!("{} is not a role", self.template_role_path())))?;
        let mut role = Map::new();
        for k in [
            "creation_statements",
            "revocation_statements",
            "rollback_statements",
            "renew_statements",
        ] {
            let statements: Vec<Value> = match template.get(k) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter(|s| s.as_str().is_some_and(|s| !s.trim().is_empty()))
                    .cloned()
                    .collect(),
                Some(Value::String(s)) if !s.trim().is_empty() => vec![json!(s)],
                Some(Value::String(_)) => Vec::new(),
                Some(_) => {
                    return Err(bad(format!(
                        "{} has a {k} that is not a list of statements",
                        self.template_role_path()
                    )));
                }
            };
            if !statements.is_empty() || k == "creation_statements" {
                role.insert(k.into(), Value::Array(statements));
            }
        }
        for k in ["default_ttl", "max_ttl"] {
            match template.get(k) {
                Some(Value::Number(n)) if n.as_u64().is_some_and(|s| s > 0) => {
                    role.insert(k.into(), Value::Number(n.clone()));
                }
                Some(Value::String(s)) if !s.is_empty() && s != "0" => {
                    role.insert(k.into(), json!(s));
                }
                _ => {}
            }
        }

        let plugin_name = plugin.as_str().unwrap_or_default();
        Ok(json!({
            "$schema": "https://github.com/cloudify-osb/cloudify-osb/schemas/binder-config.schema.json",
            "version": 1,
            "engine": { "mount": self.engine, "plugin": plugin },
            "connection": connection,
            "role": role,
            "credentials": { "type": credentials_type(plugin_name) },
            "outputs": self.outputs,
        }))
    }
}

/// servicebinding.io `type` for a database plugin.
fn credentials_type(plugin: &str) -> String {
    let base = plugin
        .trim_end_matches("-database-plugin")
        .trim_end_matches("-legacy");
    match base {
        "mysql" | "mysql-aurora" | "mysql-rds" => "mysql".into(),
        "postgresql" => "postgresql".into(),
        "mssql" => "sqlserver".into(),
        "" => "database".into(),
        other => other.into(),
    }
}

/// Converts `{{["a"]["b"]}}` subscript chains in every string value to `{{ outputs.a.b }}`.
fn convert_expressions(value: &Value) -> Result<Value, BinderError> {
    Ok(match value {
        Value::String(s) => Value::String(convert_str(s)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(convert_expressions)
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| Ok((k.clone(), convert_expressions(v)?)))
                .collect::<Result<_, BinderError>>()?,
        ),
        other => other.clone(),
    })
}

/// One string: `{{[…]}}` becomes `{{ outputs.… }}`; other `{{ … }}` stay as they are.
pub fn convert_str(input: &str) -> Result<String, BinderError> {
    map_expressions(input, |inner| {
        if !inner.trim_start().starts_with('[') {
            return Ok(None);
        }
        let keys = subscripts(inner).ok_or_else(|| {
            bad(format!(
                "{{{{{inner}}}}} is not a subscript chain like {{{{[\"mysql_ip\"]}}}} (the \
                 original broker evaluated it as Python; cloudify-osb reads only \
                 [\"name\"] and [number] subscripts)"
            ))
        })?;
        Ok(Some(format!("{{{{ outputs.{} }}}}", keys.join("."))))
    })
}

/// `["a"][0]['b']` (spaces allowed between the parts) → `a`, `0`, `b`. Keys are limited to
/// what the current expressions allow: `[A-Za-z0-9_-]+`.
fn subscripts(inner: &str) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    let mut rest = inner.trim();
    while !rest.is_empty() {
        rest = rest.strip_prefix('[')?.trim_start();
        let (key, after) = match rest.chars().next()? {
            q @ ('"' | '\'') => {
                let body = &rest[1..];
                let close = body.find(q)?;
                (&body[..close], &body[close + 1..])
            }
            c if c.is_ascii_digit() => {
                let len = rest.bytes().take_while(u8::is_ascii_digit).count();
                (&rest[..len], &rest[len..])
            }
            _ => return None,
        };
        let ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return None;
        }
        keys.push(key.to_owned());
        rest = after.trim_start().strip_prefix(']')?.trim_start();
    }
    (!keys.is_empty()).then_some(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Value {
        serde_json::from_str(include_str!(
            "../../../examples/mariadb/binder-config.legacy.json"
        ))
        .unwrap()
    }

    /// `vault read database/roles/my-role` after the original `3-setrole` script.
    fn template() -> Value {
        json!({
            "db_name": "vault_test",
            "creation_statements": ["CREATE USER '{{name}}'@'%' identified by '{{password}}'; grant select on *.* to '{{name}}'@'%';"],
            "revocation_statements": [],
            "rollback_statements": [],
            "renew_statements": [],
            "default_ttl": 3600,
            "max_ttl": 86400,
            "credential_type": "password"
        })
    }

    #[test]
    fn the_original_example_parses_and_converts() {
        let doc = example();
        assert!(is_legacy(&doc));
        let l = Legacy::parse(&doc).unwrap();
        assert_eq!(l.engine, "database");
        assert_eq!(l.connection, "vault_test");
        assert_eq!(l.role, "my-role");
        assert_eq!(l.outputs, vec!["mysql_ip".to_owned()]);
        assert_eq!(l.template_role_path(), "database/roles/my-role");
        let names = l.names("inst-1");
        assert_eq!(names.connection, "vault_test-inst-1");
        assert_eq!(names.role, "my-role-inst-1");

        let c = l.convert(&template()).unwrap();
        assert_eq!(
            c["engine"],
            json!({"mount": "database", "plugin": "mysql-database-plugin"})
        );
        assert_eq!(
            c["connection"]["url"],
            json!("demo:new_password@tcp({{ outputs.mysql_ip }})/")
        );
        assert_eq!(c["connection"]["password"], json!("new_password"));
        assert_eq!(c["role"]["default_ttl"], json!(3600));
        assert!(c["role"].get("db_name").is_none());
        assert!(c["role"].get("revocation_statements").is_none());
        assert_eq!(c["credentials"]["type"], json!("mysql"));
        assert_eq!(c["outputs"], json!(["mysql_ip"]));
        let text = c.to_string();
        for k in SPECIAL_KEYS.iter().chain(&["allowed_roles", "plugin_name"]) {
            assert!(!text.contains(k), "{k} is not carried over: {text}");
        }
    }

    #[test]
    fn the_converted_example_validates_against_the_schema() {
        let schema: Value =
            serde_json::from_str(include_str!("../../../schemas/binder-config.schema.json"))
                .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let c = Legacy::parse(&example())
            .unwrap()
            .convert(&template())
            .unwrap();
        let errors: Vec<String> = validator.iter_errors(&c).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{c}");
    }

    #[test]
    fn subscript_chains_become_output_expressions_and_nothing_else_is_evaluated() {
        assert_eq!(
            convert_str(r#"a{{["x"]}}b{{ ['y'][0]["z-1"] }}c{{name}}"#).unwrap(),
            "a{{ outputs.x }}b{{ outputs.y.0.z-1 }}c{{name}}"
        );
        // The original scanner's stray `}` (B13) does not come back.
        assert_eq!(
            convert_str(r#"{{["a"]}}:{{["b"]}}"#).unwrap(),
            "{{ outputs.a }}:{{ outputs.b }}"
        );
        for bad in [
            r#"{{["a"] + __import__('os')}}"#,
            r#"{{["a"].keys()}}"#,
            r#"{{[x]}}"#,
            r#"{{["a b"]}}"#,
            r#"{{["a"}}"#,
            r#"{{[]}}"#,
        ] {
            assert!(convert_str(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_legacy_documents_are_config_errors() {
        let mut doc = example();
        doc["__path__"] = json!("database/vault_test");
        assert!(Legacy::parse(&doc).is_err());
        let mut doc = example();
        doc["__credpath__"] = json!("other/creds/my-role");
        assert!(Legacy::parse(&doc).is_err());
        let mut doc = example();
        doc["__path__"] = json!("../config/x");
        assert!(Legacy::parse(&doc).is_err());
        let mut doc = example();
        doc["__path__"] = json!(format!("database/config/{}", "x".repeat(41)));
        assert!(Legacy::parse(&doc).is_err());
        let mut doc = example();
        doc["root_rotation_statements"] = json!(["x"]);
        assert!(Legacy::parse(&doc).is_err());
        let mut doc = example();
        doc.as_object_mut().unwrap().remove("password");
        assert!(Legacy::parse(&doc).is_err());
        let mut doc = example();
        doc["__credoutputs__"] = json!("mysql_ip");
        assert!(Legacy::parse(&doc).is_err());
        let l = Legacy::parse(&example()).unwrap();
        assert!(l.convert(&json!("not a role")).is_err());
    }

    #[test]
    fn connection_options_are_carried_over_typed() {
        let mut doc = example();
        doc["verify_connection"] = json!("false");
        doc["max_open_connections"] = json!("4");
        let c = Legacy::parse(&doc).unwrap().convert(&template()).unwrap();
        assert_eq!(c["connection"]["verify"], json!(false));
        assert_eq!(c["connection"]["max_open_connections"], json!(4));
    }
}
