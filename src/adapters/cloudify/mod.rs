//! The Cloudify adapter: [`CloudifyOrchestrator`] implements the domain's
//! [`Orchestrator`] port over Cloudify's REST API v3.1 (reference/cloudify-api.md), for
//! managers 4.3 to 7.x.
//!
//! - One reqwest client (rustls) per process, built from [`CloudifyConfig`]; every call
//!   carries the `Tenant` header and the credentials.
//! - The manager version is read once (`GET /version`, cached) and switches what differs
//!   between versions: deployment labels (5.2+), blueprint `state` filter (5.2+, otherwise
//!   every listed blueprint counts as uploaded), blueprint labels (6.0+), `delete_logs` (5.0+).
//!   `async_create=true` is always sent on PUT deployment, so no call blocks on environment
//!   creation.
//! - GET and DELETE are retried with backoff on connection errors, timeouts and 5xx; PUT
//!   deployment and POST executions are sent once (the broker re-checks state after an
//!   ambiguous failure).
//! - Every Cloudify `error_code` maps to an [`OrchestratorError`] (see `mapping`); wire types
//!   stay in `wire` and never leave the adapter.
//!
//! Must not be imported by `domain`.

mod config;
mod mapping;
mod transport;
mod wire;

use std::collections::BTreeSet;

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

pub use config::{
    API_PREFIX, CaCert, CloudifyConfig, CloudifyCredentials, DEFAULT_TENANT, RetryPolicy,
};
use mapping::{Call, Fault, ManagerVersion, execution_state, is_terminal, sanitize_message};
use transport::{Reply, Retry, Transport};

use crate::domain::error::OrchestratorError;
use crate::domain::ports::{Blueprint, DeploymentSpec, ExecutionState, Orchestrator, Workflow};

/// The workflow that creates a deployment's environment.
const CREATE_ENVIRONMENT: &str = "create_deployment_environment";

/// The [`Orchestrator`] port over a Cloudify manager's REST API.
pub struct CloudifyOrchestrator {
    transport: Transport,
    tenant: String,
    page_size: u32,
    version: OnceCell<ManagerVersion>,
}

impl std::fmt::Debug for CloudifyOrchestrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudifyOrchestrator")
            .field("api", &self.transport.base().as_str())
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

fn decode<T: DeserializeOwned>(reply: &Reply, what: &str) -> Result<T, OrchestratorError> {
    serde_json::from_slice(&reply.body).map_err(|e| {
        OrchestratorError::Unavailable(format!(
            "Cloudify answered {what} with HTTP {} and a body that is not the expected JSON: {e}",
            reply.status.as_u16()
        ))
    })
}

fn fault(reply: &Reply, call: Call, what: &str) -> OrchestratorError {
    let fault = Fault::parse(reply.status.as_u16(), &reply.body);
    let error = fault.to_error(call);
    if matches!(error, OrchestratorError::Unavailable(_)) {
        tracing::warn!(call = what, detail = %fault.describe(), "Cloudify refused a call");
    } else {
        tracing::debug!(call = what, detail = %fault.describe(), "Cloudify refused a call");
    }
    error
}

impl CloudifyOrchestrator {
    /// Builds the client (TLS, timeouts, headers). Fails on an unusable URL, tenant, token or
    /// CA certificate; it does not contact the manager.
    pub fn new(config: CloudifyConfig) -> Result<Self, OrchestratorError> {
        Ok(Self {
            transport: Transport::new(&config)?,
            tenant: config.tenant.clone(),
            page_size: config.page_size.clamp(1, 1000),
            version: OnceCell::new(),
        })
    }

    /// The tenant this adapter works in.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// HTTP requests sent so far, retries included (for measurements and tests).
    pub fn round_trips(&self) -> u64 {
        self.transport.round_trips()
    }

    async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<T, OrchestratorError> {
        self.get_with(segments, query, what, Retry::Idempotent)
            .await
    }

