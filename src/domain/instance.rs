//! Service instances: what the broker records per instance and the request hash that decides
//! "identical" for the idempotency matrix (reference/osb.md §8). Must not import adapter
//! crates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::ids::{InstanceId, PlanId, ServiceId};
use super::operation::Operation;

/// Where an instance stands in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InstanceState {
    /// Provision accepted, not finished.
    Provisioning,
    /// Provisioned and usable (also while a later update runs or after one failed).
    Provisioned,
    /// Provision failed; the platform is expected to deprovision it (orphan mitigation).
    ProvisionFailed,
    /// An update runs.
    Updating,
    /// Deprovision accepted, not finished.
    Deprovisioning,
}

impl InstanceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Provisioned => "provisioned",
            Self::ProvisionFailed => "provision_failed",
            Self::Updating => "updating",
            Self::Deprovisioning => "deprovisioning",
        }
    }
}

/// One service instance as the store keeps it. Holds no credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: InstanceId,
    pub service_id: ServiceId,
    pub plan_id: PlanId,
    /// The blueprint deployed (kept so the instance outlives its catalog entry).
    pub blueprint_id: String,
    /// The orchestrator's deployment ID (`osb-<instance id>`).
    pub deployment_id: String,
    pub organization_guid: String,
    pub space_guid: String,
    /// The platform's `context` (not part of the request hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Value>,
    /// The user's parameters as last applied.
    #[serde(default)]
    pub parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_info_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
    /// Hash of the provision request (see [`request_hash`]).
    pub request_hash: String,
    pub state: InstanceState,
    /// The current or last asynchronous operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Optimistic-locking version, maintained by the store: every update must present the
    /// version it read.
    #[serde(default)]
    pub version: u64,
}

/// The parts of a request that decide whether two requests are "identical".
///
/// Hash over `service_id`, `plan_id`, `organization_guid`, `space_guid`, canonical JSON of
/// `parameters` and `maintenance_info.version`; `context` is left out on purpose.
pub fn request_hash(
    service_id: &str,
    plan_id: &str,
    organization_guid: &str,
    space_guid: &str,
    parameters: &Map<String, Value>,
    maintenance_info_version: Option<&str>,
) -> String {
    // serde_json's Map is ordered by key (no `preserve_order`), so this is canonical.
    let canonical = serde_json::json!([
        service_id,
        plan_id,
        organization_guid,
        space_guid,
        parameters,
        maintenance_info_version,
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn parameter_order_does_not_change_the_hash() {
        let a = request_hash(
            "s",
            "p",
            "o",
            "sp",
            &params(json!({"a": 1, "b": {"x": 1, "y": 2}})),
            None,
        );
        let b = request_hash(
            "s",
            "p",
            "o",
            "sp",
            &params(json!({"b": {"y": 2, "x": 1}, "a": 1})),
            None,
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn organization_space_and_maintenance_version_are_part_of_the_hash() {
        let p = Map::new();
        let base = request_hash("s", "p", "o", "sp", &p, None);
        assert_ne!(base, request_hash("s", "p", "o2", "sp", &p, None));
        assert_ne!(base, request_hash("s", "p", "o", "sp2", &p, None));
        assert_ne!(base, request_hash("s", "p", "o", "sp", &p, Some("1.0.0")));
    }
}
