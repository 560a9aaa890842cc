//! The harness of the API tests: the router over the in-memory store, a scriptable fake
//! orchestrator and a fake binder, and request helpers that speak OSB.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use tower::ServiceExt;

use cloudify_osb::adapters::memory::MemoryStore;
use cloudify_osb::domain::binding::{Binding, Credentials, LeaseTimes};
use cloudify_osb::domain::broker::{Broker, BrokerSettings};
use cloudify_osb::domain::catalog::{CatalogEntry, Plan, Service, ServiceSettings};
use cloudify_osb::domain::error::{BinderError, OrchestratorError};
use cloudify_osb::domain::ids::{
    DEFAULT_ID_NAMESPACE, InstanceId, PlanId, ServiceId, plan_id_for, service_id_for,
};
use cloudify_osb::domain::instance::Instance;
use cloudify_osb::domain::ports::{
    BindContext, Binder, BinderRegistry, Blueprint, Bound, DeploymentSpec, ExecutionState,
    Orchestrator, Store, Workflow,
};
use cloudify_osb::http::{ApiState, BasicAuth, Route, router};

pub const USER: &str = "platform";
pub const PASSWORD: &str = "s3cret-pw";
pub const VERSION: &str = "2.17";
pub const ASYNC_REQUIRED: &str =
    "This service plan requires client support for asynchronous service operations.";
pub const CONCURRENCY: &str =
    "The Service Broker does not support concurrent requests that mutate the same resource.";

// ---------------------------------------------------------------- fake orchestrator

#[derive(Debug, Clone)]
pub struct FakeDeployment {
    pub blueprint_id: String,
    pub inputs: Map<String, Value>,
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct FakeExecution {
    pub deployment_id: String,
    pub workflow: &'static str,
    pub state: ExecutionState,
}

#[derive(Default)]
pub struct FakeState {
    pub deployments: BTreeMap<String, FakeDeployment>,
    pub executions: BTreeMap<String, FakeExecution>,
    next: usize,
    /// The next `create_deployment` fails with this.
    pub create_error: Option<OrchestratorError>,
    /// While true, `start_workflow` answers `EnvironmentPending`.
    pub environment_pending: bool,
    /// Errors the next `start_workflow` calls answer, in order.
    pub start_errors: VecDeque<OrchestratorError>,
    /// Every call answers `Unavailable`.
    pub down: bool,
    /// `delete_deployment` only starts the deletion; `finish_deletes` ends it.
    pub slow_delete: bool,
    pub deleting: Vec<String>,
    pub outputs: Map<String, Value>,
    pub calls: Vec<String>,
}

/// A scriptable [`Orchestrator`].
#[derive(Default)]
pub struct FakeOrchestrator {
    pub state: Mutex<FakeState>,
}

impl FakeOrchestrator {
    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Ends every running execution with `state`.
    pub fn finish_running(&self, state: ExecutionState) {
        self.with(|s| {
            for e in s.executions.values_mut() {
                if matches!(e.state, ExecutionState::InProgress(_)) {
                    e.state = state.clone();
                }
            }
        })
    }

    pub fn finish_deletes(&self) {
        self.with(|s| {
            for d in std::mem::take(&mut s.deleting) {
                s.deployments.remove(&d);
            }
        })
    }

    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }

    pub fn has_deployment(&self, id: &str) -> bool {
        self.with(|s| s.deployments.contains_key(id))
    }

    fn enter(
        &self,
        call: String,
    ) -> Result<std::sync::MutexGuard<'_, FakeState>, OrchestratorError> {
        let mut s = self.state.lock().unwrap();
        s.calls.push(call);
        if s.down {
            return Err(OrchestratorError::Unavailable(
                "connection refused by upstream 10.0.0.1 secret-token-xyz".into(),
            ));
        }
        Ok(s)
    }
}

#[async_trait]
impl Orchestrator for FakeOrchestrator {
    async fn ping(&self) -> Result<String, OrchestratorError> {
        let _guard = self.enter("ping".into())?;
        Ok("7.0.0".into())
    }

    async fn blueprints(&self) -> Result<Vec<Blueprint>, OrchestratorError> {
        let _guard = self.enter("blueprints".into())?;
        Ok(vec![])
    }