    async fn get_with<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        what: &str,
        retry: Retry,
    ) -> Result<T, OrchestratorError> {
        let url = self.transport.url(segments, query);
        let reply = self
            .transport
            .send::<()>(Method::GET, url, None, retry)
            .await?;
        if reply.status.is_success() {
            decode(&reply, what)
        } else {
            Err(fault(&reply, Call::Other, what))
        }
    }

    async fn fetch_version(
        &self,
        retry: Retry,
    ) -> Result<(String, ManagerVersion), OrchestratorError> {
        let v: wire::Version = self
            .get_with(&["version"], &[], "GET /version", retry)
            .await?;
        let parsed = ManagerVersion::parse(&v.version).unwrap_or_else(|| {
            tracing::warn!(version = %v.version, "unparsable Cloudify version; assuming the newest behaviour");
            ManagerVersion::NEWEST
        });
        Ok((v.version, parsed))
    }

    async fn version(&self) -> Result<ManagerVersion, OrchestratorError> {
        self.version
            .get_or_try_init(|| async {
                let (raw, v) = self.fetch_version(Retry::Idempotent).await?;
                tracing::info!(version = %raw, "Cloudify manager version");
                Ok(v)
            })
            .await
            .copied()
    }

    /// Every deployment ID in the tenant, all pages (`cloudify-osb reconcile`). Read-only.
    pub async fn deployment_ids(&self) -> Result<Vec<String>, OrchestratorError> {
        let size = self.page_size.to_string();
        let mut offset: u64 = 0;
        let mut out = Vec::new();
        loop {
            let offset_s = offset.to_string();
            let page: wire::Page<Value> = self
                .get(
                    &["deployments"],
                    &[
                        ("_include", "id"),
                        ("_sort", "id"),
                        ("_size", size.as_str()),
                        ("_offset", offset_s.as_str()),
                    ],
                    "GET /deployments",
                )
                .await?;
            let total = page.total();
            let n = page.items.len() as u64;
            out.extend(
                page.items
                    .iter()
                    .filter_map(|d| d.get("id").and_then(Value::as_str))
                    .map(str::to_owned),
            );
            offset += n;
            let more = match total {
                Some(total) => n > 0 && offset < total,
                None => n == u64::from(self.page_size),
            };
            if !more {
                return Ok(out);
            }
        }
    }

    /// A deployment's executions, newest first (at most 100), as Cloudify lists them
    /// (`id`, `workflow_id`, `status`, `created_at`, `error`) for `cloudify-osb instance
    /// show`. Read-only.
    pub async fn executions(&self, deployment_id: &str) -> Result<Vec<Value>, OrchestratorError> {
        let page: wire::Page<Value> = self
            .get(
                &["executions"],
                &[
                    ("deployment_id", deployment_id),
                    ("_sort", "-created_at"),
                    ("_size", "100"),
                    ("_include", "id,workflow_id,status,created_at,error"),
                ],
                "GET /executions",
            )
            .await?;
        Ok(page.items)
    }

    /// Deletes a deployment even while it still has live nodes (`force=true`, 5.x+;
    /// `ignore_live_nodes=true`, 4.x; each version ignores the other's parameter), for
    /// `cloudify-osb instance purge --delete-deployment`. The resources the deployment
    /// created are left as they are.
    pub async fn force_delete_deployment(
        &self,
        deployment_id: &str,
    ) -> Result<(), OrchestratorError> {
        let url = self.transport.url(
            &["deployments", deployment_id],
            &[("force", "true"), ("ignore_live_nodes", "true")],
        );
        let reply = self
            .transport
            .send::<()>(Method::DELETE, url, None, Retry::Idempotent)
            .await?;
        if matches!(reply.status.as_u16(), 200 | 202 | 204) {
            return Ok(());
        }
        match fault(&reply, Call::Other, "DELETE /deployments/{id}?force=true") {
            OrchestratorError::NotFound(_) => Ok(()),
            other => Err(other),
        }
    }

    /// The error text of the deployment's latest `create_deployment_environment` execution.
    async fn environment_error(&self, deployment_id: &str) -> Option<String> {
        let page: wire::Page<wire::Execution> = self
            .get(
                &["executions"],
                &[
                    ("deployment_id", deployment_id),
                    ("workflow_id", CREATE_ENVIRONMENT),
                    ("_sort", "-created_at"),
                    ("_size", "1"),
                    ("_include", "id,status,error"),
                ],
                "GET /executions (environment creation)",
            )
            .await
            .ok()?;
        let msg = sanitize_message(page.items.first()?.error.as_deref()?);
        (!msg.is_empty()).then_some(msg)
    }

    fn blueprint(&self, bp: wire::Blueprint) -> Blueprint {
        let plan = bp.plan.unwrap_or_default();
        let description = bp
            .description
            .or(plan.description)
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty());
        Blueprint {
            id: bp.id,
            tenant: self.tenant.clone(),
            description,
            inputs: wire::object_or_empty(plan.inputs),
            metadata: wire::object_or_empty(plan.metadata),
            labels: bp
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(|l| {
                    let value = match l.value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    (l.key, value)
                })
                .collect(),
            updated_at: wire::timestamp(bp.updated_at).or(wire::timestamp(bp.created_at)),
        }
    }
}

