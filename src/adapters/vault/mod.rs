//! The Vault binder (registry name `vault`, DESIGN.md §5–§6): per instance, a database
//! secrets engine connection and role; per binding, credentials from `<engine>/creds/<role>`
//! with their lease, kept in the broker's KV v2 mount for identical re-PUTs and fetches.
//!
//! Vault paths it writes (all derived from validated IDs, never shared between instances):
//! - `<engine>/config/<prefix>-<instance>` and `<engine>/roles/<prefix>-<instance>`;
//! - `<kv>/data/instances/<instance>`: what was written for the instance (non-secret), so
//!   that `remove_instance` finds it even if the binder config changed meanwhile, with a
//!   salted fingerprint of the written contents so that binds skip unchanged writes;
//! - `<kv>/data/bindings/<instance>/<binding>`: the credentials handed out.
//!
//! Stateless per call (B16): every call gets what it needs. Never logs or returns a secret.
//! Must not be imported by `domain`.

pub mod auth;
mod client;
pub mod config;
pub mod legacy;
pub mod template;

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use self::client::{Reply, VaultClient};
use self::config::{BinderConfig, Fingerprint, check_mount_path, check_prefix, encode_userinfo};
use self::legacy::{Legacy, is_legacy};
use self::template::Scope;
use crate::domain::binding::{Binding, Credentials, LeaseTimes};
use crate::domain::catalog::ServiceSettings;
use crate::domain::error::BinderError;
use crate::domain::instance::Instance;
use crate::domain::ports::{BindContext, Binder, Bound};

pub use self::auth::VaultAuth;
#[cfg(feature = "aws")]
pub use self::auth::aws_iam::AwsIam;
pub use self::client::AuthStats;
pub use self::config::instance_object_name;

/// Registry name.
pub const NAME: &str = "vault";

/// Checks a binder config location as the service settings hold it: `MOUNT/PATH`.
pub fn check_config_location(location: &str) -> Result<(), BinderError> {
    check_mount_path("the binder config location", location)?;
    if !location.contains('/') {
        return Err(BinderError::Config(
            "the binder config location must be MOUNT/PATH, e.g. cloudify-osb/binders/mariadb"
                .into(),
        ));
    }
    Ok(())
}

/// How to reach Vault and where the broker keeps its own data there.
pub struct VaultSettings {
    /// `scheme://host[:port]` (`VAULT_ADDR`).
    pub addr: String,
    /// How the broker logs in: `VAULT_TOKEN`, AppRole or AWS IAM.
    pub auth: VaultAuth,
    /// The broker-owned KV v2 mount (`VAULT_KV_MOUNT`, default `cloudify-osb`).
    pub kv_mount: String,
    /// Prefix of per-instance connection and role names (default `osb`).
    pub name_prefix: String,
    /// Per-request timeout (connecting: at most 5 s).
    pub timeout: Duration,
}

impl VaultSettings {
    /// Settings with the defaults for everything but address and auth (a `SecretString` is
    /// a static token).
    pub fn new(addr: impl Into<String>, auth: impl Into<VaultAuth>) -> Self {
        Self {
            addr: addr.into(),
            auth: auth.into(),
            kv_mount: "cloudify-osb".into(),
            name_prefix: "osb".into(),
            timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for VaultSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSettings")
            .field("addr", &self.addr)
            .field("auth", &self.auth)
            .field("kv_mount", &self.kv_mount)
            .field("name_prefix", &self.name_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The Vault binder. Build it once per process and share it.
#[derive(Debug)]
pub struct VaultBinder {
    vault: VaultClient,
    kv_mount: String,
    prefix: String,
}

/// What the instance record in KV says was written.
struct InstanceRecord {
    /// The objects in use first, then earlier ones (another engine mount, other names) that
    /// live bindings may still use.
    objects: Vec<Objects>,
    /// Salted digest of the connection and role last written (see [`Fingerprint`]); `None`
    /// while a write is under way or after a conflicting one.
    fingerprint: Option<Fingerprint>,
    /// When a configure claimed the record to write (unix seconds), until it is done.
    claimed_at: Option<i64>,
    /// KV v2 version of the record, for check-and-set writes.
    version: u64,
}

/// An instance's connection and role under one engine mount.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Objects {
    engine: String,
    /// The role (credentials under `<engine>/creds/<name>`).
    name: String,
    connection: String,
}

impl Objects {
    fn json(&self) -> Value {
        json!({ "engine_mount": self.engine, "name": self.name, "connection": self.connection })
    }

    fn is(&self, new: &NewRecord<'_>) -> bool {
        self.engine == new.engine && self.name == new.name && self.connection == new.connection
    }
}

/// How long a bind's claim to write an instance's objects holds before others may take over.
const CLAIM_TTL: Duration = Duration::from_secs(15);
/// How long a bind waits for another bind's claim before giving up.
const CLAIM_WAIT: Duration = Duration::from_secs(20);

/// The instance record a configure writes: which objects, under which mounts.
struct NewRecord<'a> {
    engine: &'a str,
    /// The role (and the credentials path under `<engine>/creds/`).
    name: &'a str,
    /// The connection (the same as the role but for legacy documents).
    connection: &'a str,
}

impl NewRecord<'_> {
    /// The record, keeping the earlier objects of `before` (live bindings may still use
    /// them; remove_instance clears them too).
    fn json(
        &self,
        before: Option<&InstanceRecord>,
        fingerprint: Option<&Fingerprint>,
        claimed_at: Option<i64>,
    ) -> Value {
        let mut earlier: Vec<Value> = Vec::new();
        for o in before.iter().flat_map(|k| k.objects.iter()) {
            if !o.is(self) && !earlier.contains(&o.json()) {
                earlier.push(o.json());
            }
        }
        json!({
            "engine_mount": self.engine,
            "earlier": earlier,
            "name": self.name,
            "connection": self.connection,
            "fingerprint": fingerprint.map(|f| f.digest.as_str()),
            "fingerprint_salt": fingerprint.map(|f| f.salt.as_str()),
            "claimed_at": claimed_at,
        })
    }
}

/// A binder config rendered for one binding, with the names of the instance's objects.
struct Rendered {
    config: BinderConfig,
    /// `<engine>/roles/<role>`, credentials under `<engine>/creds/<role>`.
    role: String,
    /// `<engine>/config/<connection>`.
    connection: String,
}

/// A configure's claim on the instance record.
struct Claimed<'a> {
    path: &'a str,
    /// The record's version after the claim.
    version: u64,
    /// Whether the claim created the record (the instance's first configure).
    first: bool,
    fingerprint: Fingerprint,
}