    async fn create_deployment(&self, spec: &DeploymentSpec) -> Result<(), OrchestratorError> {
        let mut s = self.enter(format!("create_deployment {}", spec.deployment_id))?;
        if let Some(e) = s.create_error.take() {
            return Err(e);
        }
        if s.deployments.contains_key(&spec.deployment_id) {
            return Err(OrchestratorError::AlreadyExists(spec.deployment_id.clone()));
        }
        s.deployments.insert(
            spec.deployment_id.clone(),
            FakeDeployment {
                blueprint_id: spec.blueprint_id.clone(),
                inputs: spec.inputs.clone(),
                labels: spec.labels.clone(),
            },
        );
        Ok(())
    }

    async fn start_workflow(
        &self,
        deployment_id: &str,
        workflow: Workflow,
    ) -> Result<String, OrchestratorError> {
        let mut s = self.enter(format!(
            "start_workflow {deployment_id} {}",
            workflow.as_str()
        ))?;
        if let Some(e) = s.start_errors.pop_front() {
            return Err(e);
        }
        if !s.deployments.contains_key(deployment_id) {
            return Err(OrchestratorError::NotFound(deployment_id.into()));
        }
        if s.environment_pending {
            return Err(OrchestratorError::EnvironmentPending);
        }
        s.next += 1;
        let id = format!("exec-{}", s.next);
        s.executions.insert(
            id.clone(),
            FakeExecution {
                deployment_id: deployment_id.into(),
                workflow: workflow.as_str(),
                state: ExecutionState::InProgress("started".into()),
            },
        );
        Ok(id)
    }

    async fn execution(&self, execution_id: &str) -> Result<ExecutionState, OrchestratorError> {
        let s = self.enter(format!("execution {execution_id}"))?;
        s.executions
            .get(execution_id)
            .map(|e| e.state.clone())
            .ok_or_else(|| OrchestratorError::NotFound(execution_id.into()))
    }

    async fn running_execution(
        &self,
        deployment_id: &str,
    ) -> Result<Option<String>, OrchestratorError> {
        let s = self.enter(format!("running_execution {deployment_id}"))?;
        if !s.deployments.contains_key(deployment_id) {
            return Err(OrchestratorError::NotFound(deployment_id.into()));
        }
        Ok(s.executions
            .iter()
            .find(|(_, e)| {
                e.deployment_id == deployment_id && matches!(e.state, ExecutionState::InProgress(_))
            })
            .map(|(id, _)| id.clone()))
    }

    async fn cancel_execution(&self, execution_id: &str) -> Result<(), OrchestratorError> {
        let mut s = self.enter(format!("cancel_execution {execution_id}"))?;
        match s.executions.get_mut(execution_id) {
            Some(e) => {
                e.state = ExecutionState::InProgress("cancelling".into());
                Ok(())
            }
            None => Err(OrchestratorError::NotFound(execution_id.into())),
        }
    }

    async fn delete_deployment(&self, deployment_id: &str) -> Result<(), OrchestratorError> {
        let mut s = self.enter(format!("delete_deployment {deployment_id}"))?;
        if !s.deployments.contains_key(deployment_id) {
            return Err(OrchestratorError::NotFound(deployment_id.into()));
        }
        if s.slow_delete {
            s.deleting.push(deployment_id.into());
        } else {
            s.deployments.remove(deployment_id);
        }
        Ok(())
    }

    async fn deployment_exists(&self, deployment_id: &str) -> Result<bool, OrchestratorError> {
        let s = self.enter(format!("deployment_exists {deployment_id}"))?;
        Ok(s.deployments.contains_key(deployment_id))
    }

    async fn outputs(&self, deployment_id: &str) -> Result<Map<String, Value>, OrchestratorError> {
        let s = self.enter(format!("outputs {deployment_id}"))?;
        if !s.deployments.contains_key(deployment_id) {
            return Err(OrchestratorError::NotFound(deployment_id.into()));
        }
        Ok(s.outputs.clone())
    }
}

// ---------------------------------------------------------------- fake binder

#[derive(Default)]
pub struct BinderState {
    /// Credentials kept per binding ID.
    pub kept: BTreeMap<String, Credentials>,
    pub revoked: Vec<String>,
    pub removed_instances: Vec<String>,
    pub configured: Vec<(String, Map<String, Value>)>,
    pub fail_configure: Option<BinderError>,
    pub fail_credentials: Option<BinderError>,
    pub fail_revoke: Option<BinderError>,
    pub down: bool,
    pub serial: usize,
}