#[async_trait]
impl Orchestrator for CloudifyOrchestrator {
    /// One attempt, no retries: readiness probes want a quick answer.
    async fn ping(&self) -> Result<String, OrchestratorError> {
        let (raw, parsed) = self.fetch_version(Retry::Once).await?;
        let _ = self.version.set(parsed);
        Ok(raw)
    }

    async fn blueprints(&self) -> Result<Vec<Blueprint>, OrchestratorError> {
        let version = self.version().await?;
        let mut include = String::from("id,description,plan,created_at,updated_at");
        if version.blueprint_state() {
            include.push_str(",state");
        }
        if version.blueprint_labels() {
            include.push_str(",labels");
        }
        let size = self.page_size.to_string();
        let mut offset: u64 = 0;
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        loop {
            let offset_s = offset.to_string();
            let mut query = vec![
                ("_include", include.as_str()),
                ("_sort", "id"),
                ("_size", size.as_str()),
                ("_offset", offset_s.as_str()),
            ];
            if version.blueprint_state() {
                query.push(("state", "uploaded"));
            }
            let page: wire::Page<wire::Blueprint> =
                self.get(&["blueprints"], &query, "GET /blueprints").await?;
            let total = page.total();
            let n = page.items.len() as u64;
            for bp in page.items {
                let uploaded = bp.state.as_deref().is_none_or(|s| s == "uploaded");
                if uploaded && seen.insert(bp.id.clone()) {
                    out.push(self.blueprint(bp));
                }
            }
            offset += n;
            let more = match total {
                Some(total) => n > 0 && offset < total,
                None => n == u64::from(self.page_size),
            };
            if !more {
                break;
            }
        }
        Ok(out)
    }

