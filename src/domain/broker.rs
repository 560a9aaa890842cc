//! The broker: the ten OSB operations (spec v2.17, reference/osb.md §7) over the ports, with
//! the idempotency matrix of osb.md §8 decided by conditional store writes and the instance
//! lifecycle of DESIGN.md §5 driven against the [`Orchestrator`] port.
//!
//! It owns OSB semantics, not the protocol: auth, version header, `accepts_incomplete`, body
//! syntax and status codes belong to `http`. Must not import axum, http, AWS, database, Vault
//! or Cloudify crates.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::binding::{Binding, BindingState, Credentials};
use super::catalog::{CatalogEntry, Plan, Service};
use super::error::{BinderError, Dependency, OrchestratorError, StoreError};
use super::ids::{BindingId, DEFAULT_ID_NAMESPACE, InstanceId, OperationId, PlanId, ServiceId};
use super::instance::{Instance, InstanceState, request_hash};
use super::operation::{Operation, OperationKind, OperationState, Phase, UpdateTarget};
use super::params::SchemaKind;
use super::ports::{
    BindContext, Binder, BinderRegistry, DeploymentSpec, ExecutionState, Orchestrator, Store,
    Workflow,
};
use super::snapshot::{CatalogCache, CatalogSnapshot};

/// The exact `description` of `AsyncRequired` (osb.md §4.1; clients match it byte for byte).
pub const ASYNC_REQUIRED_DESCRIPTION: &str =
    "This service plan requires client support for asynchronous service operations.";
/// The exact `description` of `ConcurrencyError` (osb.md §4.1).
pub const CONCURRENCY_ERROR_DESCRIPTION: &str =
    "The Service Broker does not support concurrent requests that mutate the same resource.";
/// The `description` of `MaintenanceInfoConflict` (osb.md §4.1).
pub const MAINTENANCE_INFO_CONFLICT_DESCRIPTION: &str =
    "The maintenance information for the requested Service Plan has changed.";

/// How many times a step of the lifecycle may chain into the next within one request.
const MAX_STEPS: usize = 4;
/// How many times an operation re-reads a record after losing a version-checked write.
const MAX_RETRIES: usize = 3;

/// How long a provision request may still be creating its deployment after it recorded the
/// instance (longer than the orchestrator's request timeout and retries). A deprovision in
/// that window answers `ConcurrencyError` instead of racing the create (see `deprovision`).
const PROVISION_IN_FLIGHT: time::Duration = time::Duration::seconds(60);
/// How long a binding being created counts as a bind still running (a bind request ends
/// well within it); older ones were abandoned and a deprovision revokes them.
const BIND_IN_FLIGHT: time::Duration = time::Duration::seconds(120);

/// Errors of the broker's operations. Each variant carries what the HTTP layer needs to
/// build the OSB answer; the status depends on the route (`http::error`).
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// Malformed or unacceptable request data (400); the message is for the platform's user.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The instance or binding does not exist (404; 410 on deprovision and unbind).
    #[error("not found: {0}")]
    NotFound(String),
    /// The resource is gone (410).
    #[error("gone: {0}")]
    Gone(String),
    /// It exists with different attributes (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// `accepts_incomplete=true` is required (422 `AsyncRequired`).
    #[error("asynchronous operation required")]
    AsyncRequired,
    /// Another operation mutates the same resource (422 `ConcurrencyError`).
    #[error("concurrent operation on the same resource")]
    ConcurrencyError,
    /// `maintenance_info.version` differs from the catalog's (422).
    #[error("maintenance info conflict")]
    MaintenanceInfoConflict,
    /// Another 422 with its own error code.
    #[error("{error}: {description}")]
    Unprocessable { error: String, description: String },
    /// A backend is not configured or not reachable (503 naming it). `detail` is for the log.
    #[error("{what} unavailable: {detail}")]
    DependencyUnavailable {
        dependency: Dependency,
        /// How the description names it, e.g. `Cloudify`, `Vault`, `binder "ldap"`.
        what: String,
        detail: String,
    },
    /// A bug or an impossible state (500); the message is for the log.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BrokerError {
    fn unavailable(dependency: Dependency, detail: impl Into<String>) -> Self {
        Self::DependencyUnavailable {
            dependency,
            what: dependency.to_string(),
            detail: detail.into(),
        }
    }

    /// The store failed: reading it again for another answer would fail (or wait) the same
    /// way, so the answer is this error.
    fn is_store_failure(&self) -> bool {
        matches!(
            self,
            Self::DependencyUnavailable {
                dependency: Dependency::Store,
                ..
            }
        )
    }

    fn unprocessable(error: &str, description: impl Into<String>) -> Self {
        Self::Unprocessable {
            error: error.to_owned(),
            description: description.into(),
        }
    }
}

impl From<StoreError> for BrokerError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists | StoreError::Conflict => Self::ConcurrencyError,
            StoreError::Unavailable(_) | StoreError::Corrupt(_) => {
                Self::unavailable(Dependency::Store, e.to_string())
            }
        }
    }
}

/// Maps an orchestrator error that the calling operation does not handle itself.
fn cloudify_error(e: OrchestratorError) -> BrokerError {
    BrokerError::unavailable(Dependency::Cloudify, e.to_string())
}

/// Maps a binder error; `name` is the binder's registry name.
fn binder_error(name: &str, e: BinderError) -> BrokerError {
    match e {
        BinderError::Config(_) | BinderError::MissingOutput(_) | BinderError::Rejected(_) => {
            BrokerError::unprocessable("BindingFailed", e.to_string())
        }
        BinderError::Unavailable(detail) => {
            let (dependency, what) = binder_dependency(name);
            BrokerError::DependencyUnavailable {
                dependency,
                what,
                detail,
            }
        }
    }
}

fn binder_dependency(name: &str) -> (Dependency, String) {
    if name == "vault" {
        (Dependency::Vault, Dependency::Vault.to_string())
    } else {
        (Dependency::Binder, format!("binder {name:?}"))
    }
}

/// Settings of the broker itself (not of its adapters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSettings {
    /// UUID namespace of service and plan IDs (`BROKER_ID_NAMESPACE`).
    pub id_namespace: Uuid,
    /// The Cloudify tenant (`CLOUDIFY_TENANT`).
    pub tenant: String,
    /// Seconds sent in `Retry-After` on `last_operation` while an operation runs.
    pub retry_after_secs: u64,
    /// Base URL of the Cloudify UI; `dashboard_url` points into it when set.
    pub dashboard_ui_url: Option<String>,
    /// How long a catalog copy confirmed by the store is used without asking it again
    /// (`--catalog-max-age`; zero: every request checks the catalog version).
    pub catalog_max_age: std::time::Duration,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            id_namespace: DEFAULT_ID_NAMESPACE,
            tenant: "default_tenant".into(),
            retry_after_secs: 10,
            dashboard_ui_url: None,
            catalog_max_age: std::time::Duration::ZERO,
        }
    }
}

/// How an operation completed, which the HTTP layer turns into 200, 201 or 202.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// 200: it already existed identically, or a synchronous change was applied.
    Done,
    /// 201: created synchronously.
    Created,
    /// 202: an asynchronous operation runs.
    Accepted,
}

/// An operation's answer: how it completed and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    pub completion: Completion,
    pub body: T,
}

impl<T> Reply<T> {
    fn new(completion: Completion, body: T) -> Self {
        Self { completion, body }
    }
}

/// `maintenance_info` in a request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MaintenanceInfoRequest {
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

/// An optional JSON object field: serde's derived struct would also take an array (`[v, d]`)
/// as the struct's fields in order, which the spec's object does not allow.
fn object_or_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        v @ Value::Object(_) => serde_json::from_value(v)
            .map(Some)
            .map_err(serde::de::Error::custom),
        _ => Err(serde::de::Error::custom("expected a JSON object")),
    }
}

/// Body of `PUT /v2/service_instances/:instance_id` (route `provision`, spec "Provisioning").
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProvisionRequest {
    pub service_id: ServiceId,
    pub plan_id: PlanId,
    pub organization_guid: String,
    pub space_guid: String,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "object_or_null")]
    pub maintenance_info: Option<MaintenanceInfoRequest>,
}

impl ProvisionRequest {
    /// Required fields that serde cannot check: `organization_guid` and `space_guid` must
    /// not be empty (osb.md §7).
    pub fn validate(&self) -> Result<(), String> {
        if self.organization_guid.is_empty() {
            return Err("organization_guid must not be empty".into());
        }
        if self.space_guid.is_empty() {
            return Err("space_guid must not be empty".into());
        }
        Ok(())
    }

    fn maintenance_version(&self) -> Option<&str> {
        self.maintenance_info
            .as_ref()
            .and_then(|m| m.version.as_deref())
    }
}

/// Body of `PATCH /v2/service_instances/:instance_id` (route `update`, spec "Updating").
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UpdateRequest {
    pub service_id: ServiceId,
    #[serde(default)]
    pub plan_id: Option<PlanId>,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "object_or_null")]
    pub maintenance_info: Option<MaintenanceInfoRequest>,
    #[serde(default)]
    pub previous_values: Option<Map<String, Value>>,
}

/// Query of `DELETE /v2/service_instances/:instance_id` (route `deprovision`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeprovisionRequest {
    pub service_id: ServiceId,
    pub plan_id: PlanId,
}

/// Body of `PUT …/service_bindings/:binding_id` (route `bind`, spec "Binding").
///
/// `service_id` and `plan_id` are required unless `predecessor_binding_id` is given
/// (rotation, osb.md §10); then they default to the instance's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BindRequest {
    #[serde(default)]
    pub service_id: Option<ServiceId>,
    #[serde(default)]
    pub plan_id: Option<PlanId>,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    #[serde(default)]
    pub bind_resource: Option<Map<String, Value>>,
    #[serde(default)]
    pub app_guid: Option<String>,
    #[serde(default)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default)]
    pub predecessor_binding_id: Option<BindingId>,
}

impl BindRequest {
    /// Required fields: `service_id` and `plan_id`, unless this is a rotation.
    pub fn validate(&self) -> Result<(), String> {
        if self.predecessor_binding_id.is_none() {
            if self.service_id.is_none() {
                return Err("missing field `service_id`".into());
            }
            if self.plan_id.is_none() {
                return Err("missing field `plan_id`".into());
            }
        }
        Ok(())
    }
}