impl VaultBinder {
    /// Validates the settings and builds the one HTTP client. Makes no request.
    pub fn new(settings: VaultSettings) -> Result<Self, BinderError> {
        check_mount_path("the Vault KV mount", &settings.kv_mount)?;
        check_prefix(&settings.name_prefix)?;
        Ok(Self {
            vault: VaultClient::new(&settings.addr, settings.auth, settings.timeout)?,
            kv_mount: settings.kv_mount,
            prefix: settings.name_prefix,
        })
    }

    /// How often the broker logged in to Vault and renewed its token.
    pub fn auth_stats(&self) -> AuthStats {
        self.vault.auth_stats()
    }

    /// The connection and role name of an instance.
    pub fn object_name(&self, instance_id: &str) -> String {
        instance_object_name(&self.prefix, instance_id)
    }

    /// Mount-relative KV path of a binding's kept credentials.
    pub fn binding_kv_path(instance_id: &str, binding_id: &str) -> String {
        format!("bindings/{instance_id}/{binding_id}")
    }

    fn instance_kv_path(instance_id: &str) -> String {
        format!("instances/{instance_id}")
    }

    /// Reads a KV secret given as `MOUNT/PATH` (first segment = mount): KV v2 first, then
    /// KV v1. `None` when absent.
    async fn read_kv_any(&self, what: &str, full: &str) -> Result<Option<Value>, BinderError> {
        check_mount_path(what, full)?;
        let Some((mount, rest)) = full.split_once('/') else {
            return Err(BinderError::Config(format!(
                "{what} must be MOUNT/PATH, e.g. cloudify-osb/binders/mariadb"
            )));
        };
        let v2 = self.vault.get(&format!("{mount}/data/{rest}")).await?;
        if v2.is_success() {
            return Ok(v2.data().get("data").filter(|d| d.is_object()).cloned());
        }
        if !v2.is_not_found() {
            return Err(v2.to_error(&format!("read {what}"), &[]));
        }
        let v1 = self.vault.get(full).await?;
        if v1.is_not_found() {
            return Ok(None);
        }
        let v1 = v1.check(&format!("read {what}"), &[])?;
        Ok(Some(v1.data().clone()).filter(|d| d.is_object()))
    }

    /// The binder config document named by the service settings, as stored.
    async fn config_document(&self, settings: &ServiceSettings) -> Result<Value, BinderError> {
        let path = settings.binder_config.trim();
        let doc = self
            .read_kv_any("the binder config path", path)
            .await?
            .ok_or_else(|| {
                BinderError::Config(format!("no binder config is stored at Vault path {path:?}"))
            })?;
        // A document stored as one JSON string under `config` (as the original broker did).
        match doc.as_object() {
            Some(m) if m.len() == 1 && m.get("config").is_some_and(Value::is_string) => {
                let text = m.get("config").and_then(Value::as_str).unwrap_or_default();
                serde_json::from_str(text).map_err(|e| {
                    BinderError::Config(format!(
                        "the binder config at {path:?} is not JSON (line {}, column {})",
                        e.line(),
                        e.column()
                    ))
                })
            }
            _ => Ok(doc),
        }
    }

