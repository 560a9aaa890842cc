//! The Vault binder's config document (`schemas/binder-config.schema.json`, described in
//! `schemas/binder-config.md`): its typed form, how it is rendered for one binding, and the
//! per-instance names derived from validated IDs. Pure: no I/O; must not import reqwest.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::template::{Field, Scope, render_document, value_text};
use crate::domain::error::BinderError;

/// The binder config, rendered for one binding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinderConfig {
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    /// Format version; 1 (the default) is the only one.
    #[serde(default = "one")]
    pub version: u32,
    pub engine: Engine,
    pub connection: Connection,
    pub role: Role,
    pub credentials: CredentialsSpec,
    /// Deployment outputs added to the credentials as they are (the allow-list).
    #[serde(default)]
    pub outputs: Vec<String>,
}

fn one() -> u32 {
    1
}

fn default_mount() -> String {
    "database".into()
}

fn yes() -> bool {
    true
}

/// The database secrets engine.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engine {
    /// Mount path of the database secrets engine (default `database`).
    #[serde(default = "default_mount")]
    pub mount: String,
    /// The database plugin, e.g. `mysql-database-plugin`.
    pub plugin: String,
}

/// The per-instance database connection (`<engine>/config/<name>`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// The plugin's connection URL; Vault fills in `{{username}}` and `{{password}}`.
    pub url: String,
    /// The admin user Vault connects as.
    pub username: String,
    /// The admin password, literally …
    #[serde(default)]
    pub password: Option<SecretString>,
    /// … or read from a Vault KV secret.
    #[serde(default)]
    pub password_ref: Option<KvRef>,
    /// Whether Vault checks the connection when it is written (default true).
    #[serde(default = "yes")]
    pub verify: bool,
    #[serde(default)]
    pub max_open_connections: Option<u32>,
    #[serde(default)]
    pub username_template: Option<String>,
    #[serde(default)]
    pub password_policy: Option<String>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("password_ref", &self.password_ref)
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

/// A value kept in a Vault KV secret: `path` is `MOUNT/PATH` as for the config itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KvRef {
    pub path: String,
    pub key: String,
}

/// A TTL as Vault takes it: `"1h"` or seconds.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum Ttl {
    Seconds(u64),
    Text(String),
}

/// The per-instance role (`<engine>/roles/<name>`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    pub creation_statements: Vec<String>,
    #[serde(default)]
    pub revocation_statements: Vec<String>,
    #[serde(default)]
    pub rollback_statements: Vec<String>,
    #[serde(default)]
    pub renew_statements: Vec<String>,
    #[serde(default)]
    pub default_ttl: Option<Ttl>,
    #[serde(default)]
    pub max_ttl: Option<Ttl>,
}

/// How the credentials map is built.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSpec {
    /// servicebinding.io `type`, e.g. `mysql`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `provider` (default `cloudify`).
    #[serde(default)]
    pub provider: Option<String>,
    /// When set, `uri` = `SCHEME://username:password@host[:port][/database]`.
    #[serde(default)]
    pub uri_scheme: Option<String>,
    /// Further entries (`host`, `port`, `database` …), expressions allowed.
    #[serde(default)]
    pub values: BTreeMap<String, Value>,
}

/// Keys the binder sets itself; `values` and outputs cannot override them.
pub const GENERATED_KEYS: &[&str] = &["username", "password", "uri", "type", "provider"];

/// Which check a rendered string gets, by where it is in the document.
fn field_of(path: &[&str]) -> Field {
    match path {
        ["connection", "url"] => Field::Dsn,
        ["role", statements] if statements.ends_with("_statements") => Field::Sql,
        ["credentials", ..] => Field::Data,
        _ => Field::Vault,
    }
}