/// Query of `DELETE …/service_bindings/:binding_id` (route `unbind`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnbindRequest {
    pub service_id: ServiceId,
    pub plan_id: PlanId,
}

/// Answer of `GET /v2/catalog` (route `catalog`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogResponse {
    pub services: Vec<Service>,
}

/// Answer of provision (202 or 200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProvisionResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
}

/// Answer of update (200 `{}` or 202).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct UpdateResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
}

/// Answer of deprovision (202, or 200 `{}`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DeprovisionResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<OperationId>,
}

/// `maintenance_info` in an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MaintenanceInfoResponse {
    pub version: String,
}

/// Answer of `GET /v2/service_instances/:instance_id` (route `get-instance`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceResponse {
    pub service_id: ServiceId,
    pub plan_id: PlanId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dashboard_url: Option<String>,
    pub parameters: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintenance_info: Option<MaintenanceInfoResponse>,
}

/// Answer of both `last_operation` routes (spec "Polling Last Operation").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastOperation {
    pub state: OperationState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_usable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_repeatable: Option<bool>,
    /// Seconds for the `Retry-After` header (not part of the body).
    #[serde(skip)]
    pub retry_after_secs: Option<u64>,
}

impl LastOperation {
    fn of(state: OperationState, description: Option<String>) -> Self {
        Self {
            state,
            description,
            instance_usable: None,
            update_repeatable: None,
            retry_after_secs: None,
        }
    }
}

/// `metadata` of a binding (osb.md §10): times as `yyyy-mm-ddThh:mm:ss.sZ`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingMetadata {
    pub expires_at: String,
    pub renew_before: String,
}

/// Answer of bind (201 or 200) and of `get-binding` (200).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BindResponse {
    pub credentials: Credentials,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BindingMetadata>,
    /// Only on fetch binding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
}

/// The empty object `{}` (unbind, synchronous update).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Empty {}

/// What `/readyz` reports: per dependency `ok`, `not configured` or `unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub checks: BTreeMap<String, String>,
}

/// Formats a time as OSB binding metadata wants it: `2019-12-31T23:59:59.0Z`.
pub fn osb_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond() / 100
    )
}

