//! Cloudify's JSON shapes (REST API v3.1, cloudify-api.md §3–§7), private to the adapter.
//! Every field the adapter does not need is left out; everything optional across versions is
//! `Option` or defaulted, so a 4.3 answer and a 7.0 answer both decode.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `{"items": [...], "metadata": {"pagination": {...}}}`.
#[derive(Debug, Deserialize)]
pub(super) struct Page<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub metadata: Option<PageMetadata>,
}

#[derive(Debug, Deserialize)]
pub(super) struct PageMetadata {
    #[serde(default)]
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Pagination {
    #[serde(default)]
    pub total: Option<u64>,
}

impl<T> Page<T> {
    pub fn total(&self) -> Option<u64> {
        self.metadata.as_ref()?.pagination.as_ref()?.total
    }
}

/// `GET /version`.
#[derive(Debug, Deserialize)]
pub(super) struct Version {
    pub version: String,
}

/// A blueprint as listed with `_include=id,description,plan,created_at,updated_at[,state,labels]`.
#[derive(Debug, Deserialize)]
pub(super) struct Blueprint {
    pub id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub plan: Option<BlueprintPlan>,
    #[serde(default)]
    pub updated_at: Option<Value>,
    #[serde(default)]
    pub created_at: Option<Value>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub labels: Option<Vec<Label>>,
}

/// The parts of the parsed blueprint (`plan`) the catalog uses.
#[derive(Debug, Default, Deserialize)]
pub(super) struct BlueprintPlan {
    #[serde(default)]
    pub inputs: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Label {
    pub key: String,
    #[serde(default)]
    pub value: Value,
}

/// Body of `PUT /deployments/{id}`.
#[derive(Debug, Serialize)]
pub(super) struct CreateDeployment<'a> {
    pub blueprint_id: &'a str,
    pub inputs: &'a Map<String, Value>,
    /// `[{"<key>": "<value>"}, …]`, only where the manager supports labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<Map<String, Value>>>,
}

/// Body of `POST /executions`.
#[derive(Debug, Serialize)]
pub(super) struct StartExecution<'a> {
    pub deployment_id: &'a str,
    pub workflow_id: &'a str,
}

/// Body of `POST /executions/{id}`.
#[derive(Debug, Serialize)]
pub(super) struct ExecutionAction<'a> {
    pub action: &'a str,
}

/// An execution (`_include=id,status,error[,workflow_id]`).
#[derive(Debug, Deserialize)]
pub(super) struct Execution {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /deployments/{id}/outputs`.
#[derive(Debug, Deserialize)]
pub(super) struct Outputs {
    #[serde(default)]
    pub outputs: Option<Map<String, Value>>,
}

/// Turns `null`/non-objects into an empty map.
pub(super) fn object_or_empty(v: Option<Value>) -> Map<String, Value> {
    match v {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// A timestamp as a string (Cloudify sends strings; anything else is kept as its JSON).
pub(super) fn timestamp(v: Option<Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_4_3_blueprint_and_a_7_0_blueprint_both_decode() {
        let old: Blueprint = serde_json::from_value(json!({
            "id": "bp", "description": null, "plan": {"inputs": {"a": {"default": 1}}},
            "updated_at": "2018-04-01 10:00:00.000000", "created_at": "2018-04-01 10:00:00.000000"
        }))
        .unwrap();
        assert_eq!(old.state, None);
        assert_eq!(object_or_empty(old.plan.unwrap().inputs).len(), 1);

        let new: Blueprint = serde_json::from_value(json!({
            "id": "bp", "description": "d", "state": "uploaded", "tenant_name": "t",
            "plan": {"inputs": null, "metadata": {"osb": {}}},
            "labels": [{"key": "k", "value": "v", "created_at": "x", "created_by": "admin"}],
            "updated_at": null
        }))
        .unwrap();
        assert_eq!(new.labels.unwrap()[0].key, "k");
        assert_eq!(timestamp(new.updated_at), None);
        assert!(object_or_empty(new.plan.unwrap().inputs).is_empty());
    }

    #[test]
    fn create_body_leaves_labels_out_when_unsupported() {
        let inputs = Map::new();
        let body = serde_json::to_value(CreateDeployment {
            blueprint_id: "bp",
            inputs: &inputs,
            labels: None,
        })
        .unwrap();
        assert_eq!(body, json!({"blueprint_id": "bp", "inputs": {}}));
    }

    #[test]
    fn pages_without_metadata_decode() {
        let p: Page<Execution> =
            serde_json::from_value(json!({"items": [{"id": "e", "status": "started"}]})).unwrap();
        assert_eq!(p.total(), None);
        assert_eq!(p.items[0].error, None);
    }
}

/// Body of `/deployment-updates/{id}/update/initiate` (same blueprint, new inputs).
#[derive(Debug, Serialize)]
pub(super) struct UpdateDeployment<'a> {
    pub inputs: &'a Map<String, Value>,
}

/// The fields of a deployment update the adapter reads.
#[derive(Debug, Deserialize)]
pub(super) struct DeploymentUpdate {
    #[serde(default)]
    pub execution_id: Option<String>,
}
