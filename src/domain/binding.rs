//! Service bindings: the record the store keeps (never credentials) and the credentials map
//! the platform receives (spec "Binding"; servicebinding.io keys). Must not import adapter
//! crates.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::ids::{BindingId, InstanceId, PlanId, ServiceId};

/// Where a binding stands. Binds are synchronous; `Creating` only guards the window in
/// which the binder runs, so that a concurrent PUT of the same binding cannot run it twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingState {
    Creating,
    Bound,
    Unbinding,
}

/// One binding as the store keeps it. Holds no credentials: the binder keeps them (Vault KV)
/// and `binder_state` only says where (lease IDs, paths), so it is safe to log and store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub instance_id: InstanceId,
    pub id: BindingId,
    pub service_id: ServiceId,
    pub plan_id: PlanId,
    /// Hash of the bind request (service, plan, parameters, bind resource).
    pub request_hash: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_resource: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predecessor_binding_id: Option<BindingId>,
    /// The binder that made it (registry name).
    pub binder: String,
    /// The binder's own non-secret bookkeeping (lease IDs, paths written).
    #[serde(default)]
    pub binder_state: Value,
    pub state: BindingState,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub renew_before: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Optimistic-locking version, maintained by the store.
    #[serde(default)]
    pub version: u64,
}

/// Credentials for the platform: a flat string map (`type`, `provider`, `host`, `port`,
/// `username`, `password`, `uri`, `database`, …). Its `Debug` never shows values, and it is
/// never stored by the broker's store nor logged.
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Credentials(pub BTreeMap<String, String>);

impl Credentials {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.0.insert(key.into(), value.into());
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<redacted>")))
            .finish()
    }
}

/// A lease on generated credentials, as far as the platform needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimes {
    pub expires_at: OffsetDateTime,
    /// When the platform should rotate (≤ `expires_at`).
    pub renew_before: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_never_shows_values() {
        let mut c = Credentials::default();
        c.insert("password", "s3cr3t-value");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("password"));
    }
}