/// Hash of an update request's effective fields (an identical resend gets the same
/// operation).
pub fn update_request_hash(req: &UpdateRequest) -> String {
    let canonical = serde_json::json!([
        req.service_id,
        req.plan_id,
        req.parameters,
        req.maintenance_info
            .as_ref()
            .and_then(|m| m.version.as_deref()),
        req.context,
    ]);
    Sha256::digest(canonical.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Hash of a bind request: service, plan, canonical parameters, bind resource, app GUID and
/// predecessor. `context` is left out, as for instances.
pub fn binding_request_hash(
    service_id: &ServiceId,
    plan_id: &PlanId,
    parameters: &Map<String, Value>,
    bind_resource: Option<&Map<String, Value>>,
    app_guid: Option<&str>,
    predecessor: Option<&BindingId>,
) -> String {
    // serde_json's Map is ordered by key, so this is canonical.
    let canonical = serde_json::json!([
        service_id,
        plan_id,
        parameters,
        bind_resource,
        app_guid,
        predecessor,
    ]);
    Sha256::digest(canonical.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether one lifecycle step may chain into the next within the same request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Again,
    Wait,
}

/// The broker: OSB semantics over a [`Store`], an optional [`Orchestrator`] (None: Cloudify
/// is not configured and operations needing it answer 503) and the binders.
pub struct Broker {
    store: Arc<dyn Store>,
    orchestrator: Option<Arc<dyn Orchestrator>>,
    binders: BinderRegistry,
    settings: BrokerSettings,
    catalog_cache: CatalogCache,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("orchestrator", &self.orchestrator.is_some())
            .field("binders", &self.binders)
            .field("settings", &self.settings)
            .finish()
    }
}

impl Broker {
    /// A broker over these ports. `orchestrator` is `None` when Cloudify is not configured.
    pub fn new(
        store: Arc<dyn Store>,
        orchestrator: Option<Arc<dyn Orchestrator>>,
        binders: BinderRegistry,
        settings: BrokerSettings,
    ) -> Self {
        Self {
            store,
            orchestrator,
            binders,
            catalog_cache: CatalogCache::with_max_age(settings.catalog_max_age),
            settings,
        }
    }

    /// The current catalog snapshot (one version read; the catalog is re-read only when its
    /// version moved), with its served document and compiled parameter validators.
    pub async fn catalog_snapshot(&self) -> Result<Arc<CatalogSnapshot>, BrokerError> {
        Ok(self.catalog_cache.current(self.store.as_ref()).await?)
    }

    /// The broker's settings.
    pub fn settings(&self) -> &BrokerSettings {
        &self.settings
    }

    /// The store (for the sync and renewal passes that share it).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The orchestrator, when Cloudify is configured.
    pub fn orchestrator(&self) -> Option<&Arc<dyn Orchestrator>> {
        self.orchestrator.as_ref()
    }

    /// The registered binders.
    pub fn binders(&self) -> &BinderRegistry {
        &self.binders
    }

    fn cloudify(&self) -> Result<&Arc<dyn Orchestrator>, BrokerError> {
        self.orchestrator
            .as_ref()
            .ok_or_else(|| BrokerError::unavailable(Dependency::Cloudify, "not configured"))
    }

    fn binder(&self, name: &str) -> Result<&Arc<dyn Binder>, BrokerError> {
        self.binders.get(name).ok_or_else(|| {
            let (dependency, what) = binder_dependency(name);
            BrokerError::DependencyUnavailable {
                dependency,
                what,
                detail: format!("binder {name:?} is not configured"),
            }
        })
    }

    fn dashboard_url(&self, deployment_id: &str) -> Option<String> {
        // Decision: the Cloudify UI's deployment page; the UI base URL is configurable.
        self.settings.dashboard_ui_url.as_ref().map(|ui| {
            format!(
                "{}/console/page/deployment?id={deployment_id}",
                ui.trim_end_matches('/')
            )
        })
    }

    /// What `/readyz` reports. Ready when the store answers and every configured backend
    /// answers; a backend that is not configured does not make the broker unready.
    pub async fn readiness(&self) -> Readiness {
        // None: not configured.
        let mut results: Vec<(String, Option<Result<(), String>>)> = Vec::new();
        let store = self.store.catalog_version().await;
        results.push((
            "store".into(),
            Some(store.map(|_| ()).map_err(|e| e.to_string())),
        ));
        let cloudify = match &self.orchestrator {
            Some(o) => Some(o.ping().await.map(|_| ()).map_err(|e| e.to_string())),
            None => None,
        };
        results.push(("cloudify".into(), cloudify));
        let names: Vec<String> = self.binders.names().map(str::to_owned).collect();
        for name in &names {
            if let Some(b) = self.binders.get(name) {
                let r = b.connect().await.map_err(|e| e.to_string());
                results.push((name.clone(), Some(r)));
            }
        }
        if !names.iter().any(|n| n == "vault") {
            results.push(("vault".into(), None));
        }
        let mut checks = BTreeMap::new();
        let mut ready = true;
        for (name, result) in results {
            let status = match result {
                None => "not configured",
                Some(Ok(())) => "ok",
                Some(Err(e)) => {
                    tracing::warn!(dependency = %name, error = %e, "readiness check failed");
                    ready = false;
                    "unavailable"
                }
            };
            checks.insert(name, status.to_owned());
        }
        Readiness { ready, checks }
    }

    /// Route `catalog`: the active offerings.
    #[tracing::instrument(skip_all)]
    pub async fn catalog(&self) -> Result<CatalogResponse, BrokerError> {
        let snapshot = self.catalog_snapshot().await?;
        let catalog = &snapshot.catalog;
        Ok(CatalogResponse {
            services: catalog.active_services().into_iter().cloned().collect(),
        })
    }

    /// Route `provision`: 202 + operation for a new instance; the idempotency matrix for an
    /// existing one (osb.md §8).
    #[tracing::instrument(skip_all, fields(instance_id = %id))]
    pub async fn provision(
        &self,
        id: &InstanceId,
        req: ProvisionRequest,
    ) -> Result<Reply<ProvisionResponse>, BrokerError> {
        let parameters = req.parameters.clone().unwrap_or_default();
        let hash = request_hash(
            req.service_id.as_str(),
            req.plan_id.as_str(),
            &req.organization_guid,
            &req.space_guid,
            &parameters,
            req.maintenance_version(),
        );
        // No read of the instance first: the conditional create below tells a new instance
        // from an existing one. A request that fails the checks is still answered as a
        // replay when the instance exists (as if it had been read first).
        let snapshot = match self.catalog_snapshot().await {
            Ok(snapshot) => snapshot,
            Err(e) => return self.provision_refused(id, &hash, e).await,
        };
        let checked = Self::provision_checks(&snapshot, &req, &parameters)
            .and_then(|entry| Ok((entry, self.cloudify()?)));
        let (entry, orchestrator) = match checked {
            Ok(checked) => checked,
            Err(e) => return self.provision_refused(id, &hash, e).await,
        };

        let deployment_id = id.deployment_id();
        let instance = Instance {
            id: id.clone(),
            service_id: req.service_id.clone(),
            plan_id: req.plan_id.clone(),
            blueprint_id: entry.blueprint_id.clone(),
            deployment_id: deployment_id.clone(),
            organization_guid: req.organization_guid.clone(),
            space_guid: req.space_guid.clone(),
            context: req.context.clone().map(Value::Object),
            parameters: parameters.clone(),
            maintenance_info_version: req.maintenance_version().map(str::to_owned),
            dashboard_url: self.dashboard_url(&deployment_id),
            request_hash: hash.clone(),
            state: InstanceState::Provisioning,
            operation: Some(Operation::start(
                OperationKind::Provision,
                Phase::CreateEnvironment,
                Some(hash.clone()),
            )),
            created_at: OffsetDateTime::now_utc(),
            version: 0,
        };
        let stored = match self.store.create_instance(&instance).await {
            Ok(stored) => stored,
            Err(StoreError::AlreadyExists) => {
                let existing = self
                    .store
                    .instance(id)
                    .await?
                    .ok_or(BrokerError::ConcurrencyError)?;
                return self.provision_replay(&existing, &hash);
            }
            Err(e) => return Err(e.into()),
        };

        let mut inputs = entry.presets.get(&req.plan_id).cloned().unwrap_or_default();
        inputs.extend(parameters);
        let spec = DeploymentSpec {
            deployment_id,
            blueprint_id: entry.blueprint_id.clone(),
            inputs,
            labels: deployment_labels(id, req.context.as_ref()),
        };
        match orchestrator.create_deployment(&spec).await {
            Ok(()) => {}
            // A server error or a lost answer: the PUT may have created the deployment all
            // the same. Ours if it exists (the ID is the instance's and the record is ours):
            // carry on as if the answer had arrived; the polls drive it from here.
            Err(e @ OrchestratorError::Unavailable(_)) => {
                match orchestrator.deployment_exists(&spec.deployment_id).await {
                    Ok(true) => tracing::warn!(
                        error = %e,
                        "Cloudify's answer to the deployment PUT was lost, but the deployment exists; going on"
                    ),
                    _ => return Err(self.provision_create_failed(stored, e).await),
                }
            }
            Err(e) => return Err(self.provision_create_failed(stored, e).await),
        }

        let mut current = stored;
        let before = current.clone();
        self.advance(orchestrator.as_ref(), &mut current).await;
        let operation = before.operation.as_ref().map(|o| o.id.clone());
        // Always written, even without progress: a record past version 1 tells a concurrent
        // deprovision that this request is no longer creating the deployment.
        if let Err(e) = self.store.update_instance(&current).await {
            // The next poll starts from the stored record and retries the step.
            tracing::warn!(error = %e, "could not record the provision's progress");
        }
        Ok(Reply::new(
            Completion::Accepted,
            ProvisionResponse {
                operation,
                dashboard_url: current.dashboard_url,
            },
        ))
    }

    /// The catalog entry a provision request names, once its plan, maintenance info and
    /// parameters pass.
    fn provision_checks<'a>(
        snapshot: &'a CatalogSnapshot,
        req: &ProvisionRequest,
        parameters: &Map<String, Value>,
    ) -> Result<&'a CatalogEntry, BrokerError> {
        let entry = snapshot
            .catalog
            .entry(&req.service_id)
            .filter(|e| e.active)
            .ok_or_else(|| {
                BrokerError::BadRequest(format!(
                    "service_id {} is not in the catalog",
                    req.service_id
                ))
            })?;
        let plan = entry.plan(&req.plan_id).ok_or_else(|| {
            BrokerError::BadRequest(format!(
                "plan_id {} is not a plan of service {}",
                req.plan_id, entry.service.name
            ))
        })?;
        check_maintenance_info(plan, req.maintenance_version())?;
        snapshot
            .validators
            .check(plan, SchemaKind::Create, parameters)
            .map_err(BrokerError::BadRequest)?;
        Ok(entry)
    }

    /// A provision request that failed before the create: the replay answer when the
    /// instance exists (an existing instance is answered whatever the catalog says now),
    /// the failure otherwise.
    async fn provision_refused(
        &self,
        id: &InstanceId,
        hash: &str,
        failure: BrokerError,
    ) -> Result<Reply<ProvisionResponse>, BrokerError> {
        if failure.is_store_failure() {
            return Err(failure);
        }
        match self.store.instance(id).await {
            Ok(Some(existing)) => self.provision_replay(&existing, hash),
            _ => Err(failure),
        }
    }

    /// The idempotency matrix for a PUT on an existing instance (osb.md §8).
    fn provision_replay(
        &self,
        existing: &Instance,
        hash: &str,
    ) -> Result<Reply<ProvisionResponse>, BrokerError> {
        if existing.request_hash != hash {
            return Err(BrokerError::Conflict(format!(
                "instance {} already exists with different attributes",
                existing.id
            )));
        }
        let dashboard_url = existing.dashboard_url.clone();
        match existing.state {
            InstanceState::Provisioning => {
                let operation = existing.operation.as_ref().map(|o| o.id.clone());
                Ok(Reply::new(
                    Completion::Accepted,
                    ProvisionResponse {
                        operation,
                        dashboard_url,
                    },
                ))
            }
            InstanceState::Provisioned | InstanceState::Updating => Ok(Reply::new(
                Completion::Done,
                ProvisionResponse {
                    operation: None,
                    dashboard_url,
                },
            )),
            // Decision (spec silent): a failed provision answers 409 until the platform
            // deletes the instance.
            InstanceState::ProvisionFailed => Err(BrokerError::Conflict(format!(
                "instance {} failed to provision; delete it before provisioning it again",
                existing.id
            ))),
            InstanceState::Deprovisioning => Err(BrokerError::ConcurrencyError),
        }
    }

    /// `create_deployment` failed: a refusal removes the record (400 with Cloudify's
    /// message, nothing left behind); an unknown outcome (the deployment could not be seen
    /// either) marks the provision failed so the platform's orphan mitigation deletes
    /// whatever may exist.
    async fn provision_create_failed(&self, stored: Instance, e: OrchestratorError) -> BrokerError {
        let refusal = match &e {
            OrchestratorError::InvalidInput(m) | OrchestratorError::Rejected(m) => {
                Some(BrokerError::BadRequest(m.clone()))
            }
            OrchestratorError::NotFound(_) => Some(BrokerError::BadRequest(format!(
                "blueprint {} is not available in Cloudify",
                stored.blueprint_id
            ))),
            OrchestratorError::AlreadyExists(_) => Some(BrokerError::Conflict(format!(
                "Cloudify deployment {} already exists",
                stored.deployment_id
            ))),
            _ => None,
        };
        if let Some(answer) = refusal {
            tracing::info!(error = %e, "Cloudify refused the deployment");
            if let Err(d) = self.store.delete_instance(&stored.id, stored.version).await {
                tracing::warn!(error = %d, "could not remove the refused instance record");
            }
            return answer;
        }
        let mut failed = stored;
        failed.state = InstanceState::ProvisionFailed;
        if let Some(op) = failed.operation.as_mut() {
            op.fail("Cloudify did not confirm the deployment");
        }
        if let Err(u) = self.store.update_instance(&failed).await {
            tracing::warn!(error = %u, "could not mark the provision failed");
        }
        cloudify_error(e)
    }

    /// Route `update`: plan changes (the new plan's presets), parameter changes (validated
    /// against the plan's update schema, merged over the current ones) and maintenance
    /// upgrades run as a Cloudify deployment update, asynchronously (202 + operation); the
    /// instance takes the new values only when it succeeds. A request without effect, or
    /// changing only `context`, answers 200 `{}`. An identical resend while the update runs
    /// answers 202 with the same operation; any other request then gets `ConcurrencyError`.
    #[tracing::instrument(skip_all, fields(instance_id = %id))]
    pub async fn update(
        &self,
        id: &InstanceId,
        req: UpdateRequest,
    ) -> Result<Reply<UpdateResponse>, BrokerError> {
        let hash = update_request_hash(&req);
        for _ in 0..MAX_RETRIES {
            let Some(instance) = self.store.instance(id).await? else {
                return Err(BrokerError::NotFound(format!(
                    "instance {id} does not exist"
                )));
            };
            if let Some(op) = &instance.operation {
                if op.kind == OperationKind::Update && op.in_progress() {
                    if op.request_hash.as_deref() == Some(hash.as_str()) {
                        return Ok(Reply::new(
                            Completion::Accepted,
                            UpdateResponse {
                                operation: Some(op.id.clone()),
                                dashboard_url: None,
                            },
                        ));
                    }
                    return Err(BrokerError::ConcurrencyError);
                }
            }
            usable(&instance)?;
            if req.service_id != instance.service_id {
                return Err(BrokerError::BadRequest(format!(
                    "service_id {} is not the service of instance {id}",
                    req.service_id
                )));
            }
            let snapshot = self.catalog_snapshot().await?;
            let entry = snapshot.catalog.entry(&instance.service_id);
            let plan_id = req
                .plan_id
                .clone()
                .unwrap_or_else(|| instance.plan_id.clone());
            // The instance's own plan may be retired (removed from the blueprint); a plan
            // change must name an active one.
            let plan = entry.and_then(|e| {
                if plan_id == instance.plan_id {
                    e.instance_plan(&plan_id)
                } else {
                    e.plan(&plan_id)
                }
            });
            if let (Some(entry), None) = (entry, plan) {
                return Err(BrokerError::BadRequest(format!(
                    "plan_id {plan_id} is not a plan of service {}",
                    entry.service.name
                )));
            }
            let maintenance = match req
                .maintenance_info
                .as_ref()
                .and_then(|m| m.version.as_deref())
            {
                Some(version) => {
                    if let Some(plan) = plan {
                        check_maintenance_info(plan, Some(version))?;
                    }
                    Some(version.to_owned())
                }
                None => instance.maintenance_info_version.clone(),
            };
            let mut parameters = instance.parameters.clone();
            if let Some(given) = &req.parameters {
                if let Some(plan) = plan {
                    snapshot
                        .validators
                        .check(plan, SchemaKind::Update, given)
                        .map_err(BrokerError::BadRequest)?;
                }
                parameters.extend(given.clone());
            }
            let changed = plan_id != instance.plan_id
                || parameters != instance.parameters
                || maintenance != instance.maintenance_info_version;
            if changed {
                let (Some(entry), Some(plan)) = (entry, plan) else {
                    return Err(BrokerError::unprocessable(
                        "UnsupportedChange",
                        "The service of this instance is no longer in the catalog.",
                    ));
                };
                let allowed = if plan_id != instance.plan_id {
                    entry.plan_updateable(plan)
                } else {
                    entry.service.plan_updateable
                };
                if !allowed {
                    return Err(BrokerError::unprocessable(
                        "UnsupportedChange",
                        "This instance cannot be updated: the Cloudify manager or the plan does not allow it.",
                    ));
                }
                let mut inputs = entry.presets.get(&plan_id).cloned().unwrap_or_default();
                inputs.extend(parameters.clone());
                let target = UpdateTarget {
                    plan_id,
                    parameters,
                    maintenance_info_version: maintenance,
                };
                match self
                    .start_update(instance, &req, hash.clone(), target, inputs)
                    .await?
                {
                    Some(reply) => return Ok(reply),
                    None => continue,
                }
            }
            let context = req.context.clone().map(Value::Object);
            if context.is_none() || context == instance.context {
                return Ok(Reply::new(Completion::Done, UpdateResponse::default()));
            }
            let mut changed = instance;
            changed.context = context;
            match self.store.update_instance(&changed).await {
                Ok(_) => return Ok(Reply::new(Completion::Done, UpdateResponse::default())),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BrokerError::ConcurrencyError)
    }

    /// Claims the instance for an update, starts Cloudify's deployment update and records its
    /// execution; a refused start gives the instance back unchanged. `None`: the record
    /// changed meanwhile (the caller reads it again).
    async fn start_update(
        &self,
        instance: Instance,
        req: &UpdateRequest,
        hash: String,
        target: UpdateTarget,
        inputs: Map<String, Value>,
    ) -> Result<Option<Reply<UpdateResponse>>, BrokerError> {
        let orchestrator = self.cloudify()?;
        let mut claim = instance.clone();
        claim.state = InstanceState::Updating;
        if let Some(context) = &req.context {
            claim.context = Some(Value::Object(context.clone()));
        }
        let mut op = Operation::start(OperationKind::Update, Phase::Update, Some(hash));
        op.target = Some(target);
        op.description = Some("starting the Cloudify deployment update".into());
        claim.operation = Some(op);
        let claimed = match self.store.update_instance(&claim).await {
            Ok(c) => c,
            Err(StoreError::Conflict) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let operation = claimed.operation.as_ref().map(|o| o.id.clone());
        match orchestrator
            .update_deployment(&claimed.deployment_id, &inputs)
            .await
        {
            Ok(execution) => {
                let mut current = claimed;
                if let Some(op) = current.operation.as_mut() {
                    op.advance(Phase::Update, Some(execution));
                    op.description = Some("updating".into());
                }
                if let Err(e) = self.store.update_instance(&current).await {
                    // The next poll adopts the deployment's running execution.
                    tracing::warn!(error = %e, "could not record the update's execution");
                }
                Ok(Some(Reply::new(
                    Completion::Accepted,
                    UpdateResponse {
                        operation,
                        dashboard_url: None,
                    },
                )))
            }
            Err(e) => {
                tracing::info!(error = %e, "Cloudify did not start the deployment update");
                let mut restored = instance;
                restored.version = claimed.version;
                if let Err(u) = self.store.update_instance(&restored).await {
                    tracing::warn!(error = %u, "could not give the instance back after a refused update");
                }
                Err(match e {
                    OrchestratorError::Busy => BrokerError::ConcurrencyError,
                    OrchestratorError::InvalidInput(m) => BrokerError::BadRequest(m),
                    OrchestratorError::Rejected(m) | OrchestratorError::NotFound(m) => {
                        BrokerError::unprocessable("UnsupportedChange", m)
                    }
                    other => cloudify_error(other),
                })
            }
        }
    }

    /// Route `deprovision`: revokes every binding, then cancels, uninstalls and deletes the
    /// deployment asynchronously (202 + operation); 410 for unknown instances; an identical
    /// resend while it runs answers 202 with the same operation.
    #[tracing::instrument(skip_all, fields(instance_id = %id))]
    pub async fn deprovision(
        &self,
        id: &InstanceId,
        req: DeprovisionRequest,
    ) -> Result<Reply<DeprovisionResponse>, BrokerError> {
        for _ in 0..MAX_RETRIES {
            let Some(instance) = self.store.instance(id).await? else {
                return Err(BrokerError::Gone(format!("instance {id} does not exist")));
            };
            if let Some(op) = &instance.operation {
                if op.kind == OperationKind::Deprovision && op.in_progress() {
                    return Ok(Reply::new(
                        Completion::Accepted,
                        DeprovisionResponse {
                            operation: Some(op.id.clone()),
                        },
                    ));
                }
            }
            same_service_and_plan(&instance, &req.service_id, &req.plan_id)?;
            if provision_request_in_flight(&instance, OffsetDateTime::now_utc()) {
                // The provision request may still be creating the deployment: deleting now
                // could finish before the deployment exists and leave it orphaned. The
                // platform retries the DELETE (422 is never orphan-mitigated).
                return Err(BrokerError::ConcurrencyError);
            }
            let orchestrator = self.cloudify()?;
            let now = OffsetDateTime::now_utc();
            let binding_in_flight =
                self.store.bindings_of(id).await?.iter().any(|b| {
                    b.state == BindingState::Creating && now - b.created_at < BIND_IN_FLIGHT
                });
            if binding_in_flight {
                // A bind is making credentials: revoking now could miss them. The platform
                // retries the DELETE once the bind answered.
                return Err(BrokerError::ConcurrencyError);
            }

            let never_installed = instance.state == InstanceState::Provisioning
                && instance
                    .operation
                    .as_ref()
                    .is_some_and(|o| o.in_progress() && o.phase == Phase::CreateEnvironment);
            let first = if never_installed {
                Phase::Delete
            } else {
                Phase::Cancel
            };
            let mut claim = instance.clone();
            claim.state = InstanceState::Deprovisioning;
            claim.operation = Some(Operation::start(OperationKind::Deprovision, first, None));
            let claimed = match self.store.update_instance(&claim).await {
                Ok(c) => c,
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            };
            // Bindings only after the claim: a bind that has not held the instance yet
            // cannot any more (see `hold_instance`).
            if let Err(e) = self.revoke_all(&claimed).await {
                let mut back = instance.clone();
                back.version = claimed.version;
                if let Err(r) = self.store.update_instance(&back).await {
                    tracing::error!(error = %r, "could not undo the deprovision's claim");
                }
                return Err(e);
            }
            let operation = claimed.operation.as_ref().map(|o| o.id.clone());
            let finished = match self
                .advance_and_record(orchestrator.as_ref(), claimed, None)
                .await
            {
                Ok(current) => current
                    .operation
                    .is_some_and(|o| o.state == OperationState::Succeeded),
                Err(e) => {
                    // The next poll starts from the stored record and retries the step.
                    tracing::warn!(error = %e, "could not record the deprovision's progress");
                    false
                }
            };
            if finished {
                // Everything was gone within this request: a synchronous 200 `{}`.
                return Ok(Reply::new(Completion::Done, DeprovisionResponse::default()));
            }
            return Ok(Reply::new(
                Completion::Accepted,
                DeprovisionResponse { operation },
            ));
        }
        Err(BrokerError::ConcurrencyError)
    }

    /// Revokes every binding of an instance through its binder, then lets the service's
    /// binder remove what it wrote for the instance.
    async fn revoke_all(&self, instance: &Instance) -> Result<(), BrokerError> {
        let bindings = self.store.bindings_of(&instance.id).await?;
        let had_bindings = !bindings.is_empty();
        for binding in bindings {
            let binder = self.binder(&binding.binder)?;
            binder
                .revoke(&binding)
                .await
                .map_err(|e| binder_error(&binding.binder, e))?;
            match self
                .store
                .delete_binding(&binding.instance_id, &binding.id, binding.version)
                .await
            {
                Ok(()) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(binding_id = %binding.id, "binding revoked by deprovision");
        }
        if let Some(settings) = self.store.service_settings(&instance.blueprint_id).await? {
            match self.binders.get(&settings.binder) {
                Some(binder) => binder
                    .remove_instance(instance, &settings)
                    .await
                    .map_err(|e| binder_error(&settings.binder, e))?,
                None if had_bindings => {
                    return Err(self.binder(&settings.binder).err().unwrap_or_else(|| {
                        BrokerError::Internal("binder vanished from the registry".into())
                    }));
                }
                None => tracing::warn!(
                    binder = %settings.binder,
                    "binder not configured; nothing of it to remove for this instance"
                ),
            }
        }
        Ok(())
    }

    /// Route `get-instance`: 404 while provisioning or unknown, 422 `ConcurrencyError` while
    /// an update or deprovision runs.
    #[tracing::instrument(skip_all, fields(instance_id = %id))]
    pub async fn get_instance(&self, id: &InstanceId) -> Result<InstanceResponse, BrokerError> {
        let Some(instance) = self.store.instance(id).await? else {
            return Err(BrokerError::NotFound(format!(
                "instance {id} does not exist"
            )));
        };
        match instance.state {
            InstanceState::Provisioning => Err(BrokerError::NotFound(format!(
                "instance {id} is still being provisioned"
            ))),
            InstanceState::ProvisionFailed => Err(BrokerError::NotFound(format!(
                "instance {id} failed to provision"
            ))),
            // Decision (spec silent on deprovision): a running mutation is a ConcurrencyError.
            InstanceState::Updating | InstanceState::Deprovisioning => {
                Err(BrokerError::ConcurrencyError)
            }
            InstanceState::Provisioned => Ok(InstanceResponse {
                service_id: instance.service_id,
                plan_id: instance.plan_id,
                dashboard_url: instance.dashboard_url,
                parameters: instance.parameters,
                maintenance_info: instance
                    .maintenance_info_version
                    .map(|version| MaintenanceInfoResponse { version }),
            }),
        }
    }

    /// Route `last-operation`: advances the lifecycle from Cloudify and reports it. An
    /// instance whose record is gone answers 410 (deleted), or 404 when the platform asks
    /// about another operation than a deprovision.
    #[tracing::instrument(skip_all, fields(instance_id = %id))]
    pub async fn last_operation(
        &self,
        id: &InstanceId,
        operation: Option<&OperationId>,
    ) -> Result<LastOperation, BrokerError> {
        for _ in 0..MAX_RETRIES {
            let Some(instance) = self.store.instance(id).await? else {
                let deprovision = operation
                    .is_none_or(|o| o.as_str().starts_with(OperationKind::Deprovision.as_str()));
                return Err(if deprovision {
                    BrokerError::Gone(format!("instance {id} does not exist"))
                } else {
                    BrokerError::NotFound(format!("instance {id} does not exist"))
                });
            };
            if let (Some(asked), Some(current)) = (operation, instance.operation.as_ref()) {
                if asked != &current.id {
                    tracing::info!(asked = %asked, current = %current.id, "reporting the current operation");
                }
            }
            let running = instance.operation.as_ref().is_some_and(|o| o.in_progress());
            if !running {
                return Ok(self.report(&instance));
            }
            let orchestrator = self.cloudify()?;
            let limit = self.maximum_polling_duration(&instance).await;
            match self
                .advance_and_record(orchestrator.as_ref(), instance, limit)
                .await
            {
                Ok(current) => return Ok(self.report(&current)),
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BrokerError::ConcurrencyError)
    }

    /// The plan's `maximum_polling_duration` in seconds, if the catalog (active or not) still
    /// has the plan; a catalog that cannot be read only skips the check.
    async fn maximum_polling_duration(&self, instance: &Instance) -> Option<u64> {
        let snapshot = match self.catalog_snapshot().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "catalog unreadable; maximum_polling_duration not checked");
                return None;
            }
        };
        snapshot
            .catalog
            .entry(&instance.service_id)
            .and_then(|e| e.instance_plan(&instance.plan_id))
            .and_then(|p| p.maximum_polling_duration)
    }

    /// Runs the lifecycle steps that can run now and records the result. A deprovision that
    /// finished removes the record.
    async fn advance_and_record(
        &self,
        orchestrator: &dyn Orchestrator,
        instance: Instance,
        limit: Option<u64>,
    ) -> Result<Instance, StoreError> {
        let mut current = instance.clone();
        self.advance(orchestrator, &mut current).await;
        if let Some(secs) = limit {
            enforce_deadline(orchestrator, &mut current, secs).await;
        }
        if current == instance {
            return Ok(current);
        }
        let finished_deprovision = current
            .operation
            .as_ref()
            .is_some_and(|o| o.kind == OperationKind::Deprovision && !o.in_progress())
            && current.operation.as_ref().map(|o| o.state) == Some(OperationState::Succeeded);
        if finished_deprovision {
            self.store
                .delete_instance(&current.id, current.version)
                .await?;
            tracing::info!("instance deprovisioned and forgotten");
            return Ok(current);
        }
        self.store.update_instance(&current).await
    }

    /// Advances the instance's operation as far as it can go now (DESIGN.md §5,
    /// cloudify-api.md §9) and keeps the instance state in line with it.
    async fn advance(&self, orchestrator: &dyn Orchestrator, instance: &mut Instance) {
        let deployment_id = instance.deployment_id.clone();
        if let Some(op) = instance.operation.as_mut() {
            for _ in 0..MAX_STEPS {
                if !op.in_progress() {
                    break;
                }
                if step(orchestrator, &deployment_id, op).await == Next::Wait {
                    break;
                }
            }
            if let Some(state) = settled_state(op) {
                instance.state = state;
            }
            if !op.in_progress() {
                if let Some(target) = op.target.take() {
                    if op.state == OperationState::Succeeded {
                        instance.plan_id = target.plan_id;
                        instance.parameters = target.parameters;
                        instance.maintenance_info_version = target.maintenance_info_version;
                    }
                }
            }
        }
    }

    fn report(&self, instance: &Instance) -> LastOperation {
        let Some(op) = &instance.operation else {
            return LastOperation::of(OperationState::Succeeded, None);
        };
        let mut answer = LastOperation::of(op.state, op.description.clone());
        match op.state {
            OperationState::InProgress => {
                answer.retry_after_secs = Some(self.settings.retry_after_secs);
            }
            OperationState::Failed if op.kind == OperationKind::Deprovision => {
                answer.instance_usable = Some(false);
            }
            OperationState::Failed if op.kind == OperationKind::Update => {
                answer.instance_usable = Some(true);
            }
            _ => {}
        }
        answer
    }

    /// Route `bind`: synchronous (201). Nothing is left half-created on failure.
    #[tracing::instrument(skip_all, fields(instance_id = %instance_id, binding_id = %binding_id))]
    pub async fn bind(
        &self,
        instance_id: &InstanceId,
        binding_id: &BindingId,
        req: BindRequest,
    ) -> Result<Reply<BindResponse>, BrokerError> {
        let Some(instance) = self.store.instance(instance_id).await? else {
            return Err(BrokerError::NotFound(format!(
                "instance {instance_id} does not exist"
            )));
        };
        usable(&instance)?;
        let predecessor = match &req.predecessor_binding_id {
            None => None,
            Some(p) => {
                let now = OffsetDateTime::now_utc();
                let found = self
                    .store
                    .binding(instance_id, p)
                    .await?
                    .filter(|b| b.state == BindingState::Bound)
                    .filter(|b| b.expires_at.is_none_or(|t| t > now));
                Some(found.ok_or_else(|| {
                    BrokerError::BadRequest(format!(
                        "predecessor_binding_id {p} names no live binding of instance {instance_id}"
                    ))
                })?)
            }
        };
        let service_id = req
            .service_id
            .clone()
            .unwrap_or_else(|| instance.service_id.clone());
        let plan_id = req
            .plan_id
            .clone()
            .unwrap_or_else(|| instance.plan_id.clone());
        let parameters = req
            .parameters
            .clone()
            .or_else(|| predecessor.as_ref().map(|p| p.parameters.clone()))
            .unwrap_or_default();
        let hash = binding_request_hash(
            &service_id,
            &plan_id,
            &parameters,
            req.bind_resource.as_ref(),
            req.app_guid.as_deref(),
            req.predecessor_binding_id.as_ref(),
        );
        // No read of the binding first: the conditional create below tells a new binding
        // from an existing one. A request that fails the checks is still answered as a
        // replay when the binding exists (as if it had been read first).
        let checked = async {
            same_service_and_plan(&instance, &service_id, &plan_id)?;
            let snapshot = self.catalog_snapshot().await?;
            let entry = snapshot
                .catalog
                .entry(&service_id)
                .filter(|e| e.active)
                .ok_or_else(|| {
                    BrokerError::BadRequest(format!(
                        "service_id {service_id} is not in the catalog"
                    ))
                })?;
            // The instance's plan (checked above), active or retired.
            let plan = entry.instance_plan(&plan_id).ok_or_else(|| {
                BrokerError::BadRequest(format!(
                    "plan_id {plan_id} is not a plan of service {}",
                    entry.service.name
                ))
            })?;
            if !entry.plan_bindable(plan) {
                return Err(BrokerError::BadRequest(format!(
                    "plan {} of service {} is not bindable",
                    plan.name, entry.service.name
                )));
            }
            let settings = self
                .store
                .service_settings(&entry.blueprint_id)
                .await?
                .ok_or_else(|| {
                    BrokerError::BadRequest(format!(
                        "service {} is not bindable: no binder is configured for it",
                        entry.service.name
                    ))
                })?;
            if predecessor.is_some()
                && !plan.binding_rotatable.unwrap_or(settings.binding_rotatable)
            {
                return Err(BrokerError::BadRequest(format!(
                    "plan {} does not allow binding rotation",
                    plan.name
                )));
            }
            if let Some(given) = &req.parameters {
                snapshot
                    .validators
                    .check(plan, SchemaKind::Bind, given)
                    .map_err(BrokerError::BadRequest)?;
            }
            let binder = self.binder(&settings.binder)?;
            let orchestrator = self.cloudify()?;
            Ok::<_, BrokerError>((settings, binder, orchestrator))
        }
        .await;
        let (settings, binder, orchestrator) = match checked {
            Ok(checked) => checked,
            Err(e) if e.is_store_failure() => return Err(e),
            Err(e) => {
                return match self.store.binding(instance_id, binding_id).await {
                    Ok(Some(existing)) => self.bind_replay(existing, &hash).await,
                    _ => Err(e),
                };
            }
        };

        let record = Binding {
            instance_id: instance_id.clone(),
            id: binding_id.clone(),
            service_id,
            plan_id,
            request_hash: hash.clone(),
            parameters: parameters.clone(),
            context: req.context.clone().map(Value::Object),
            bind_resource: req.bind_resource.clone().map(Value::Object),
            predecessor_binding_id: req.predecessor_binding_id.clone(),
            binder: settings.binder.clone(),
            binder_state: Value::Null,
            state: BindingState::Creating,
            expires_at: None,
            renew_before: None,
            created_at: OffsetDateTime::now_utc(),
            version: 0,
        };
        let record = match self.store.create_binding(&record).await {
            Ok(r) => r,
            Err(StoreError::AlreadyExists) => {
                let existing = self
                    .store
                    .binding(instance_id, binding_id)
                    .await?
                    .ok_or(BrokerError::ConcurrencyError)?;
                return self.bind_replay(existing, &hash).await;
            }
            Err(e) => return Err(e.into()),
        };
        let ctx = BindContext {
            instance: &instance,
            binding_id,
            parameters: &parameters,
            outputs: &Map::new(),
            settings: &settings,
        };
        // Halted by a deprovision (the hold) or failed: the new record goes again.
        let outcome = async {
            self.hold_instance(&instance).await?;
            self.bind_run(orchestrator.as_ref(), binder.as_ref(), &record, ctx)
                .await
        }
        .await;
        match outcome {
            Ok(body) => Ok(Reply::new(Completion::Created, body)),
            Err(e) => {
                match self
                    .store
                    .delete_binding(instance_id, binding_id, record.version)
                    .await
                {
                    Ok(()) | Err(StoreError::Conflict) => {}
                    Err(d) => tracing::warn!(error = %d, "could not remove the failed binding"),
                }
                Err(e)
            }
        }
    }

    /// The bind's half of the exclusion between bind and deprovision. Once its binding
    /// record exists, a bind re-reads the instance and writes it back (version-checked).
    /// A deprovision claims the instance with a version-checked write too, and lists the
    /// bindings only after it read the instance: so either its claim comes first and this
    /// write fails (the re-read shows the instance deprovisioning: 422, nothing made), or
    /// this write (or another one after the record appeared) comes first and the
    /// deprovision meets the record (422 while it is being created, revoked once bound).
    ///
    /// The first write is of the instance as the bind read it before the record existed: if
    /// nobody wrote since, that write is as good as one after a fresh read (and saves the
    /// read); if somebody did, it fails and the bind re-reads and writes as above.
    async fn hold_instance(&self, read: &Instance) -> Result<(), BrokerError> {
        match self.store.update_instance(read).await {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict) => self.hold_instance_again(&read.id).await,
            Err(e) => Err(e.into()),
        }
    }

    /// [`Self::hold_instance`] after a conflict: a fresh read, then the version-checked write.
    async fn hold_instance_again(&self, instance_id: &InstanceId) -> Result<(), BrokerError> {
        let current = self
            .store
            .instance(instance_id)
            .await?
            .ok_or(BrokerError::ConcurrencyError)?;
        usable(&current)?;
        match self.store.update_instance(&current).await {
            Ok(_) => Ok(()),
            // Someone wrote after the record appeared; fine unless it was a deprovision.
            Err(StoreError::Conflict) => usable(
                &self
                    .store
                    .instance(instance_id)
                    .await?
                    .ok_or(BrokerError::ConcurrencyError)?,
            ),
            Err(e) => Err(e.into()),
        }
    }

    async fn bind_run(
        &self,
        orchestrator: &dyn Orchestrator,
        binder: &dyn Binder,
        record: &Binding,
        ctx: BindContext<'_>,
    ) -> Result<BindResponse, BrokerError> {
        let outputs = orchestrator
            .outputs(&ctx.instance.deployment_id)
            .await
            .map_err(cloudify_error)?;
        let ctx = BindContext {
            outputs: &outputs,
            ..ctx
        };
        let bound = binder
            .bind(&ctx)
            .await
            .map_err(|e| binder_error(&record.binder, e))?;
        let mut done = record.clone();
        done.state = BindingState::Bound;
        done.binder_state = bound.state;
        done.expires_at = bound.lease.map(|l| l.expires_at);
        done.renew_before = bound.lease.map(|l| l.renew_before);
        if let Err(e) = self.store.update_binding(&done).await {
            if let Err(r) = binder.revoke(&done).await {
                tracing::error!(error = %r, "could not revoke the credentials of a failed bind");
            }
            return Err(e.into());
        }
        tracing::info!("binding created");
        Ok(BindResponse {
            credentials: bound.credentials,
            metadata: metadata_of(&done),
            parameters: None,
        })
    }

    /// The idempotency matrix for a PUT on an existing binding (osb.md §8).
    async fn bind_replay(
        &self,
        existing: Binding,
        hash: &str,
    ) -> Result<Reply<BindResponse>, BrokerError> {
        if existing.request_hash != hash {
            return Err(BrokerError::Conflict(format!(
                "binding {} already exists with different attributes",
                existing.id
            )));
        }
        if existing.state != BindingState::Bound {
            return Err(BrokerError::ConcurrencyError);
        }
        let binder = self.binder(&existing.binder)?;
        let credentials = binder
            .stored_credentials(&existing)
            .await
            .map_err(|e| binder_error(&existing.binder, e))?;
        Ok(Reply::new(
            Completion::Done,
            BindResponse {
                credentials,
                metadata: metadata_of(&existing),
                parameters: None,
            },
        ))
    }

    /// Route `unbind`: revokes and forgets the binding (200 `{}`); 410 when unknown. A bind
    /// still in flight is halted: its record disappears and it revokes what it made.
    #[tracing::instrument(skip_all, fields(instance_id = %instance_id, binding_id = %binding_id))]
    pub async fn unbind(
        &self,
        instance_id: &InstanceId,
        binding_id: &BindingId,
        req: UnbindRequest,
    ) -> Result<Empty, BrokerError> {
        for _ in 0..MAX_RETRIES {
            let Some(binding) = self.store.binding(instance_id, binding_id).await? else {
                return Err(BrokerError::Gone(format!(
                    "binding {binding_id} of instance {instance_id} does not exist"
                )));
            };
            if req.service_id != binding.service_id || req.plan_id != binding.plan_id {
                return Err(BrokerError::BadRequest(format!(
                    "service_id and plan_id must be those of binding {binding_id}"
                )));
            }
            let binder = self.binder(&binding.binder)?;
            binder
                .revoke(&binding)
                .await
                .map_err(|e| binder_error(&binding.binder, e))?;
            match self
                .store
                .delete_binding(instance_id, binding_id, binding.version)
                .await
            {
                Ok(()) => {
                    tracing::info!("binding revoked");
                    return Ok(Empty {});
                }
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(BrokerError::ConcurrencyError)
    }

    /// Route `get-binding`: 404 when unknown or still being created; 200 with credentials.
    #[tracing::instrument(skip_all, fields(instance_id = %instance_id, binding_id = %binding_id))]
    pub async fn get_binding(
        &self,
        instance_id: &InstanceId,
        binding_id: &BindingId,
    ) -> Result<BindResponse, BrokerError> {
        let binding = self
            .store
            .binding(instance_id, binding_id)
            .await?
            .filter(|b| b.state == BindingState::Bound)
            .ok_or_else(|| {
                BrokerError::NotFound(format!(
                    "binding {binding_id} of instance {instance_id} does not exist"
                ))
            })?;
        let binder = self.binder(&binding.binder)?;
        let credentials = binder
            .stored_credentials(&binding)
            .await
            .map_err(|e| binder_error(&binding.binder, e))?;
        Ok(BindResponse {
            credentials,
            metadata: metadata_of(&binding),
            parameters: Some(binding.parameters),
        })
    }

    /// Route `binding-last-operation`. Binds are never asynchronous: an existing binding
    /// answers `succeeded` (`in progress` in the short window of a bind), an unknown one 404.
    #[tracing::instrument(skip_all, fields(instance_id = %instance_id, binding_id = %binding_id))]
    pub async fn binding_last_operation(
        &self,
        instance_id: &InstanceId,
        binding_id: &BindingId,
    ) -> Result<LastOperation, BrokerError> {
        match self.store.binding(instance_id, binding_id).await? {
            Some(b) if b.state == BindingState::Bound => {
                Ok(LastOperation::of(OperationState::Succeeded, None))
            }
            Some(_) => {
                let mut answer = LastOperation::of(OperationState::InProgress, None);
                answer.retry_after_secs = Some(self.settings.retry_after_secs);
                Ok(answer)
            }
            None => Err(BrokerError::NotFound(format!(
                "binding {binding_id} of instance {instance_id} does not exist"
            ))),
        }
    }
}

fn metadata_of(binding: &Binding) -> Option<BindingMetadata> {
    let expires_at = binding.expires_at?;
    let renew_before = binding.renew_before.unwrap_or(expires_at).min(expires_at);
    Some(BindingMetadata {
        expires_at: osb_time(expires_at),
        renew_before: osb_time(renew_before),
    })
}

/// An instance that other operations may work on: provisioned and not being changed.
/// Labels of a new deployment (cloudify-api.md §5), so operators can find it from Cloudify's
/// side: the instance ID, and the platform, namespace and cluster ID from the provision
/// `context` when given. Values lose control characters and `"` and keep 256 characters.
fn deployment_labels(
    id: &InstanceId,
    context: Option<&Map<String, Value>>,
) -> Vec<(String, String)> {
    let mut labels = vec![("osb-instance".to_owned(), id.to_string())];
    let Some(context) = context else {
        return labels;
    };
    for (field, key) in [
        ("platform", "osb-platform"),
        ("namespace", "osb-namespace"),
        ("clusterid", "osb-cluster-id"),
    ] {
        let Some(value) = context.get(field).and_then(Value::as_str) else {
            continue;
        };
        let clean: String = value
            .chars()
            .filter(|c| !c.is_control() && *c != '"')
            .take(256)
            .collect();
        if !clean.trim().is_empty() {
            labels.push((key.to_owned(), clean));
        }
    }
    labels
}

/// Whether the provision request that created this record may still be creating the
/// deployment: nothing recorded after the create (version 1, no execution) and recent.
fn provision_request_in_flight(instance: &Instance, now: OffsetDateTime) -> bool {
    instance.state == InstanceState::Provisioning
        && instance.version <= 1
        && instance.operation.as_ref().is_some_and(|o| {
            o.kind == OperationKind::Provision
                && o.in_progress()
                && o.execution_id.is_none()
                && now - o.started_at < PROVISION_IN_FLIGHT
        })
}

fn usable(instance: &Instance) -> Result<(), BrokerError> {
    match instance.state {
        InstanceState::Provisioned => Ok(()),
        InstanceState::Provisioning | InstanceState::Updating | InstanceState::Deprovisioning => {
            Err(BrokerError::ConcurrencyError)
        }
        InstanceState::ProvisionFailed => Err(BrokerError::unprocessable(
            "InstanceNotUsable",
            format!(
                "Service instance {} failed to provision; delete it and provision it again.",
                instance.id
            ),
        )),
    }
}

fn same_service_and_plan(
    instance: &Instance,
    service_id: &ServiceId,
    plan_id: &PlanId,
) -> Result<(), BrokerError> {
    if service_id != &instance.service_id {
        return Err(BrokerError::BadRequest(format!(
            "service_id {service_id} is not the service of instance {}",
            instance.id
        )));
    }
    if plan_id != &instance.plan_id {
        return Err(BrokerError::BadRequest(format!(
            "plan_id {plan_id} is not the plan of instance {}",
            instance.id
        )));
    }
    Ok(())
}

fn check_maintenance_info(plan: &Plan, requested: Option<&str>) -> Result<(), BrokerError> {
    match requested {
        None => Ok(()),
        Some(v) if plan.maintenance_info.as_ref().map(|m| m.version.as_str()) == Some(v) => Ok(()),
        Some(_) => Err(BrokerError::MaintenanceInfoConflict),
    }
}

/// Fails an operation that outlived the plan's `maximum_polling_duration` (osb.md §6.3): the
/// platform considers it failed anyway, so the broker says so and cancels what still runs.
async fn enforce_deadline(orchestrator: &dyn Orchestrator, instance: &mut Instance, secs: u64) {
    let Some(op) = instance.operation.as_mut() else {
        return;
    };
    let limit = time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX));
    if !op.in_progress() || OffsetDateTime::now_utc() - op.started_at < limit {
        return;
    }
    match orchestrator
        .running_execution(&instance.deployment_id)
        .await
    {
        Ok(Some(execution)) => {
            if let Err(e) = orchestrator.cancel_execution(&execution).await {
                tracing::warn!(error = %e, %execution, "could not cancel an overdue execution");
            }
        }
        Ok(None) | Err(OrchestratorError::NotFound(_)) => {}
        Err(e) => tracing::warn!(error = %e, "could not look for an overdue execution"),
    }
    tracing::warn!(
        kind = op.kind.as_str(),
        secs,
        "operation overran maximum_polling_duration"
    );
    op.fail(format!(
        "The {} did not finish within the plan's maximum_polling_duration of {secs} seconds.",
        op.kind.as_str()
    ));
    if let Some(state) = settled_state(op) {
        instance.state = state;
    }
}