impl BinderConfig {
    /// Parses the stored document and renders it for one binding. The document is JSON
    /// already; expressions are substituted inside its strings only.
    pub fn render(doc: &Value, scope: &Scope<'_>) -> Result<Self, BinderError> {
        if doc.get("__path__").is_some() || doc.get("__credpath__").is_some() {
            return Err(BinderError::Config(
                "this binder config is in the original broker's format (__path__/__credpath__) \
                 and must be converted first (adapters::vault::legacy)"
                    .into(),
            ));
        }
        if !doc.is_object() {
            return Err(BinderError::Config(
                "the binder config must be a JSON object".into(),
            ));
        }
        let rendered = render_document(doc, scope, &field_of)?;
        let config: Self = serde_json::from_value(rendered).map_err(|e| {
            BinderError::Config(format!("the binder config does not match its schema: {e}"))
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), BinderError> {
        let bad = |m: String| Err(BinderError::Config(m));
        if self.version != 1 {
            return bad(format!(
                "binder config version {} is not known",
                self.version
            ));
        }
        check_mount_path("engine.mount", &self.engine.mount)?;
        if self.engine.plugin.trim().is_empty() {
            return bad("engine.plugin is empty".into());
        }
        match (&self.connection.password, &self.connection.password_ref) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return bad("connection needs exactly one of password and password_ref".into());
            }
        }
        if let Some(r) = &self.connection.password_ref {
            check_mount_path("connection.password_ref.path", &r.path)?;
        }
        if self
            .role
            .creation_statements
            .iter()
            .all(|s| s.trim().is_empty())
        {
            return bad("role.creation_statements is empty".into());
        }
        for (k, v) in &self.credentials.values {
            if GENERATED_KEYS.contains(&k.as_str()) {
                return bad(format!(
                    "credentials.values.{k} is set by the binder and cannot be configured"
                ));
            }
            if v.is_object() || v.is_array() {
                return bad(format!(
                    "credentials.values.{k} must be a string, number or boolean"
                ));
            }
        }
        for name in &self.outputs {
            if GENERATED_KEYS.contains(&name.as_str()) {
                return bad(format!(
                    "output {name:?} would shadow a generated credential; it cannot be allow-listed"
                ));
            }
        }
        Ok(())
    }

    /// The `values` as text.
    pub fn credential_values(&self) -> impl Iterator<Item = (&str, String)> {
        self.credentials
            .values
            .iter()
            .map(|(k, v)| (k.as_str(), value_text(v)))
    }
}

/// A salted SHA-256 digest of what `configure` writes for an instance (engine mount, the
/// connection body with the admin password, the role body), kept in the instance's KV record
/// so that binds skip rewriting an unchanged connection: Vault resets a connection's pool
/// when its config is written, which failed binds reading credentials meanwhile. The salt is
/// random per record (128 bits), so the digest does not let anyone test password guesses
/// against a table; the password itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub salt: String,
    pub digest: String,
}