/// A [`Binder`] that makes up credentials and keeps them in memory.
pub struct FakeBinder {
    pub name: &'static str,
    pub state: Mutex<BinderState>,
}

impl FakeBinder {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            state: Mutex::new(BinderState::default()),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut BinderState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, BinderState>, BinderError> {
        let s = self.state.lock().unwrap();
        if s.down {
            return Err(BinderError::Unavailable(
                "vault sealed at 10.0.0.2 token hvs.secret".into(),
            ));
        }
        Ok(s)
    }
}

#[async_trait]
impl Binder for FakeBinder {
    fn name(&self) -> &'static str {
        self.name
    }

    async fn connect(&self) -> Result<(), BinderError> {
        self.check().map(|_| ())
    }

    async fn configure(&self, ctx: &BindContext<'_>) -> Result<(), BinderError> {
        let mut s = self.check()?;
        if let Some(e) = s.fail_configure.take() {
            return Err(e);
        }
        s.configured
            .push((ctx.instance.id.to_string(), ctx.outputs.clone()));
        Ok(())
    }

    async fn credentials(&self, ctx: &BindContext<'_>) -> Result<Bound, BinderError> {
        let mut s = self.check()?;
        if let Some(e) = s.fail_credentials.take() {
            return Err(e);
        }
        s.serial += 1;
        let mut c = Credentials::default();
        c.insert("type", "mysql");
        c.insert("provider", "cloudify");
        c.insert("username", format!("user-{}-{}", ctx.binding_id, s.serial));
        c.insert("password", format!("pw-{}", s.serial));
        s.kept.insert(ctx.binding_id.to_string(), c.clone());
        let now = OffsetDateTime::now_utc();
        Ok(Bound {
            credentials: c,
            state: json!({"lease": format!("lease-{}", ctx.binding_id)}),
            lease: Some(LeaseTimes {
                expires_at: now + time::Duration::hours(1),
                renew_before: now + time::Duration::minutes(30),
            }),
        })
    }

    async fn stored_credentials(&self, binding: &Binding) -> Result<Credentials, BinderError> {
        let s = self.check()?;
        s.kept
            .get(binding.id.as_str())
            .cloned()
            .ok_or_else(|| BinderError::Config("no credentials kept".into()))
    }

    async fn revoke(&self, binding: &Binding) -> Result<(), BinderError> {
        let mut s = self.check()?;
        if let Some(e) = s.fail_revoke.take() {
            return Err(e);
        }
        s.kept.remove(binding.id.as_str());
        s.revoked.push(binding.id.to_string());
        Ok(())
    }

    async fn remove_instance(
        &self,
        instance: &Instance,
        _settings: &ServiceSettings,
    ) -> Result<(), BinderError> {
        let mut s = self.check()?;
        s.removed_instances.push(instance.id.to_string());
        Ok(())
    }
}

// ---------------------------------------------------------------- harness

/// One offering in the catalog.
#[derive(Debug, Clone)]
pub struct Offering {
    pub service_id: ServiceId,
    pub plan_id: PlanId,
}

pub struct Harness {
    pub app: Router,
    pub store: Arc<MemoryStore>,
    pub cloudify: Arc<FakeOrchestrator>,
    pub binder: Arc<FakeBinder>,
}

pub struct Options {
    pub cloudify: bool,
    pub binder: bool,
    pub routes: Vec<Route>,
    pub ui_url: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cloudify: true,
            binder: true,
            routes: Route::ALL.to_vec(),
            ui_url: None,
        }
    }
}

impl Harness {
    pub fn new() -> Self {
        Self::with(Options::default())
    }

    pub fn with(options: Options) -> Self {
        let store = Arc::new(MemoryStore::new());
        let cloudify = Arc::new(FakeOrchestrator::default());
        let binder = Arc::new(FakeBinder::new("vault"));
        let mut binders = BinderRegistry::new();
        if options.binder {
            binders.register(binder.clone());
        }
        let orchestrator: Option<Arc<dyn Orchestrator>> = if options.cloudify {
            Some(cloudify.clone())
        } else {
            None
        };
        let settings = BrokerSettings {
            retry_after_secs: 7,
            dashboard_ui_url: options.ui_url,
            ..BrokerSettings::default()
        };
        let broker = Broker::new(store.clone(), orchestrator, binders, settings);
        let auth = BasicAuth::new(USER, &SecretString::from(PASSWORD))
            .with_next("platform-next", &SecretString::from("next-pw"));
        let app = router(ApiState::new(Arc::new(broker), auth), &options.routes);
        Self {
            app,
            store,
            cloudify,
            binder,
        }
    }

