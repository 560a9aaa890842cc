//! The ports: what the broker needs from state (`Store`), from Cloudify (`Orchestrator`) and
//! from a credentials backend (`Binder`). Adapters implement them; the domain only sees these
//! traits and domain types. Must not import adapter crates.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::binding::{Binding, Credentials, LeaseTimes};
use super::catalog::{Catalog, CatalogEntry, ServiceSettings};
use super::error::{BinderError, OrchestratorError, StoreError};
use super::ids::{BindingId, InstanceId};
use super::instance::{Instance, InstanceState};

/// Broker state: catalog, service settings, instances, bindings.
///
/// Creates are conditional (fail with [`StoreError::AlreadyExists`]); updates and deletes are
/// version-checked: the caller passes the record as it read it, the store refuses with
/// [`StoreError::Conflict`] unless the stored version is the same, and writes version + 1.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The catalog version (cheap: one small read).
    async fn catalog_version(&self) -> Result<u64, StoreError>;
    /// The whole catalog, active and inactive entries.
    async fn catalog(&self) -> Result<Catalog, StoreError>;
    /// Upserts these entries (by service ID) and bumps the catalog version once, when the
    /// slice is not empty. Returns the new catalog version.
    async fn put_catalog_entries(&self, entries: &[CatalogEntry]) -> Result<u64, StoreError>;

    /// Admin settings of a blueprint's offering.
    async fn service_settings(
        &self,
        blueprint_id: &str,
    ) -> Result<Option<ServiceSettings>, StoreError>;
    /// All admin settings.
    async fn all_service_settings(&self) -> Result<Vec<ServiceSettings>, StoreError>;
    /// Writes (replaces) a blueprint's admin settings.
    async fn put_service_settings(&self, settings: &ServiceSettings) -> Result<(), StoreError>;

    /// Creates an instance record (version 1) unless one exists.
    async fn create_instance(&self, instance: &Instance) -> Result<Instance, StoreError>;
    /// Reads an instance (strongly consistent).
    async fn instance(&self, id: &InstanceId) -> Result<Option<Instance>, StoreError>;
    /// Writes `instance` if the stored version equals `instance.version`; returns it with the
    /// new version.
    async fn update_instance(&self, instance: &Instance) -> Result<Instance, StoreError>;
    /// Deletes the instance if the stored version equals `version`.
    async fn delete_instance(&self, id: &InstanceId, version: u64) -> Result<(), StoreError>;
    /// Instances, optionally only those in one state (operations, reconcile).
    async fn instances(&self, state: Option<InstanceState>) -> Result<Vec<Instance>, StoreError>;

    /// Creates a binding record (version 1) unless one exists.
    async fn create_binding(&self, binding: &Binding) -> Result<Binding, StoreError>;
    /// Reads a binding (strongly consistent).
    async fn binding(
        &self,
        instance: &InstanceId,
        id: &BindingId,
    ) -> Result<Option<Binding>, StoreError>;
    /// Version-checked write, as [`Store::update_instance`].
    async fn update_binding(&self, binding: &Binding) -> Result<Binding, StoreError>;
    /// Version-checked delete.
    async fn delete_binding(
        &self,
        instance: &InstanceId,
        id: &BindingId,
        version: u64,
    ) -> Result<(), StoreError>;
    /// The bindings of an instance.
    async fn bindings_of(&self, instance: &InstanceId) -> Result<Vec<Binding>, StoreError>;
    /// Bound bindings whose `renew_before` is before `time` (the lease renewal pass).
    async fn bindings_due(&self, time: OffsetDateTime) -> Result<Vec<Binding>, StoreError>;
}

/// A deployment to create.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentSpec {
    pub deployment_id: String,
    pub blueprint_id: String,
    pub inputs: Map<String, Value>,
    /// Labels to attach where the orchestrator supports them.
    pub labels: Vec<(String, String)>,
}

/// The workflows the broker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workflow {
    Install,
    Uninstall,
}

impl Workflow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Uninstall => "uninstall",
        }
    }
}

/// An execution's state, mapped from the orchestrator's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionState {
    /// Still running or waiting (any status not known to be terminal): the status name.
    InProgress(String),
    Succeeded,
    /// Failed, with the orchestrator's error text (first line, sanitised).
    Failed(String),
    Cancelled,
}

/// A blueprint as the catalog sync needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Blueprint {
    pub id: String,
    pub tenant: String,
    pub description: Option<String>,
    /// Raw input definitions (`plan.inputs`).
    pub inputs: Map<String, Value>,
    /// The blueprint's top-level `metadata` (`plan.metadata`).
    pub metadata: Map<String, Value>,
    pub labels: Vec<(String, String)>,
    pub updated_at: Option<String>,
}