impl Fingerprint {
    /// A new random salt.
    pub fn new_salt() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }

    /// The digest of `parts` with this salt.
    pub fn of(salt: &str, parts: &[&Value]) -> Self {
        let mut h = Sha256::new();
        h.update(b"cloudify-osb/instance-fingerprint/v1\0");
        h.update(salt.as_bytes());
        for part in parts {
            h.update(b"\0");
            // serde_json writes object keys in a fixed order and no insignificant space.
            h.update(part.to_string().as_bytes());
        }
        Self {
            salt: salt.to_owned(),
            digest: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// Whether `parts` are what this fingerprint was made of.
    pub fn matches(&self, parts: &[&Value]) -> bool {
        Self::of(&self.salt, parts).digest == self.digest
    }
}

/// Checks a Vault mount or KV path: `/`-separated segments of `[A-Za-z0-9._-]`, never `.` or
/// `..`, no leading or trailing `/`.
pub fn check_mount_path(what: &str, path: &str) -> Result<(), BinderError> {
    let ok = !path.is_empty()
        && path.len() <= 512
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    if ok {
        Ok(())
    } else {
        Err(BinderError::Config(format!(
            "{what} must be /-separated segments of letters, digits, '.', '_' and '-'"
        )))
    }
}

/// The name of an instance's connection and role: `<prefix>-<instance id>`, shortened with a
/// hash when long, so that it stays within Vault's and the plugins' limits and never
/// collides between instances.
pub fn instance_object_name(prefix: &str, instance_id: &str) -> String {
    const MAX: usize = 64;
    let full = format!("{prefix}-{instance_id}");
    if full.len() <= MAX {
        return full;
    }
    let digest = Sha256::digest(instance_id.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    // Instance IDs are ASCII (validated), so byte slicing is on character boundaries.
    let keep = MAX - prefix.len() - hash.len() - 2;
    format!(
        "{prefix}-{}-{hash}",
        &instance_id[..keep.min(instance_id.len())]
    )
}

/// Checks the broker's name prefix for per-instance objects: `[a-z][a-z0-9-]{0,19}`.
pub fn check_prefix(prefix: &str) -> Result<(), BinderError> {
    let ok = (1..=20).contains(&prefix.len())
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(BinderError::Config(
            "the Vault name prefix must match [a-z][a-z0-9-]{0,19}".into(),
        ))
    }
}

/// Percent-encodes a URI userinfo component (RFC 3986 unreserved characters stay).
pub fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use serde_json::{Map, json};

    pub(crate) fn example() -> Value {
        json!({
            "engine": {"mount": "database", "plugin": "mysql-database-plugin"},
            "connection": {
                "url": "{{username}}:{{password}}@tcp({{ outputs.mysql_ip }}:{{ outputs.port }})/",
                "username": "vaultadmin",
                "password": "adm1n-pw"
            },
            "role": {
                "creation_statements": [
                    "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'",
                    "GRANT SELECT ON `{{ outputs.database }}`.* TO '{{name}}'@'%'"
                ],
                "default_ttl": "1h",
                "max_ttl": 86400
            },
            "credentials": {
                "type": "mysql",
                "uri_scheme": "mysql",
                "values": {
                    "host": "{{ outputs.mysql_ip }}",
                    "port": "{{ outputs.port }}",
                    "database": "{{ outputs.database }}",
                    "note": "{{ outputs.note }}",
                    "replicas": 2
                }
            },
            "outputs": ["mysql_ip"]
        })
    }

    fn render(doc: &Value, outputs: Value) -> Result<BinderConfig, BinderError> {
        let outputs: Map<String, Value> = outputs.as_object().cloned().unwrap();
        let params = Map::new();
        let scope = Scope {
            outputs: &outputs,
            instance_id: "i1",
            deployment_id: "osb-i1",
            binding_id: Some("b1"),
            parameters: &params,
            context: None,
        };
        BinderConfig::render(doc, &scope)
    }

    fn good_outputs() -> Value {
        json!({"mysql_ip": "10.1.2.3", "port": 3306, "database": "app_db", "note": "a \"quoted\" {{ note }} }"})
    }

    #[test]
    fn the_example_renders_into_typed_fields() {
        let c = render(&example(), good_outputs()).unwrap();
        assert_eq!(
            c.connection.url,
            "{{username}}:{{password}}@tcp(10.1.2.3:3306)/"
        );
        assert_eq!(
            c.connection.password.as_ref().unwrap().expose_secret(),
            "adm1n-pw"
        );
        assert_eq!(
            c.role.creation_statements[1],
            "GRANT SELECT ON `app_db`.* TO '{{name}}'@'%'"
        );
        let values: BTreeMap<_, _> = c.credential_values().collect();
        assert_eq!(values["port"], "3306");
        assert_eq!(values["replicas"], "2");
        assert_eq!(values["note"], "a \"quoted\" {{ note }} }");
        assert!(c.connection.verify);
    }

    #[test]
    fn the_debug_of_a_connection_hides_the_password() {
        let c = render(&example(), good_outputs()).unwrap();
        let shown = format!("{:?}", c.connection);
        assert!(!shown.contains("adm1n-pw"), "{shown}");
    }

    #[test]
    fn a_missing_output_fails_the_render_naming_it() {
        let err = render(&example(), json!({"mysql_ip": "h", "port": 1, "note": ""})).unwrap_err();
        assert!(
            matches!(&err, BinderError::MissingOutput(n) if n == "database"),
            "{err}"
        );
    }

    #[test]
    fn an_output_that_would_break_an_sql_statement_is_refused() {
        let mut outputs = good_outputs();
        outputs["database"] = json!("x`.* TO 'a'@'%'; DROP DATABASE mysql; --");
        assert!(matches!(
            render(&example(), outputs),
            Err(BinderError::Config(_))
        ));
    }

    #[test]
    fn configured_values_cannot_override_generated_credentials() {
        let mut doc = example();
        doc["credentials"]["values"]["password"] = json!("x");
        assert!(matches!(
            render(&doc, good_outputs()),
            Err(BinderError::Config(_))
        ));
        let mut doc = example();
        doc["outputs"] = json!(["username"]);
        assert!(matches!(
            render(&doc, good_outputs()),
            Err(BinderError::Config(_))
        ));
    }

    #[test]
    fn unknown_fields_and_the_legacy_format_are_config_errors() {
        let mut doc = example();
        doc["extra"] = json!(1);
        assert!(matches!(
            render(&doc, good_outputs()),
            Err(BinderError::Config(_))
        ));
        let legacy = json!({"__path__": "database/config/x", "__credpath__": "database/creds/r"});
        assert!(matches!(
            render(&legacy, good_outputs()),
            Err(BinderError::Config(_))
        ));
    }

    #[test]
    fn mount_paths_refuse_traversal_and_odd_characters() {
        for bad in ["", "/db", "db/", "a/../b", "a//b", ".", "db?x", "d b"] {
            assert!(check_mount_path("m", bad).is_err(), "{bad:?}");
        }
        for good in ["database", "team-a/db", "kv_2.x"] {
            assert!(check_mount_path("m", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn long_instance_ids_get_short_distinct_names() {
        let a = "a".repeat(200);
        let b = format!("{}b", "a".repeat(199));
        let na = instance_object_name("osb", &a);
        let nb = instance_object_name("osb", &b);
        assert!(na.len() <= 64 && nb.len() <= 64);
        assert_ne!(na, nb);
        assert_eq!(instance_object_name("osb", "inst-1"), "osb-inst-1");
    }

    #[test]
    fn the_schema_example_renders_and_uses_every_field_the_schema_names() {
        let schema: Value =
            serde_json::from_str(include_str!("../../../schemas/binder-config.schema.json"))
                .unwrap();
        let example: Value =
            serde_json::from_str(include_str!("../../../schemas/binder-config.example.json"))
                .unwrap();
        fn fields(schema: &Value) -> Vec<String> {
            schema["properties"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        }
        for key in fields(&schema) {
            assert!(example.get(&key).is_some(), "example lacks {key}");
            for sub in fields(&schema["properties"][&key]) {
                // password and password_ref exclude each other; the other tests use password.
                if key == "connection" && sub == "password" {
                    continue;
                }
                assert!(
                    example[&key].get(&sub).is_some(),
                    "example lacks {key}.{sub}"
                );
            }
        }
        let outputs: Map<String, Value> =
            json!({"mysql_ip": "10.0.0.9", "mysql_port": 3306, "database": "shop"})
                .as_object()
                .cloned()
                .unwrap();
        let params = Map::new();
        let context = json!({"namespace": "team-a"});
        let scope = Scope {
            outputs: &outputs,
            instance_id: "i1",
            deployment_id: "osb-i1",
            binding_id: Some("b1"),
            parameters: &params,
            context: Some(&context),
        };
        let c = BinderConfig::render(&example, &scope).unwrap();
        assert_eq!(
            c.connection.url,
            "{{username}}:{{password}}@tcp(10.0.0.9:3306)/"
        );
        assert!(
            c.connection
                .username_template
                .unwrap()
                .contains("{{ printf")
        );
        assert_eq!(c.credentials.values["namespace"], json!("team-a"));
    }

    #[test]
    fn fingerprints_are_salted_and_follow_every_part() {
        let conn = json!({"url": "x", "password": "adm1n-pw"});
        let role = json!({"db_name": "osb-1"});
        let a = Fingerprint::of("salt-1", &[&conn, &role]);
        assert!(a.matches(&[&conn, &role]));
        assert!(!a.digest.contains("adm1n"));
        assert_ne!(a.digest, Fingerprint::of("salt-2", &[&conn, &role]).digest);
        let other = json!({"url": "x", "password": "adm1n-pw2"});
        assert!(!a.matches(&[&other, &role]));
        assert!(!a.matches(&[&role, &conn]));
        assert_ne!(Fingerprint::new_salt(), Fingerprint::new_salt());
    }

    #[test]
    fn userinfo_is_percent_encoded() {
        assert_eq!(encode_userinfo("a-b_c.d~"), "a-b_c.d~");
        assert_eq!(encode_userinfo("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