    /// The binder config rendered for this binding, with the instance's object names. A
    /// legacy document is converted first; its role comes from the template role in Vault,
    /// read only `with_role` (the credentials step does not use the role).
    async fn rendered_config(
        &self,
        ctx: &BindContext<'_>,
        with_role: bool,
    ) -> Result<Rendered, BinderError> {
        let doc = self.config_document(ctx.settings).await?;
        let instance_id = ctx.instance.id.as_str();
        let scope = Scope {
            outputs: ctx.outputs,
            instance_id,
            deployment_id: &ctx.instance.deployment_id,
            binding_id: Some(ctx.binding_id.as_str()),
            parameters: ctx.parameters,
            context: ctx.instance.context.as_ref(),
        };
        if !is_legacy(&doc) {
            let name = self.object_name(instance_id);
            return Ok(Rendered {
                config: BinderConfig::render(&doc, &scope)?,
                role: name.clone(),
                connection: name,
            });
        }
        let legacy = Legacy::parse(&doc)?;
        let template = if with_role {
            self.template_role(&legacy).await?
        } else {
            // Stands in for the role, which the credentials step never reads.
            json!({ "creation_statements": ["-- not used"] })
        };
        let names = legacy.names(instance_id);
        Ok(Rendered {
            config: BinderConfig::render(&legacy.convert(&template)?, &scope)?,
            role: names.role,
            connection: names.connection,
        })
    }

    /// The role a legacy document's `__credpath__` names: the template cloned per instance.
    async fn template_role(&self, legacy: &Legacy) -> Result<Value, BinderError> {
        let path = legacy.template_role_path();
        let reply = self.vault.get(&path).await?;
        if reply.is_not_found() {
            return Err(BinderError::Config(format!(
                "the legacy binder config's __credpath__ names role {:?}, but {path} does not \
                 exist; write it first (it is the template each instance's role is cloned from)",
                legacy.role
            )));
        }
        let reply = reply.check(&format!("read {path}"), &[])?;
        Ok(reply.data().clone())
    }

    async fn kv_read(&self, rel: &str) -> Result<Option<Value>, BinderError> {
        let reply = self
            .vault
            .get(&format!("{}/data/{rel}", self.kv_mount))
            .await?;
        if reply.is_not_found() {
            return Ok(None);
        }
        let reply = reply.check(&format!("read {}/data/{rel}", self.kv_mount), &[])?;
        Ok(reply.data().get("data").filter(|d| d.is_object()).cloned())
    }

    /// As [`Self::kv_read`], with the KV v2 version of what was read.
    async fn kv_read_versioned(&self, rel: &str) -> Result<Option<(Value, u64)>, BinderError> {
        let reply = self
            .vault
            .get(&format!("{}/data/{rel}", self.kv_mount))
            .await?;
        if reply.is_not_found() {
            return Ok(None);
        }
        let reply = reply.check(&format!("read {}/data/{rel}", self.kv_mount), &[])?;
        let version = reply
            .data()
            .pointer("/metadata/version")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(reply
            .data()
            .get("data")
            .filter(|d| d.is_object())
            .cloned()
            .map(|d| (d, version)))
    }

    /// A check-and-set KV v2 write: `cas` 0 creates only if absent. `Ok(None)` when the
    /// stored version was not `cas` (someone else wrote meanwhile); the new version if written.
    async fn kv_write_cas(
        &self,
        rel: &str,
        data: &Value,
        cas: u64,
    ) -> Result<Option<u64>, BinderError> {
        let what = format!("write {}/data/{rel}", self.kv_mount);
        let reply = self
            .vault
            .post(
                &format!("{}/data/{rel}", self.kv_mount),
                &json!({ "data": data, "options": { "cas": cas } }),
            )
            .await?;
        if reply.status.as_u16() == 400 && reply.error_text(&[]).contains("check-and-set") {
            return Ok(None);
        }
        let reply = reply.check(&what, &[])?;
        Ok(Some(
            reply
                .data()
                .get("version")
                .and_then(Value::as_u64)
                .unwrap_or(cas + 1),
        ))
    }

    async fn kv_write(&self, rel: &str, data: &Value) -> Result<(), BinderError> {
        self.vault
            .post(
                &format!("{}/data/{rel}", self.kv_mount),
                &json!({ "data": data }),
            )
            .await?
            .check(&format!("write {}/data/{rel}", self.kv_mount), &[])
            .map(|_| ())
    }