/// The instance state an operation implies once it ended (None while it runs).
fn settled_state(op: &Operation) -> Option<InstanceState> {
    match (op.kind, op.state) {
        (_, OperationState::InProgress) => None,
        (OperationKind::Provision, OperationState::Succeeded) => Some(InstanceState::Provisioned),
        (OperationKind::Provision, OperationState::Failed) => Some(InstanceState::ProvisionFailed),
        (OperationKind::Update, _) => Some(InstanceState::Provisioned),
        (OperationKind::Deprovision, _) => Some(InstanceState::Deprovisioning),
    }
}

/// One step of the lifecycle state machine. Transient orchestrator errors leave the
/// operation where it is (the next poll retries); refusals end it as failed with the
/// orchestrator's message; a vanished deployment ends a deprovision successfully.
async fn step(orchestrator: &dyn Orchestrator, deployment_id: &str, op: &mut Operation) -> Next {
    use OrchestratorError as E;
    let transient =
        |e: &E| tracing::warn!(error = %e, phase = ?op.phase, "Cloudify step will be retried");
    match (op.kind, op.phase) {
        (OperationKind::Provision, Phase::CreateEnvironment) => {
            match orchestrator
                .start_workflow(deployment_id, Workflow::Install)
                .await
            {
                Ok(execution) => {
                    op.advance(Phase::Install, Some(execution));
                    op.description = Some("installing".into());
                }
                Err(E::EnvironmentPending) => {
                    op.description = Some("creating the deployment environment".into());
                }
                // The environment is ready and something runs: our own install whose start
                // answer was lost (POST /executions is never resent). Adopt it rather than
                // start a second one once it ends.
                Err(E::Busy) => match orchestrator.running_execution(deployment_id).await {
                    Ok(Some(execution)) => {
                        op.advance(Phase::Install, Some(execution));
                        op.description = Some("installing".into());
                    }
                    _ => op.description = Some("waiting for a running Cloudify execution".into()),
                },
                Err(E::EnvironmentFailed(m) | E::InvalidInput(m) | E::Rejected(m)) => op.fail(m),
                Err(E::NotFound(_)) => op.fail("the Cloudify deployment no longer exists"),
                Err(e) => transient(&e),
            }
            Next::Wait
        }
        (OperationKind::Provision, Phase::Install) | (OperationKind::Update, Phase::Update) => {
            let workflow = if op.kind == OperationKind::Provision {
                "install"
            } else {
                "update"
            };
            let Some(execution) = op.execution_id.clone() else {
                if op.kind == OperationKind::Update {
                    // The start answer was not recorded: adopt the deployment's running
                    // execution, or report that the update never started.
                    match orchestrator.running_execution(deployment_id).await {
                        Ok(Some(execution)) => op.advance(Phase::Update, Some(execution)),
                        Ok(None) => op.fail("the Cloudify deployment update did not start"),
                        Err(e) => transient(&e),
                    }
                    return Next::Wait;
                }
                op.phase = Phase::CreateEnvironment;
                return Next::Again;
            };
            match orchestrator.execution(&execution).await {
                Ok(ExecutionState::InProgress(status)) => {
                    op.description = Some(format!("{workflow}: {status}"));
                }
                Ok(ExecutionState::Succeeded) => {
                    op.description = None;
                    op.succeed();
                }
                Ok(ExecutionState::Failed(m)) => op.fail(m),
                Ok(ExecutionState::Cancelled) => op.fail(format!("{workflow} was cancelled")),
                Err(E::NotFound(_)) => op.fail("the Cloudify deployment no longer exists"),
                Err(e) => transient(&e),
            }
            Next::Wait
        }
        (OperationKind::Deprovision, Phase::Cancel) => match op.execution_id.clone() {
            None => match orchestrator.running_execution(deployment_id).await {
                Ok(Some(execution)) => match orchestrator.cancel_execution(&execution).await {
                    Ok(()) | Err(E::NotFound(_)) => {
                        op.advance(Phase::Cancel, Some(execution));
                        op.description = Some("cancelling the running execution".into());
                        Next::Wait
                    }
                    Err(e) => {
                        transient(&e);
                        Next::Wait
                    }
                },
                Ok(None) => {
                    op.advance(Phase::Uninstall, None);
                    Next::Again
                }
                Err(E::NotFound(_)) => {
                    op.advance(Phase::Delete, None);
                    Next::Again
                }
                Err(e) => {
                    transient(&e);
                    Next::Wait
                }
            },
            Some(execution) => match orchestrator.execution(&execution).await {
                Ok(ExecutionState::InProgress(_)) => Next::Wait,
                Ok(_) | Err(E::NotFound(_)) => {
                    op.advance(Phase::Uninstall, None);
                    Next::Again
                }
                Err(e) => {
                    transient(&e);
                    Next::Wait
                }
            },
        },
        (OperationKind::Deprovision, Phase::Uninstall) => match op.execution_id.clone() {
            None => match orchestrator
                .start_workflow(deployment_id, Workflow::Uninstall)
                .await
            {
                Ok(execution) => {
                    op.advance(Phase::Uninstall, Some(execution));
                    op.description = Some("uninstalling".into());
                    Next::Wait
                }
                Err(E::EnvironmentFailed(_) | E::NotFound(_)) => {
                    op.advance(Phase::Delete, None);
                    Next::Again
                }
                // Nothing ran when the Cancel phase ended: this is our own uninstall whose
                // start answer was lost. Wait for it instead of starting another.
                Err(E::Busy) => {
                    if let Ok(Some(execution)) = orchestrator.running_execution(deployment_id).await
                    {
                        op.advance(Phase::Uninstall, Some(execution));
                        op.description = Some("uninstalling".into());
                    }
                    Next::Wait
                }
                Err(E::InvalidInput(m) | E::Rejected(m)) => {
                    op.fail(format!("uninstall could not start: {m}"));
                    Next::Wait
                }
                Err(e) => {
                    transient(&e);
                    Next::Wait
                }
            },
            Some(execution) => match orchestrator.execution(&execution).await {
                Ok(ExecutionState::InProgress(status)) => {
                    op.description = Some(format!("uninstall: {status}"));
                    Next::Wait
                }
                Ok(ExecutionState::Succeeded) | Err(E::NotFound(_)) => {
                    op.advance(Phase::Delete, None);
                    Next::Again
                }
                Ok(ExecutionState::Failed(m)) => {
                    op.fail(format!("uninstall failed: {m}"));
                    Next::Wait
                }
                Ok(ExecutionState::Cancelled) => {
                    op.fail("uninstall was cancelled");
                    Next::Wait
                }
                Err(e) => {
                    transient(&e);
                    Next::Wait
                }
            },
        },
        (OperationKind::Deprovision, Phase::Delete) => {
            op.description = Some("deleting the deployment".into());
            match orchestrator.deployment_exists(deployment_id).await {
                Ok(false) => op.succeed(),
                Ok(true) => match orchestrator.delete_deployment(deployment_id).await {
                    Ok(()) => {
                        if let Ok(false) = orchestrator.deployment_exists(deployment_id).await {
                            op.succeed();
                        }
                    }
                    Err(E::NotFound(_)) => op.succeed(),
                    Err(e) => transient(&e),
                },
                Err(e) => transient(&e),
            }
            if !op.in_progress() {
                op.description = None;
            }
            Next::Wait
        }
        (kind, phase) => {
            tracing::error!(?kind, ?phase, "operation in a phase it cannot be in");
            op.fail("the broker lost track of this operation");
            Next::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::binding::LeaseTimes;
    use crate::domain::ports::{Blueprint, Bound};
    use std::sync::Mutex;

    /// A scripted orchestrator for the state machine decisions.
    #[derive(Default)]
    struct Script {
        start: Mutex<Vec<Result<String, OrchestratorError>>>,
        execution: Mutex<Vec<Result<ExecutionState, OrchestratorError>>>,
        running: Mutex<Vec<Result<Option<String>, OrchestratorError>>>,
        exists: Mutex<Vec<Result<bool, OrchestratorError>>>,
        cancelled: Mutex<Vec<String>>,
        deleted: Mutex<usize>,
    }

    fn pop<T>(m: &Mutex<Vec<T>>) -> T {
        m.lock().unwrap().remove(0)
    }

    #[async_trait::async_trait]
    impl Orchestrator for Script {
        async fn ping(&self) -> Result<String, OrchestratorError> {
            Ok("test".into())
        }
        async fn blueprints(&self) -> Result<Vec<Blueprint>, OrchestratorError> {
            Ok(vec![])
        }
        async fn create_deployment(&self, _: &DeploymentSpec) -> Result<(), OrchestratorError> {
            Ok(())
        }
        async fn start_workflow(&self, _: &str, _: Workflow) -> Result<String, OrchestratorError> {
            pop(&self.start)
        }
        async fn execution(&self, _: &str) -> Result<ExecutionState, OrchestratorError> {
            pop(&self.execution)
        }
        async fn running_execution(&self, _: &str) -> Result<Option<String>, OrchestratorError> {
            pop(&self.running)
        }
        async fn cancel_execution(&self, id: &str) -> Result<(), OrchestratorError> {
            self.cancelled.lock().unwrap().push(id.into());
            Ok(())
        }
        async fn delete_deployment(&self, _: &str) -> Result<(), OrchestratorError> {
            *self.deleted.lock().unwrap() += 1;
            Ok(())
        }
        async fn deployment_exists(&self, _: &str) -> Result<bool, OrchestratorError> {
            pop(&self.exists)
        }
        async fn outputs(&self, _: &str) -> Result<Map<String, Value>, OrchestratorError> {
            Ok(Map::new())
        }
    }

    #[test]
    fn deployment_labels_carry_the_platform_namespace_and_cluster_sanitised() {
        let id = InstanceId::parse("inst-1").unwrap();
        let ctx = serde_json::json!({
            "platform": "kubernetes",
            "namespace": "team\"a\u{7}",
            "clusterid": "c".repeat(300),
            "instance_name": "ignored",
        });
        let labels = deployment_labels(&id, ctx.as_object());
        assert_eq!(labels[0], ("osb-instance".into(), "inst-1".into()));
        assert_eq!(labels[1], ("osb-platform".into(), "kubernetes".into()));
        assert_eq!(labels[2], ("osb-namespace".into(), "teama".into()));
        assert_eq!(labels[3].0, "osb-cluster-id");
        assert_eq!(labels[3].1.len(), 256);
        assert_eq!(labels.len(), 4);
        assert_eq!(deployment_labels(&id, None).len(), 1);
    }

    async fn run(script: &Script, op: &mut Operation) {
        for _ in 0..MAX_STEPS {
            if !op.in_progress() || step(script, "osb-x", op).await == Next::Wait {
                break;
            }
        }
    }

    fn provision_op() -> Operation {
        Operation::start(OperationKind::Provision, Phase::CreateEnvironment, None)
    }

    #[tokio::test]
    async fn a_pending_environment_keeps_the_provision_in_create_environment() {
        let s = Script::default();
        s.start
            .lock()
            .unwrap()
            .push(Err(OrchestratorError::EnvironmentPending));
        let mut op = provision_op();
        run(&s, &mut op).await;
        assert_eq!(op.phase, Phase::CreateEnvironment);
        assert!(op.in_progress());
    }

    #[tokio::test]
    async fn an_install_whose_start_answer_was_lost_is_adopted_not_started_twice() {
        let s = Script::default();
        s.start.lock().unwrap().push(Err(OrchestratorError::Busy));
        s.running.lock().unwrap().push(Ok(Some("e-lost".into())));
        let mut op = provision_op();
        run(&s, &mut op).await;
        assert_eq!(op.phase, Phase::Install);
        assert_eq!(op.execution_id.as_deref(), Some("e-lost"));
        assert!(op.in_progress());
    }

    #[tokio::test]
    async fn an_uninstall_whose_start_answer_was_lost_is_waited_for() {
        let s = Script::default();
        s.start.lock().unwrap().push(Err(OrchestratorError::Busy));
        s.running.lock().unwrap().push(Ok(Some("u-lost".into())));
        let mut op = Operation::start(OperationKind::Deprovision, Phase::Uninstall, None);
        run(&s, &mut op).await;
        assert_eq!(op.phase, Phase::Uninstall);
        assert_eq!(op.execution_id.as_deref(), Some("u-lost"));
        assert!(op.in_progress());
    }

    #[tokio::test]
    async fn a_started_install_moves_to_install_and_its_success_ends_the_provision() {
        let s = Script::default();
        s.start.lock().unwrap().push(Ok("e1".into()));
        s.execution
            .lock()
            .unwrap()
            .push(Ok(ExecutionState::InProgress("started".into())));
        s.execution
            .lock()
            .unwrap()
            .push(Ok(ExecutionState::Succeeded));
        let mut op = provision_op();
        run(&s, &mut op).await;
        assert_eq!(op.phase, Phase::Install);
        assert_eq!(op.execution_id.as_deref(), Some("e1"));
        run(&s, &mut op).await;
        assert!(
            op.in_progress(),
            "an unfinished execution stays in progress"
        );
        assert_eq!(op.description.as_deref(), Some("install: started"));
        run(&s, &mut op).await;
        assert_eq!(op.state, OperationState::Succeeded);
        assert_eq!(settled_state(&op), Some(InstanceState::Provisioned));
    }

    #[tokio::test]
    async fn a_failed_install_fails_the_provision_with_the_orchestrators_text() {
        let s = Script::default();
        s.start.lock().unwrap().push(Ok("e1".into()));
        s.execution
            .lock()
            .unwrap()
            .push(Ok(ExecutionState::Failed("boom in node db".into())));
        let mut op = provision_op();
        run(&s, &mut op).await;
        run(&s, &mut op).await;
        assert_eq!(op.state, OperationState::Failed);
        assert_eq!(op.description.as_deref(), Some("boom in node db"));
        assert_eq!(settled_state(&op), Some(InstanceState::ProvisionFailed));
    }

    #[tokio::test]
    async fn a_failed_environment_fails_the_provision() {
        let s = Script::default();
        s.start
            .lock()
            .unwrap()
            .push(Err(OrchestratorError::EnvironmentFailed(
                "bad input x".into(),
            )));
        let mut op = provision_op();
        run(&s, &mut op).await;
        assert_eq!(op.state, OperationState::Failed);
        assert_eq!(op.description.as_deref(), Some("bad input x"));
    }

    #[tokio::test]
    async fn an_unreachable_orchestrator_leaves_the_operation_where_it_is() {
        let s = Script::default();
        s.start.lock().unwrap().push(Ok("e1".into()));
        s.execution
            .lock()
            .unwrap()
            .push(Err(OrchestratorError::Unavailable("timeout".into())));
        let mut op = provision_op();
        run(&s, &mut op).await;
        run(&s, &mut op).await;
        assert!(op.in_progress());
        assert_eq!(op.phase, Phase::Install);
    }

    #[tokio::test]
    async fn deprovision_cancels_a_running_execution_then_uninstalls_and_deletes() {
        let s = Script::default();
        s.running.lock().unwrap().push(Ok(Some("install-1".into())));
        let mut op = Operation::start(OperationKind::Deprovision, Phase::Cancel, None);
        run(&s, &mut op).await;
        assert_eq!(s.cancelled.lock().unwrap().as_slice(), ["install-1"]);
        assert_eq!(op.phase, Phase::Cancel);
        s.execution
            .lock()
            .unwrap()
            .push(Ok(ExecutionState::Cancelled));
        s.start.lock().unwrap().push(Ok("uninstall-1".into()));
        run(&s, &mut op).await;
        assert_eq!(op.phase, Phase::Uninstall);
        assert_eq!(op.execution_id.as_deref(), Some("uninstall-1"));
        s.execution
            .lock()
            .unwrap()
            .push(Ok(ExecutionState::Succeeded));
        s.exists.lock().unwrap().push(Ok(true));
        s.exists.lock().unwrap().push(Ok(true));
        run(&s, &mut op).await;
        assert_eq!(op.phase, Phase::Delete);
        assert_eq!(*s.deleted.lock().unwrap(), 1);
        assert!(op.in_progress(), "waits until the deployment is gone");
        s.exists.lock().unwrap().push(Ok(false));
        run(&s, &mut op).await;
        assert_eq!(op.state, OperationState::Succeeded);
    }

    #[tokio::test]
    async fn deprovision_of_a_deployment_that_is_already_gone_succeeds() {
        let s = Script::default();
        s.running
            .lock()
            .unwrap()
            .push(Err(OrchestratorError::NotFound("osb-x".into())));
        s.exists.lock().unwrap().push(Ok(false));
        let mut op = Operation::start(OperationKind::Deprovision, Phase::Cancel, None);
        run(&s, &mut op).await;
        assert_eq!(op.state, OperationState::Succeeded);
        assert_eq!(*s.deleted.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn a_failed_uninstall_fails_the_deprovision_with_the_orchestrators_text() {
        let s = Script::default();
        s.running.lock().unwrap().push(Ok(None));
        s.start.lock().unwrap().push(Ok("u1".into()));
        s.execution
            .lock()
            .unwrap()
            .push(Ok(ExecutionState::Failed("node stuck".into())));
        let mut op = Operation::start(OperationKind::Deprovision, Phase::Cancel, None);
        run(&s, &mut op).await;
        run(&s, &mut op).await;
        assert_eq!(op.state, OperationState::Failed);
        assert_eq!(
            op.description.as_deref(),
            Some("uninstall failed: node stuck")
        );
    }

    #[test]
    fn binding_times_use_the_osb_format() {
        let t = time::macros::datetime!(2019-12-31 23:59:59.25 UTC);
        assert_eq!(osb_time(t), "2019-12-31T23:59:59.2Z");
    }

    #[test]
    fn renew_before_never_exceeds_expires_at() {
        let now = OffsetDateTime::now_utc();
        let lease = LeaseTimes {
            expires_at: now,
            renew_before: now + time::Duration::hours(1),
        };
        let bound = Bound {
            credentials: Credentials::default(),
            state: Value::Null,
            lease: Some(lease),
        };
        let binding = Binding {
            instance_id: InstanceId::parse("i").unwrap(),
            id: BindingId::parse("b").unwrap(),
            service_id: ServiceId::parse("s").unwrap(),
            plan_id: PlanId::parse("p").unwrap(),
            request_hash: String::new(),
            parameters: Map::new(),
            context: None,
            bind_resource: None,
            predecessor_binding_id: None,
            binder: "vault".into(),
            binder_state: bound.state,
            state: BindingState::Bound,
            expires_at: Some(lease.expires_at),
            renew_before: Some(lease.renew_before),
            created_at: now,
            version: 1,
        };
        let m = metadata_of(&binding).unwrap();
        assert_eq!(m.expires_at, m.renew_before);
    }

    #[test]
    fn binding_hash_ignores_parameter_order_but_not_values() {
        let s = ServiceId::parse("s").unwrap();
        let p = PlanId::parse("p").unwrap();
        let a: Map<String, Value> = serde_json::from_str(r#"{"a":1,"b":2}"#).unwrap();
        let b: Map<String, Value> = serde_json::from_str(r#"{"b":2,"a":1}"#).unwrap();
        let c: Map<String, Value> = serde_json::from_str(r#"{"b":3,"a":1}"#).unwrap();
        let h = |m| binding_request_hash(&s, &p, m, None, None, None);
        assert_eq!(h(&a), h(&b));
        assert_ne!(h(&a), h(&c));
    }
}

#[cfg(test)]
mod request_shape_tests {
    use super::*;

    #[test]
    fn maintenance_info_given_as_an_array_is_refused() {
        let body = serde_json::json!({
            "service_id": "s", "plan_id": "p", "organization_guid": "o", "space_guid": "s",
            "maintenance_info": [null, null]
        });
        assert!(serde_json::from_value::<ProvisionRequest>(body).is_err());
        let body = serde_json::json!({"service_id": "s", "maintenance_info": ["1.0.0"]});
        assert!(serde_json::from_value::<UpdateRequest>(body).is_err());
    }

    #[test]
    fn maintenance_info_as_an_object_or_null_is_read() {
        let body = serde_json::json!({
            "service_id": "s", "plan_id": "p", "organization_guid": "o", "space_guid": "s",
            "maintenance_info": {"version": "1.0.0"}
        });
        let req: ProvisionRequest = serde_json::from_value(body).unwrap();
        assert_eq!(req.maintenance_version(), Some("1.0.0"));
        let body = serde_json::json!({"service_id": "s", "maintenance_info": null});
        let req: UpdateRequest = serde_json::from_value(body).unwrap();
        assert!(req.maintenance_info.is_none());
    }
}