    async fn create_deployment(&self, spec: &DeploymentSpec) -> Result<(), OrchestratorError> {
        let version = self.version().await?;
        let labels = (version.deployment_labels() && !spec.labels.is_empty()).then(|| {
            spec.labels
                .iter()
                .map(|(k, v)| {
                    let mut m = Map::new();
                    m.insert(k.clone(), Value::String(v.clone()));
                    m
                })
                .collect()
        });
        let body = wire::CreateDeployment {
            blueprint_id: &spec.blueprint_id,
            inputs: &spec.inputs,
            labels,
        };
        let url = self.transport.url(
            &["deployments", &spec.deployment_id],
            &[("async_create", "true")],
        );
        let reply = self
            .transport
            .send(Method::PUT, url, Some(&body), Retry::Once)
            .await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(fault(&reply, Call::CreateDeployment, "PUT /deployments"))
        }
    }

    async fn start_workflow(
        &self,
        deployment_id: &str,
        workflow: Workflow,
    ) -> Result<String, OrchestratorError> {
        let body = wire::StartExecution {
            deployment_id,
            workflow_id: workflow.as_str(),
        };
        let url = self.transport.url(&["executions"], &[]);
        let reply = self
            .transport
            .send(Method::POST, url, Some(&body), Retry::Once)
            .await?;
        if reply.status.is_success() {
            let execution: wire::Execution = decode(&reply, "POST /executions")?;
            return Ok(execution.id);
        }
        match fault(&reply, Call::StartWorkflow, "POST /executions") {
            OrchestratorError::EnvironmentFailed(msg) => Err(OrchestratorError::EnvironmentFailed(
                self.environment_error(deployment_id).await.unwrap_or(msg),
            )),
            other => Err(other),
        }
    }

    async fn supports_updates(&self) -> bool {
        self.version().await.is_ok_and(|v| v.deployment_updates())
    }

    async fn update_deployment(
        &self,
        deployment_id: &str,
        inputs: &Map<String, Value>,
    ) -> Result<String, OrchestratorError> {
        let version = self.version().await?;
        let body = wire::UpdateDeployment { inputs };
        let url = self.transport.url(
            &["deployment-updates", deployment_id, "update", "initiate"],
            &[],
        );
        let method = if version.update_initiate_is_post() {
            Method::POST
        } else {
            Method::PUT
        };
        let reply = self
            .transport
            .send(method, url, Some(&body), Retry::Once)
            .await?;
        if reply.status.is_success() {
            let update: wire::DeploymentUpdate =
                decode(&reply, "/deployment-updates/{id}/update/initiate")?;
            return update.execution_id.ok_or_else(|| {
                OrchestratorError::Unavailable("deployment update without execution_id".into())
            });
        }
        Err(fault(
            &reply,
            Call::Other,
            "/deployment-updates/{id}/update/initiate",
        ))
    }

    async fn execution(&self, execution_id: &str) -> Result<ExecutionState, OrchestratorError> {
        let e: wire::Execution = self
            .get(
                &["executions", execution_id],
                &[("_include", "id,status,error")],
                "GET /executions/{id}",
            )
            .await?;
        Ok(execution_state(&e.status, e.error.as_deref()))
    }

    async fn running_execution(
        &self,
        deployment_id: &str,
    ) -> Result<Option<String>, OrchestratorError> {
        let page: wire::Page<wire::Execution> = self
            .get(
                &["executions"],
                &[
                    ("deployment_id", deployment_id),
                    ("_sort", "-created_at"),
                    ("_size", "100"),
                    ("_include", "id,status"),
                ],
                "GET /executions",
            )
            .await?;
        Ok(page
            .items
            .into_iter()
            .find(|e| !is_terminal(&e.status))
            .map(|e| e.id))
    }

    async fn cancel_execution(&self, execution_id: &str) -> Result<(), OrchestratorError> {
        let url = self.transport.url(&["executions", execution_id], &[]);
        let body = wire::ExecutionAction { action: "cancel" };
        let reply = self
            .transport
            .send(Method::POST, url, Some(&body), Retry::Once)
            .await?;
        if reply.status.is_success() {
            return Ok(());
        }
        match fault(&reply, Call::Other, "POST /executions/{id} (cancel)") {
            // Cancelling what already ended is done.
            OrchestratorError::Rejected(msg) => match self.execution(execution_id).await {
                Ok(ExecutionState::InProgress(_)) | Err(_) => Err(OrchestratorError::Rejected(msg)),
                Ok(_) => Ok(()),
            },
            other => Err(other),
        }
    }

    async fn delete_deployment(&self, deployment_id: &str) -> Result<(), OrchestratorError> {
        let version = self.version().await?;
        let query: &[(&str, &str)] = if version.delete_logs() {
            &[("delete_logs", "true")]
        } else {
            &[]
        };
        let url = self.transport.url(&["deployments", deployment_id], query);
        let reply = self
            .transport
            .send::<()>(Method::DELETE, url, None, Retry::Idempotent)
            .await?;
        // 4.3 deletes synchronously (200), 4.4–5.0 answer 200 and delete in the background,
        // 5.1+ answer 204; completion is always observed through `deployment_exists`.
        if matches!(reply.status.as_u16(), 200 | 202 | 204) {
            return Ok(());
        }
        match fault(&reply, Call::Other, "DELETE /deployments/{id}") {
            OrchestratorError::NotFound(_) => Ok(()),
            other => Err(other),
        }
    }

    async fn deployment_exists(&self, deployment_id: &str) -> Result<bool, OrchestratorError> {
        let found: Result<Value, _> = self
            .get(
                &["deployments", deployment_id],
                &[("_include", "id")],
                "GET /deployments/{id}",
            )
            .await;
        match found {
            Ok(_) => Ok(true),
            Err(OrchestratorError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn outputs(&self, deployment_id: &str) -> Result<Map<String, Value>, OrchestratorError> {
        let o: wire::Outputs = self
            .get(
                &["deployments", deployment_id, "outputs"],
                &[],
                "GET /deployments/{id}/outputs",
            )
            .await?;
        Ok(o.outputs.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    //! The adapter against a tiny scripted HTTP server on 127.0.0.1: retry policy, version
    //! cache, paging and error enrichment. Cloudify's behaviour per version is the contract
    //! suite's job (tests/contract/cloudify.rs, against cloudify-sim).

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use serde_json::json;

    use super::*;

    #[derive(Default)]
    struct Hits {
        version: AtomicUsize,
        executions_post: AtomicUsize,
        deployment_get: AtomicUsize,
        put: AtomicUsize,
    }

    type Answer = (StatusCode, axum::Json<Value>);

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    fn fast(url: &str) -> CloudifyOrchestrator {
        let mut c = CloudifyConfig::new(url);
        c.retry = RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            total_budget: Duration::from_secs(5),
        };
        c.page_size = 2;
        CloudifyOrchestrator::new(c).unwrap()
    }

    fn err(status: StatusCode, code: &str, message: &str) -> Answer {
        (
            status,
            axum::Json(json!({"message": message, "error_code": code, "server_traceback": null})),
        )
    }

    fn scripted(hits: Arc<Hits>) -> Router {
        Router::new()
            .route(
                "/api/v3.1/version",
                get(|State(h): State<Arc<Hits>>| async move {
                    h.version.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"version": "5.1.2", "edition": "community"}))
                }),
            )
            .route(
                "/api/v3.1/deployments/{id}",
                get(|State(h): State<Arc<Hits>>| async move {
                    // Two 500s, then the deployment.
                    if h.deployment_get.fetch_add(1, Ordering::SeqCst) < 2 {
                        return err(StatusCode::INTERNAL_SERVER_ERROR, "internal_server_error", "x");
                    }
                    (StatusCode::OK, axum::Json(json!({"id": "osb-1"})))
                })
                .put(|State(h): State<Arc<Hits>>, axum::Json(body): axum::Json<Value>| async move {
                    h.put.fetch_add(1, Ordering::SeqCst);
                    // 5.1 must not get labels.
                    if body.get("labels").is_some() {
                        return err(StatusCode::BAD_REQUEST, "bad_parameters_error", "labels");
                    }
                    err(StatusCode::BAD_GATEWAY, "internal_server_error", "gateway")
                }),
            )
            .route(
                "/api/v3.1/executions",
                post(|State(h): State<Arc<Hits>>| async move {
                    h.executions_post.fetch_add(1, Ordering::SeqCst);
                    err(
                        StatusCode::BAD_REQUEST,
                        "deployment_creation_error",
                        "Deployment environment creation failed",
                    )
                })
                .get(|Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    assert_eq!(q.get("workflow_id").map(String::as_str), Some(CREATE_ENVIRONMENT));
                    axum::Json(json!({"items": [{"id": "e0", "status": "failed",
                        "error": "Traceback (most recent call last):\n  File \"x\"\nValueError: Input port must be an integer"}],
                        "metadata": {"pagination": {"total": 1, "offset": 0, "size": 1}}}))
                }),
            )
            .route(
                "/api/v3.1/blueprints",
                get(|Query(q): Query<std::collections::HashMap<String, String>>| async move {
                    assert!(!q.contains_key("state"), "5.1 has no blueprint state filter");
                    assert!(!q["_include"].contains("labels"));
                    let offset: usize = q["_offset"].parse().unwrap();
                    let all = ["a", "b", "c", "d", "e"];
                    let items: Vec<Value> = all
                        .iter()
                        .skip(offset)
                        .take(2)
                        .map(|id| json!({"id": id, "description": "", "plan": {"inputs": {}, "metadata": null}}))
                        .collect();
                    axum::Json(json!({"items": items, "metadata": {"pagination": {"total": 5, "offset": offset, "size": 2}}}))
                }),
            )
            .with_state(hits)
    }

    #[tokio::test]
    async fn gets_are_retried_after_server_errors_and_the_version_is_read_once() {
        let hits = Arc::new(Hits::default());
        let url = serve(scripted(hits.clone())).await;
        let o = fast(&url);
        assert!(o.deployment_exists("osb-1").await.unwrap());
        assert_eq!(hits.deployment_get.load(Ordering::SeqCst), 3);
        let bps = o.blueprints().await.unwrap();
        let _ = o.blueprints().await.unwrap();
        assert_eq!(hits.version.load(Ordering::SeqCst), 1);
        let ids: Vec<&str> = bps.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e"]);
        assert_eq!(bps[0].description, None);
        assert_eq!(bps[0].tenant, DEFAULT_TENANT);
    }

    #[tokio::test]
    async fn a_put_deployment_is_sent_once_even_after_a_server_error() {
        let hits = Arc::new(Hits::default());
        let url = serve(scripted(hits.clone())).await;
        let o = fast(&url);
        let spec = DeploymentSpec {
            deployment_id: "osb-1".into(),
            blueprint_id: "bp".into(),
            inputs: Map::new(),
            labels: vec![("osb-instance".into(), "1".into())],
        };
        let e = o.create_deployment(&spec).await.unwrap_err();
        assert!(matches!(e, OrchestratorError::Unavailable(_)), "{e:?}");
        assert_eq!(hits.put.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_environment_reports_the_create_executions_error() {
        let hits = Arc::new(Hits::default());
        let url = serve(scripted(hits.clone())).await;
        let o = fast(&url);
        let e = o
            .start_workflow("osb-1", Workflow::Install)
            .await
            .unwrap_err();
        match e {
            OrchestratorError::EnvironmentFailed(m) => {
                assert_eq!(m, "ValueError: Input port must be an integer")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(hits.executions_post.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unreachable_manager_is_unavailable_after_bounded_retries() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let o = fast(&url);
        let started = std::time::Instant::now();
        let e = o.deployment_exists("osb-1").await.unwrap_err();
        assert!(matches!(e, OrchestratorError::Unavailable(_)), "{e:?}");
        assert_eq!(o.round_trips(), 3);
        assert!(started.elapsed() < Duration::from_secs(5));
        // Readiness (ping) answers after one attempt.
        assert!(o.ping().await.is_err());
        assert_eq!(o.round_trips(), 4);
    }

    #[test]
    fn debug_output_names_the_api_and_tenant_only() {
        let mut c = CloudifyConfig::new("http://127.0.0.1:9");
        c.credentials = CloudifyCredentials::Token(secrecy::SecretString::from("ctok-9-s3cr3t"));
        let o = CloudifyOrchestrator::new(c).unwrap();
        let shown = format!("{o:?}");
        assert!(
            shown.contains("/api/v3.1") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }
}