    async fn kv_delete(&self, rel: &str) -> Result<(), BinderError> {
        self.vault
            .delete(&format!("{}/metadata/{rel}", self.kv_mount))
            .await
    }

    async fn instance_record(
        &self,
        instance_id: &str,
    ) -> Result<Option<InstanceRecord>, BinderError> {
        let Some((data, version)) = self
            .kv_read_versioned(&Self::instance_kv_path(instance_id))
            .await?
        else {
            return Ok(None);
        };
        let damaged = || {
            BinderError::Config(format!(
                "the broker's record of instance {instance_id} in Vault is damaged"
            ))
        };
        let objects_of = |v: &Value, name_default: Option<&str>| -> Option<Objects> {
            let field = |k: &str| v.get(k).and_then(Value::as_str);
            let name = field("name").or(name_default)?;
            let o = Objects {
                engine: field("engine_mount")?.to_owned(),
                name: name.to_owned(),
                connection: field("connection").unwrap_or(name).to_owned(),
            };
            let ok = check_mount_path("engine mount", &o.engine).is_ok()
                && [&o.name, &o.connection]
                    .iter()
                    .all(|n| check_mount_path("name", n).is_ok() && !n.contains('/'));
            ok.then_some(o)
        };
        let current = objects_of(&data, None).ok_or_else(damaged)?;
        let mut objects = vec![current.clone()];
        // Records written before names could change list earlier mounts only.
        for m in data
            .get("earlier_engine_mounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let v = json!({ "engine_mount": m, "name": current.name, "connection": current.connection });
            objects.push(objects_of(&v, None).ok_or_else(damaged)?);
        }
        for v in data
            .get("earlier")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            objects.push(objects_of(v, None).ok_or_else(damaged)?);
        }
        let field = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_owned);
        let fingerprint = match (field("fingerprint"), field("fingerprint_salt")) {
            (Some(digest), Some(salt)) => Some(Fingerprint { salt, digest }),
            _ => None,
        };
        Ok(Some(InstanceRecord {
            objects,
            fingerprint,
            claimed_at: data.get("claimed_at").and_then(Value::as_i64),
            version,
        }))
    }

    async fn admin_password(&self, config: &BinderConfig) -> Result<SecretString, BinderError> {
        if let Some(p) = &config.connection.password {
            return Ok(p.clone());
        }
        let Some(r) = &config.connection.password_ref else {
            return Err(BinderError::Config("connection.password is missing".into()));
        };
        let data = self
            .read_kv_any("connection.password_ref.path", &r.path)
            .await?
            .ok_or_else(|| {
                BinderError::Config(format!("nothing is stored at Vault path {:?}", r.path))
            })?;
        data.get(&r.key)
            .and_then(Value::as_str)
            .map(|s| SecretString::from(s.to_owned()))
            .ok_or_else(|| {
                BinderError::Config(format!(
                    "Vault path {:?} has no string key {:?}",
                    r.path, r.key
                ))
            })
    }

    /// The bodies of the instance's connection and role, as they would be written. The
    /// connection body holds the admin password: never log it or put it in an error.
    fn engine_bodies(
        config: &BinderConfig,
        names: &NewRecord<'_>,
        password: &SecretString,
    ) -> (Map<String, Value>, Map<String, Value>) {
        let mut conn = Map::new();
        conn.insert("plugin_name".into(), json!(config.engine.plugin));
        conn.insert("connection_url".into(), json!(config.connection.url));
        conn.insert("username".into(), json!(config.connection.username));
        conn.insert("password".into(), json!(password.expose_secret()));
        conn.insert("allowed_roles".into(), json!([names.name]));
        conn.insert("verify_connection".into(), json!(config.connection.verify));
        if let Some(n) = config.connection.max_open_connections {
            conn.insert("max_open_connections".into(), json!(n));
        }
        if let Some(t) = &config.connection.username_template {
            conn.insert("username_template".into(), json!(t));
        }
        if let Some(p) = &config.connection.password_policy {
            conn.insert("password_policy".into(), json!(p));
        }

        let role = &config.role;
        let mut body = Map::new();
        body.insert("db_name".into(), json!(names.connection));
        body.insert(
            "creation_statements".into(),
            json!(role.creation_statements),
        );
        for (k, v) in [
            ("revocation_statements", &role.revocation_statements),
            ("rollback_statements", &role.rollback_statements),
            ("renew_statements", &role.renew_statements),
        ] {
            if !v.is_empty() {
                body.insert(k.into(), json!(v));
            }
        }
        if let Some(t) = &role.default_ttl {
            body.insert("default_ttl".into(), json!(t));
        }
        if let Some(t) = &role.max_ttl {
            body.insert("max_ttl".into(), json!(t));
        }
        (conn, body)
    }

    async fn write_connection_and_role(
        &self,
        names: &NewRecord<'_>,
        conn: &Value,
        role: &Value,
        password: &SecretString,
    ) -> Result<(), BinderError> {
        let secret = password.expose_secret();
        let (engine, name, connection) = (names.engine, names.name, names.connection);
        self.vault
            .post(&format!("{engine}/config/{connection}"), conn)
            .await?
            .check(&format!("write {engine}/config/{connection}"), &[secret])?;
        self.vault
            .post(&format!("{engine}/roles/{name}"), role)
            .await?
            .check(&format!("write {engine}/roles/{name}"), &[secret])?;
        Ok(())
    }

    /// The claimed part of [`Binder::configure`]: writes the objects, then the record with
    /// the fingerprint (which also releases the claim).
    async fn write_claimed(
        &self,
        new: &NewRecord<'_>,
        before: Option<&InstanceRecord>,
        claimed: Claimed<'_>,
        conn: &Value,
        role: &Value,
        password: &SecretString,
    ) -> Result<(), BinderError> {
        let written = self
            .write_connection_and_role(new, conn, role, password)
            .await;
        if let Err(e) = written {
            if claimed.first {
                // First configure of this instance failed: leave nothing half-created.
                let objects = self
                    .remove_engine_objects(new.engine, new.name, new.connection)
                    .await;
                let record = self.kv_delete(claimed.path).await;
                if let Err(c) = objects.and(record) {
                    tracing::warn!(error = %c, "cleanup after a failed configure did not finish");
                }
            } else {
                // Release the claim; the next bind writes again.
                let released = new.json(before, None, None);
                if let Err(c) = self
                    .kv_write_cas(claimed.path, &released, claimed.version)
                    .await
                {
                    tracing::warn!(error = %c, "releasing the configure claim did not finish");
                }
            }
            return Err(e);
        }
        let done = new.json(before, Some(&claimed.fingerprint), None);
        if self
            .kv_write_cas(claimed.path, &done, claimed.version)
            .await?
            .is_none()
        {
            // Our claim was taken over (it outlived CLAIM_TTL): what we wrote may not be what
            // the objects hold now, so record no fingerprint and let the next bind write.
            self.kv_write(claimed.path, &new.json(before, None, None))
                .await?;
        }
        tracing::debug!(engine = %new.engine, name = %new.name, "instance configured in Vault");
        Ok(())
    }

    /// Removes the role and connection of an instance, revoking any lease left under it.
    async fn remove_engine_objects(
        &self,
        engine: &str,
        name: &str,
        connection: &str,
    ) -> Result<(), BinderError> {
        // Without a trailing slash (Vault refuses one in the URL); Vault then matches whole
        // path segments, so `osb-inst-1` does not reach `osb-inst-10`'s leases.
        let prefix = format!("{engine}/creds/{name}");
        let reply = self
            .vault
            .put(&format!("sys/leases/revoke-prefix/{prefix}"), &json!({}))
            .await?;
        if reply.status.as_u16() == 403 {
            tracing::warn!(
                prefix = %prefix,
                "the Vault token may not revoke by prefix (needs sudo); leases were revoked one by one"
            );
        } else if !reply.is_not_found() {
            reply.check(&format!("revoke leases under {prefix}"), &[])?;
        }
        self.vault.delete(&format!("{engine}/roles/{name}")).await?;
        self.vault
            .delete(&format!("{engine}/config/{connection}"))
            .await?;
        Ok(())
    }

    /// Every lease under the roles the broker created (one per instance recorded in its KV
    /// mount), as full lease IDs, for `cloudify-osb reconcile`. Lists
    /// `sys/leases/lookup/ENGINE/creds/ROLE/`, which needs a token with `sudo` on
    /// `sys/leases/lookup/*` (docs/runbook.md). Read-only.
    pub async fn broker_leases(&self) -> Result<Vec<String>, BinderError> {
        let mut out = Vec::new();
        let dir = format!("{}/metadata/instances/", self.kv_mount);
        for key in self.vault.list(&dir).await? {
            let instance_id = key.trim_end_matches('/');
            if check_mount_path("key", instance_id).is_err() {
                continue;
            }
            let Some(record) = self.instance_record(instance_id).await? else {
                continue;
            };
            for o in &record.objects {
                let prefix = format!("{}/creds/{}", o.engine, o.name);
                for lease in self
                    .vault
                    .list(&format!("sys/leases/lookup/{prefix}/"))
                    .await?
                {
                    if !lease.ends_with('/') {
                        out.push(format!("{prefix}/{lease}"));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Revokes one lease by its full ID (`reconcile --fix`, `instance purge`).
    pub async fn revoke_lease_id(&self, lease_id: &str) -> Result<(), BinderError> {
        self.revoke_lease(lease_id).await
    }

    async fn revoke_lease(&self, lease_id: &str) -> Result<(), BinderError> {
        self.vault
            .put("sys/leases/revoke", &json!({ "lease_id": lease_id }))
            .await?
            .check("revoke the binding's lease", &[])
            .map(|_| ())
    }

    /// The credentials map for the platform (servicebinding.io style). Allow-listed outputs
    /// first, then configured values, then what the binder sets itself: generated
    /// credentials win over everything else (B15).
    fn credentials_map(
        config: &BinderConfig,
        outputs: &Map<String, Value>,
        username: &str,
        password: &str,
    ) -> Result<Credentials, BinderError> {
        let mut c = Credentials::default();
        for name in &config.outputs {
            let value = outputs
                .get(name)
                .ok_or_else(|| BinderError::MissingOutput(name.clone()))?;
            c.insert(name.clone(), template::value_text(value));
        }
        for (k, v) in config.credential_values() {
            c.insert(k, v);
        }
        c.insert("type", config.credentials.kind.clone());
        c.insert(
            "provider",
            config
                .credentials
                .provider
                .clone()
                .unwrap_or_else(|| "cloudify".into()),
        );
        c.insert("username", username);
        c.insert("password", password);
        if let Some(scheme) = &config.credentials.uri_scheme {
            let host = c.get("host").ok_or_else(|| {
                BinderError::Config("credentials.uri_scheme needs credentials.values.host".into())
            })?;
            let mut uri = format!(
                "{scheme}://{}:{}@{host}",
                encode_userinfo(username),
                encode_userinfo(password)
            );
            if let Some(port) = c.get("port").filter(|p| !p.is_empty()) {
                uri.push(':');
                uri.push_str(port);
            }
            if let Some(db) = c.get("database").filter(|d| !d.is_empty()) {
                uri.push('/');
                uri.push_str(&encode_userinfo(db));
            }
            c.insert("uri", uri);
        }
        Ok(c)
    }

    /// The configure step on a rendered config (see [`Binder::configure`]).
    async fn configure_rendered(
        &self,
        ctx: &BindContext<'_>,
        rendered: &Rendered,
    ) -> Result<(), BinderError> {
        let Rendered {
            config,
            role: name,
            connection,
        } = rendered;
        let (config, name, connection) = (config, name.clone(), connection.clone());
        let instance_id = ctx.instance.id.as_str();
        let engine = config.engine.mount.clone();
        let mut latest = self.instance_record(instance_id).await?;
        let password = self.admin_password(config).await?;
        let new = NewRecord {
            engine: &engine,
            name: &name,
            connection: &connection,
        };
        let (conn, role) = Self::engine_bodies(config, &new, &password);
        let (conn, role) = (Value::Object(conn), Value::Object(role));
        let parts = [&Value::String(engine.clone()), &conn, &role];
        let unchanged = |r: &InstanceRecord| {
            r.objects.first().is_some_and(|o| o.is(&new))
                && r.fingerprint.as_ref().is_some_and(|f| f.matches(&parts))
        };
        let path = Self::instance_kv_path(instance_id);
        let waited_since = std::time::Instant::now();
        loop {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            if latest.as_ref().is_some_and(unchanged) {
                tracing::debug!(engine = %engine, name = %name, "instance unchanged in Vault");
                return Ok(());
            }
            let claimed = latest
                .as_ref()
                .and_then(|r| r.claimed_at)
                .is_some_and(|t| now.saturating_sub(t) < CLAIM_TTL.as_secs() as i64);
            if !claimed {
                // Claim the record; it names the objects before they exist (or move to
                // another mount), so that remove_instance always finds them.
                let version = latest.as_ref().map_or(0, |r| r.version);
                let claim = new.json(latest.as_ref(), None, Some(now));
                if let Some(version) = self.kv_write_cas(&path, &claim, version).await? {
                    let salt = latest
                        .as_ref()
                        .and_then(|r| r.fingerprint.as_ref())
                        .map_or_else(Fingerprint::new_salt, |f| f.salt.clone());
                    let claimed = Claimed {
                        path: &path,
                        version,
                        first: latest.is_none(),
                        fingerprint: Fingerprint::of(&salt, &parts),
                    };
                    return self
                        .write_claimed(&new, latest.as_ref(), claimed, &conn, &role, &password)
                        .await;
                }
            } else if waited_since.elapsed() > CLAIM_WAIT {
                return Err(BinderError::Unavailable(format!(
                    "another bind has been configuring instance {instance_id} in Vault for over {}s",
                    CLAIM_WAIT.as_secs()
                )));
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            latest = self.instance_record(instance_id).await?;
        }
    }

    /// The credentials step on a rendered config (see [`Binder::credentials`]).
    async fn credentials_rendered(
        &self,
        ctx: &BindContext<'_>,
        rendered: &Rendered,
    ) -> Result<Bound, BinderError> {
        let Rendered {
            config, role: name, ..
        } = rendered;
        let instance_id = ctx.instance.id.as_str();
        let engine = &config.engine.mount;
        let reply: Reply = self
            .vault
            .get(&format!("{engine}/creds/{name}"))
            .await?
            .check(&format!("read {engine}/creds/{name}"), &[])?;
        let body = reply.body.as_ref().unwrap_or(&Value::Null);
        let lease_id = body
            .get("lease_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let lease_duration = body
            .get("lease_duration")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let renewable = body
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let now = OffsetDateTime::now_utc();
        let data = reply.data();
        let (Some(username), Some(password)) = (
            data.get("username").and_then(Value::as_str),
            data.get("password").and_then(Value::as_str),
        ) else {
            if !lease_id.is_empty() {
                self.revoke_lease(&lease_id).await.ok();
            }
            return Err(BinderError::Rejected(format!(
                "{engine}/creds/{name} returned no username and password"
            )));
        };
        let built = Self::credentials_map(config, ctx.outputs, username, password);
        let kv_path = Self::binding_kv_path(instance_id, ctx.binding_id.as_str());
        let kept = match built {
            Ok(credentials) => {
                let map: Map<String, Value> = credentials
                    .0
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                self.kv_write(&kv_path, &Value::Object(map))
                    .await
                    .map(|()| credentials)
            }
            Err(e) => Err(e),
        };
        let credentials = match kept {
            Ok(c) => c,
            Err(e) => {
                // Leave nothing half-created: the generated user goes with its lease.
                if !lease_id.is_empty()
                    && let Err(r) = self.revoke_lease(&lease_id).await
                {
                    tracing::warn!(error = %r, "revoking the lease of a failed bind did not finish");
                }
                return Err(e);
            }
        };
        let state = json!({
            "lease_id": lease_id,
            "renewable": renewable,
            "lease_duration": lease_duration,
            "engine_mount": engine,
            "role": name,
            "kv_mount": self.kv_mount,
            "kv_path": kv_path,
        });
        Ok(Bound {
            credentials,
            state,
            lease: lease_times(now, lease_duration),
        })
    }
}

fn lease_times(now: OffsetDateTime, seconds: u64) -> Option<LeaseTimes> {
    if seconds == 0 {
        return None;
    }
    let secs = i64::try_from(seconds).ok()?;
    Some(LeaseTimes {
        expires_at: now + time::Duration::seconds(secs),
        // Two thirds of the way: room to renew or rotate before the lease runs out.
        renew_before: now + time::Duration::seconds(secs * 2 / 3),
    })
}

fn state_str<'a>(binding: &'a Binding, key: &str) -> Option<&'a str> {
    binding.binder_state.get(key).and_then(Value::as_str)
}

#[async_trait]
impl Binder for VaultBinder {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn connect(&self) -> Result<(), BinderError> {
        let health = self.vault.get("sys/health").await?;
        match health.status.as_u16() {
            200 | 429 | 472 | 473 => {}
            503 => return Err(BinderError::Unavailable("Vault is sealed".into())),
            501 => return Err(BinderError::Unavailable("Vault is not initialised".into())),
            code => {
                return Err(BinderError::Unavailable(format!(
                    "Vault health answered {code}"
                )));
            }
        }
        self.vault
            .get("auth/token/lookup-self")
            .await?
            .check("token lookup", &[])
            .map(|_| ())
    }

    /// Writes the instance's connection and role unless the instance record says they were
    /// written with the same contents (fingerprint): rewriting a connection makes Vault reset
    /// its pool under binds reading credentials, and concurrent writes of one connection fail
    /// in Vault's storage. So one bind at a time writes: it claims the record with a
    /// check-and-set write, writes, and records the fingerprint; concurrent binds wait for
    /// the fingerprint (or take over a claim older than [`CLAIM_TTL`]).
    #[tracing::instrument(skip_all, fields(instance_id = %ctx.instance.id))]
    async fn configure(&self, ctx: &BindContext<'_>) -> Result<(), BinderError> {
        let rendered = self.rendered_config(ctx, true).await?;
        self.configure_rendered(ctx, &rendered).await
    }

    #[tracing::instrument(skip_all, fields(instance_id = %ctx.instance.id, binding_id = %ctx.binding_id))]
    async fn credentials(&self, ctx: &BindContext<'_>) -> Result<Bound, BinderError> {
        let rendered = self.rendered_config(ctx, false).await?;
        self.credentials_rendered(ctx, &rendered).await
    }

    /// Configure and credentials on one read of the binder config (one Vault call fewer
    /// than the two steps apart).
    #[tracing::instrument(skip_all, fields(instance_id = %ctx.instance.id, binding_id = %ctx.binding_id))]
    async fn bind(&self, ctx: &BindContext<'_>) -> Result<Bound, BinderError> {
        let rendered = self.rendered_config(ctx, true).await?;
        self.configure_rendered(ctx, &rendered).await?;
        self.credentials_rendered(ctx, &rendered).await
    }

    async fn stored_credentials(&self, binding: &Binding) -> Result<Credentials, BinderError> {
        let kv_path = state_str(binding, "kv_path")
            .map(str::to_owned)
            .unwrap_or_else(|| {
                Self::binding_kv_path(binding.instance_id.as_str(), binding.id.as_str())
            });
        let data = self.kv_read(&kv_path).await?.ok_or_else(|| {
            BinderError::Unavailable(format!(
                "the kept credentials of binding {} are missing from Vault",
                binding.id
            ))
        })?;
        let mut c = Credentials::default();
        if let Some(m) = data.as_object() {
            for (k, v) in m {
                c.insert(k.clone(), template::value_text(v));
            }
        }
        Ok(c)
    }

    #[tracing::instrument(skip_all, fields(instance_id = %binding.instance_id, binding_id = %binding.id))]
    async fn revoke(&self, binding: &Binding) -> Result<(), BinderError> {
        if let Some(lease_id) = state_str(binding, "lease_id").filter(|l| !l.is_empty()) {
            self.revoke_lease(lease_id).await?;
        }
        let kv_path = Self::binding_kv_path(binding.instance_id.as_str(), binding.id.as_str());
        self.kv_delete(&kv_path).await
    }

    #[tracing::instrument(skip_all, fields(instance_id = %instance.id))]
    async fn remove_instance(
        &self,
        instance: &Instance,
        _settings: &ServiceSettings,
    ) -> Result<(), BinderError> {
        let instance_id = instance.id.as_str();
        if let Some(record) = self.instance_record(instance_id).await? {
            for o in &record.objects {
                self.remove_engine_objects(&o.engine, &o.name, &o.connection)
                    .await?;
            }
        }
        let dir = format!("{}/metadata/bindings/{instance_id}/", self.kv_mount);
        for key in self.vault.list(&dir).await? {
            let key = key.trim_end_matches('/');
            if check_mount_path("key", key).is_ok() {
                self.kv_delete(&Self::binding_kv_path(instance_id, key))
                    .await?;
            }
        }
        self.kv_delete(&Self::instance_kv_path(instance_id)).await
    }

    async fn renew(&self, binding: &Binding) -> Result<Option<LeaseTimes>, BinderError> {
        let Some(lease_id) = state_str(binding, "lease_id").filter(|l| !l.is_empty()) else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        let reply = self
            .vault
            .put("sys/leases/renew", &json!({ "lease_id": lease_id }))
            .await?;
        if reply.status.as_u16() == 400 {
            // The lease is over (expired, revoked) or cannot be extended: report its end so
            // the renewal pass records it and stops listing the binding.
            let text = reply.error_text(&[]);
            if text.contains("not renewable") {
                let end = binding.expires_at.unwrap_or(now);
                return Ok(Some(LeaseTimes {
                    expires_at: end,
                    renew_before: end,
                }));
            }
            if ["not found", "expired", "invalid lease"]
                .iter()
                .any(|m| text.contains(m))
            {
                return Ok(Some(LeaseTimes {
                    expires_at: now,
                    renew_before: now,
                }));
            }
        }
        let reply = reply.check("renew the binding's lease", &[])?;
        let seconds = reply
            .body
            .as_ref()
            .and_then(|b| b.get("lease_duration"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Ok(lease_times(now, seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_times_renew_two_thirds_of_the_way() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let t = lease_times(now, 3600).unwrap();
        assert_eq!(t.expires_at - now, time::Duration::hours(1));
        assert_eq!(t.renew_before - now, time::Duration::minutes(40));
        assert!(lease_times(now, 0).is_none());
    }

    #[test]
    fn settings_debug_hides_the_token() {
        let s = VaultSettings::new("http://127.0.0.1:8200", SecretString::from("s.topsecret"));
        assert!(!format!("{s:?}").contains("topsecret"));
        let b = VaultBinder::new(s).unwrap();
        assert!(!format!("{b:?}").contains("topsecret"));
    }

    #[test]
    fn bad_kv_mounts_and_prefixes_are_refused() {
        let mut s = VaultSettings::new("http://127.0.0.1:8200", SecretString::from("t"));
        s.kv_mount = "../x".into();
        assert!(VaultBinder::new(s).is_err());
        let mut s = VaultSettings::new("http://127.0.0.1:8200", SecretString::from("t"));
        s.name_prefix = "Bad_Prefix".into();
        assert!(VaultBinder::new(s).is_err());
    }
}