    /// Adds an offering (one plan) and, when `binder` is set, its service settings.
    pub async fn offering(
        &self,
        blueprint: &str,
        bindable: bool,
        binder: Option<&str>,
    ) -> Offering {
        let service_id = service_id_for(&DEFAULT_ID_NAMESPACE, "default_tenant", blueprint);
        let plan_id = plan_id_for(
            &DEFAULT_ID_NAMESPACE,
            "default_tenant",
            blueprint,
            "default",
        );
        let mut presets = BTreeMap::new();
        presets.insert(
            plan_id.clone(),
            json!({"size": "small", "region": "preset"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let entry = CatalogEntry {
            service: Service {
                id: service_id.clone(),
                name: blueprint.replace('_', "-"),
                description: format!("{blueprint} from Cloudify"),
                bindable,
                tags: vec![],
                instances_retrievable: true,
                bindings_retrievable: true,
                plan_updateable: false,
                allow_context_updates: None,
                metadata: None,
                plans: vec![Plan {
                    id: plan_id.clone(),
                    name: "default".into(),
                    description: "the default plan".into(),
                    free: true,
                    bindable: None,
                    plan_updateable: None,
                    binding_rotatable: Some(true),
                    maximum_polling_duration: None,
                    maintenance_info: None,
                    metadata: None,
                    schemas: None,
                }],
            },
            blueprint_id: blueprint.into(),
            tenant: "default_tenant".into(),
            active: true,
            blueprint_updated_at: None,
            presets,
            retired_plans: vec![],
        };
        self.store.put_catalog_entries(&[entry]).await.unwrap();
        if let Some(binder) = binder {
            self.store
                .put_service_settings(&ServiceSettings {
                    blueprint_id: blueprint.into(),
                    binder: binder.into(),
                    binder_config: format!("cloudify-osb/binders/{blueprint}"),
                    binding_rotatable: false,
                })
                .await
                .unwrap();
        }
        Offering {
            service_id,
            plan_id,
        }
    }

    /// Rewrites the stored catalog entry of `o` (a catalog write: the version moves).
    pub async fn change_entry(&self, o: &Offering, f: impl FnOnce(&mut CatalogEntry)) {
        let catalog = self.store.catalog().await.unwrap();
        let mut entry = catalog.entry(&o.service_id).unwrap().clone();
        f(&mut entry);
        self.store.put_catalog_entries(&[entry]).await.unwrap();
    }

    /// The default offering: bindable, bound through the `vault` binder.
    pub async fn mariadb(&self) -> Offering {
        self.offering("mariadb", true, Some("vault")).await
    }

    pub async fn send(&self, req: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            json,
        }
    }

    /// An authenticated OSB request with version 2.17 and a JSON body when given.
    pub async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Answer {
        self.send(osb(method, uri, body).build()).await
    }

    pub async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, None).await
    }

    pub async fn provision(&self, iid: &str, o: &Offering) -> Answer {
        self.call(
            Method::PUT,
            &format!("/v2/service_instances/{iid}?accepts_incomplete=true"),
            Some(provision_body(o)),
        )
        .await
    }

    pub async fn deprovision(&self, iid: &str, o: &Offering) -> Answer {
        self.call(
            Method::DELETE,
            &format!(
                "/v2/service_instances/{iid}?accepts_incomplete=true&service_id={}&plan_id={}",
                o.service_id, o.plan_id
            ),
            None,
        )
        .await
    }

    pub async fn last_operation(&self, iid: &str, operation: Option<&str>) -> Answer {
        let q = operation
            .map(|o| format!("?operation={o}"))
            .unwrap_or_default();
        self.get(&format!("/v2/service_instances/{iid}/last_operation{q}"))
            .await
    }

    /// Provisions and drives the fake to a finished install.
    pub async fn provisioned(&self, iid: &str, o: &Offering) {
        let a = self.provision(iid, o).await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
        self.cloudify.finish_running(ExecutionState::Succeeded);
        let a = self.last_operation(iid, None).await;
        assert_eq!(a.json["state"], "succeeded", "{}", a.text);
    }