/// What the broker needs from Cloudify. Implementations are stateless per call and safe to
/// share between requests.
#[async_trait]
pub trait Orchestrator: Send + Sync + 'static {
    /// Checks that the orchestrator answers; returns its version string.
    async fn ping(&self) -> Result<String, OrchestratorError>;
    /// Every deployable (uploaded) blueprint, all pages.
    async fn blueprints(&self) -> Result<Vec<Blueprint>, OrchestratorError>;
    /// Creates a deployment without waiting for its environment.
    async fn create_deployment(&self, spec: &DeploymentSpec) -> Result<(), OrchestratorError>;
    /// Starts a workflow; returns the execution ID. `EnvironmentPending` while the
    /// environment is still being created, `EnvironmentFailed` when that failed.
    async fn start_workflow(
        &self,
        deployment_id: &str,
        workflow: Workflow,
    ) -> Result<String, OrchestratorError>;
    /// The state of an execution.
    async fn execution(&self, execution_id: &str) -> Result<ExecutionState, OrchestratorError>;
    /// The execution still running on a deployment, if any.
    async fn running_execution(
        &self,
        deployment_id: &str,
    ) -> Result<Option<String>, OrchestratorError>;
    /// Asks an execution to stop.
    async fn cancel_execution(&self, execution_id: &str) -> Result<(), OrchestratorError>;
    /// Asks for the deployment's deletion (completes when `deployment_exists` is false).
    async fn delete_deployment(&self, deployment_id: &str) -> Result<(), OrchestratorError>;
    /// Whether the deployment exists.
    async fn deployment_exists(&self, deployment_id: &str) -> Result<bool, OrchestratorError>;
    /// The deployment's evaluated outputs.
    async fn outputs(&self, deployment_id: &str) -> Result<Map<String, Value>, OrchestratorError>;
    /// Whether the manager can update deployments in place (new inputs through the `update`
    /// workflow); the catalog's `plan_updateable` follows it. Default: no.
    async fn supports_updates(&self) -> bool {
        false
    }
    /// Starts a deployment update with the same blueprint and these inputs (all of them, not
    /// a difference); returns the ID of its `update` execution.
    async fn update_deployment(
        &self,
        _deployment_id: &str,
        _inputs: &Map<String, Value>,
    ) -> Result<String, OrchestratorError> {
        Err(OrchestratorError::Rejected(
            "this orchestrator cannot update deployments".into(),
        ))
    }
}

/// Everything a binder gets to bind one binding. Borrowed per call: binders keep no
/// per-binding state between calls.
#[derive(Debug, Clone, Copy)]
pub struct BindContext<'a> {
    pub instance: &'a Instance,
    pub binding_id: &'a BindingId,
    /// The bind request's parameters.
    pub parameters: &'a Map<String, Value>,
    /// The deployment's outputs, fetched at bind time.
    pub outputs: &'a Map<String, Value>,
    /// The service's admin settings (binder name and config location).
    pub settings: &'a ServiceSettings,
}

/// What a binder hands back for a new binding.
#[derive(Debug, Clone)]
pub struct Bound {
    /// For the platform only: never stored by the broker's store, never logged.
    pub credentials: Credentials,
    /// Non-secret bookkeeping the binder needs later (lease IDs, paths written).
    pub state: Value,
    pub lease: Option<LeaseTimes>,
}

/// A credentials backend (DESIGN.md §6): Vault by default, others pluggable. Stateless per
/// call; everything per binding is passed in.
#[async_trait]
pub trait Binder: Send + Sync + 'static {
    /// The registry name, e.g. `vault`.
    fn name(&self) -> &'static str;
    /// Checks that the backend is reachable and usable (readiness).
    async fn connect(&self) -> Result<(), BinderError>;
    /// Prepares the backend for this instance (e.g. a per-instance database connection and
    /// role), from the binder config and the deployment's outputs. Idempotent.
    async fn configure(&self, ctx: &BindContext<'_>) -> Result<(), BinderError>;
    /// Generates credentials for this binding and keeps them for later retrieval.
    async fn credentials(&self, ctx: &BindContext<'_>) -> Result<Bound, BinderError>;
    /// What a bind runs: [`configure`](Self::configure), then
    /// [`credentials`](Self::credentials). A binder may override it to share work between
    /// the two steps (the Vault binder reads and renders its config once).
    async fn bind(&self, ctx: &BindContext<'_>) -> Result<Bound, BinderError> {
        self.configure(ctx).await?;
        self.credentials(ctx).await
    }
    /// The credentials kept for an existing binding (identical re-PUT, fetch binding).
    async fn stored_credentials(&self, binding: &Binding) -> Result<Credentials, BinderError>;
    /// Revokes a binding's credentials and forgets them. Idempotent: revoking what is already
    /// gone succeeds.
    async fn revoke(&self, binding: &Binding) -> Result<(), BinderError>;
    /// Removes everything written for an instance (after its bindings were revoked).
    /// Idempotent.
    async fn remove_instance(
        &self,
        instance: &Instance,
        settings: &ServiceSettings,
    ) -> Result<(), BinderError>;
    /// Renews a binding's lease; `None` when there is nothing to renew. A lease that is
    /// over (expired, revoked) comes back with `expires_at` ≤ now; one that cannot be
    /// extended any further with `renew_before` = `expires_at`.
    async fn renew(&self, _binding: &Binding) -> Result<Option<LeaseTimes>, BinderError> {
        Ok(None)
    }
}

/// Binders by registry name.
#[derive(Clone, Default)]
pub struct BinderRegistry {
    binders: BTreeMap<String, Arc<dyn Binder>>,
}

impl BinderRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a binder under its own name.
    pub fn register(&mut self, binder: Arc<dyn Binder>) {
        self.binders.insert(binder.name().to_owned(), binder);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Binder>> {
        self.binders.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.binders.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.binders.is_empty()
    }
}

impl std::fmt::Debug for BinderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.binders.keys()).finish()
    }
}