    pub async fn bind(&self, iid: &str, bid: &str, o: &Offering, parameters: Value) -> Answer {
        self.call(
            Method::PUT,
            &format!("/v2/service_instances/{iid}/service_bindings/{bid}"),
            Some(json!({
                "service_id": o.service_id,
                "plan_id": o.plan_id,
                "parameters": parameters,
                "bind_resource": {"app_guid": "app-1"},
            })),
        )
        .await
    }

    pub async fn unbind(&self, iid: &str, bid: &str, o: &Offering) -> Answer {
        self.call(
            Method::DELETE,
            &format!(
                "/v2/service_instances/{iid}/service_bindings/{bid}?service_id={}&plan_id={}",
                o.service_id, o.plan_id
            ),
            None,
        )
        .await
    }

    pub async fn instance(&self, iid: &str) -> Option<Instance> {
        self.store
            .instance(&InstanceId::parse(iid).unwrap())
            .await
            .unwrap()
    }
}

pub fn provision_body(o: &Offering) -> Value {
    json!({
        "service_id": o.service_id,
        "plan_id": o.plan_id,
        "organization_guid": "org-1",
        "space_guid": "space-1",
        "context": {"platform": "kubernetes", "namespace": "ns1"},
        "parameters": {"size": "large"},
    })
}

/// A request builder preloaded with auth, version and request identity.
pub struct Req {
    pub method: Method,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

pub fn osb(method: Method, uri: &str, body: Option<Value>) -> Req {
    let mut headers = vec![
        ("authorization".to_owned(), basic(USER, PASSWORD)),
        ("x-broker-api-version".to_owned(), VERSION.to_owned()),
        (
            "x-broker-api-request-identity".to_owned(),
            "req-test-1".to_owned(),
        ),
    ];
    if body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    Req {
        method,
        uri: uri.to_owned(),
        headers,
        body: body.map(|b| b.to_string().into_bytes()),
    }
}

impl Req {
    /// Replaces (or with `None` removes) a header.
    pub fn header(mut self, name: &str, value: Option<&str>) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if let Some(v) = value {
            self.headers.push((name.to_ascii_lowercase(), v.to_owned()));
        }
        self
    }

    pub fn raw_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn build(self) -> Request<Body> {
        let mut b = Request::builder().method(self.method).uri(self.uri);
        for (n, v) in &self.headers {
            b = b.header(n.as_str(), v.as_str());
        }
        b.body(self.body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap()
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    /// Asserts an OSB error: status, JSON content type, `error` code and a non-empty
    /// description.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, error: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        self.assert_json();
        assert_eq!(self.json["error"], error, "{}", self.text);
        let description = self.json["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "empty description: {}", self.text);
    }

    #[track_caller]
    pub fn assert_json(&self) {
        let ct = self
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "content type {ct:?}: {}",
            self.text
        );
        assert!(!self.json.is_null(), "not JSON: {}", self.text);
    }

    #[track_caller]
    pub fn assert_status(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.text);
        self.assert_json();
    }

    pub fn description(&self) -> &str {
        self.json["description"].as_str().unwrap_or_default()
    }
}

/// A path for each route, with the instance `i1` and binding `b1`.
pub fn route_request(route: Route) -> (Method, String) {
    let instance = "/v2/service_instances/i1";
    let binding = "/v2/service_instances/i1/service_bindings/b1";
    match route {
        Route::Catalog => (Method::GET, "/v2/catalog".into()),
        Route::Provision => (Method::PUT, format!("{instance}?accepts_incomplete=true")),
        Route::Update => (Method::PATCH, format!("{instance}?accepts_incomplete=true")),
        Route::Deprovision => (
            Method::DELETE,
            format!("{instance}?accepts_incomplete=true&service_id=s&plan_id=p"),
        ),
        Route::GetInstance => (Method::GET, instance.into()),
        Route::LastOperation => (Method::GET, format!("{instance}/last_operation")),
        Route::Bind => (Method::PUT, binding.into()),
        Route::Unbind => (Method::DELETE, format!("{binding}?service_id=s&plan_id=p")),
        Route::GetBinding => (Method::GET, binding.into()),
        Route::BindingLastOperation => (Method::GET, format!("{binding}/last_operation")),
    }
}
