//! The one HTTP layer (DESIGN.md §1): an axum router that owns the OSB protocol — auth, the
//! version header, request identity, `accepts_incomplete`, body validation, status codes and
//! error bodies — in the order of DESIGN.md §3b. `cloudify-osb serve` runs it with every
//! route; each Lambda runs it restricted to its own route. No other parser anywhere.
//! Must not import adapter crates (it only sees the domain's `Broker`).

pub mod auth;
pub mod catalog;
pub mod error;
pub mod extract;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde::Serialize;
use tracing::Instrument;

use crate::domain::broker::{
    BindRequest, Broker, Completion, DeprovisionRequest, ProvisionRequest, Reply, UnbindRequest,
    UpdateRequest,
};
use crate::domain::ids::{BindingId, InstanceId, OperationId, PlanId, ServiceId};
pub use auth::BasicAuth;
use error::ApiError;
use extract::{QueryParams, REQUEST_IDENTITY};

/// The OSB routes (DESIGN.md §2); the names are those of the Lambda binaries and log spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Route {
    Catalog,
    Provision,
    Update,
    Deprovision,
    GetInstance,
    LastOperation,
    Bind,
    Unbind,
    GetBinding,
    BindingLastOperation,
}

impl Route {
    /// Every OSB route.
    pub const ALL: [Route; 10] = [
        Route::Catalog,
        Route::Provision,
        Route::Update,
        Route::Deprovision,
        Route::GetInstance,
        Route::LastOperation,
        Route::Bind,
        Route::Unbind,
        Route::GetBinding,
        Route::BindingLastOperation,
    ];

    /// The route's name: `catalog`, `provision`, …, `binding-last-operation`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Provision => "provision",
            Self::Update => "update",
            Self::Deprovision => "deprovision",
            Self::GetInstance => "get-instance",
            Self::LastOperation => "last-operation",
            Self::Bind => "bind",
            Self::Unbind => "unbind",
            Self::GetBinding => "get-binding",
            Self::BindingLastOperation => "binding-last-operation",
        }
    }

    /// The HTTP method.
    pub fn method(self) -> Method {
        match self {
            Self::Catalog
            | Self::GetInstance
            | Self::LastOperation
            | Self::GetBinding
            | Self::BindingLastOperation => Method::GET,
            Self::Provision | Self::Bind => Method::PUT,
            Self::Update => Method::PATCH,
            Self::Deprovision | Self::Unbind => Method::DELETE,
        }
    }

    /// The axum path pattern.
    pub fn path(self) -> &'static str {
        match self {
            Self::Catalog => "/v2/catalog",
            Self::Provision | Self::Update | Self::Deprovision | Self::GetInstance => {
                "/v2/service_instances/{instance_id}"
            }
            Self::LastOperation => "/v2/service_instances/{instance_id}/last_operation",
            Self::Bind | Self::Unbind | Self::GetBinding => {
                "/v2/service_instances/{instance_id}/service_bindings/{binding_id}"
            }
            Self::BindingLastOperation => {
                "/v2/service_instances/{instance_id}/service_bindings/{binding_id}/last_operation"
            }
        }
    }

    /// Routes that only work asynchronously and so require `accepts_incomplete=true`.
    pub fn is_async(self) -> bool {
        matches!(self, Self::Provision | Self::Update | Self::Deprovision)
    }

    /// The oldest `2.N` accepted: the fetch routes came with 2.14 (osb.md §2.1).
    pub fn min_minor(self) -> u32 {
        match self {
            Self::GetInstance | Self::GetBinding => 14,
            _ => extract::MIN_MINOR,
        }
    }

    fn filter(self) -> MethodFilter {
        match self.method() {
            Method::PUT => MethodFilter::PUT,
            Method::PATCH => MethodFilter::PATCH,
            Method::DELETE => MethodFilter::DELETE,
            _ => MethodFilter::GET,
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Route {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown route {s:?}"))
    }
}

/// What every request borrows: the broker and the accepted credentials.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub broker: Arc<Broker>,
    pub auth: Arc<BasicAuth>,
    /// How long one OSB request may wait for its backends ([`crate::deadline`]).
    pub deadline: Option<Duration>,
    /// The largest response the transport can carry (Lambda behind API Gateway), if any:
    /// a catalog over it is answered with a clear error instead of a failed invocation.
    pub response_limit: Option<usize>,
}

impl ApiState {
    /// The state of a router over `broker` accepting the `auth` credentials.
    pub fn new(broker: Arc<Broker>, auth: BasicAuth) -> Self {
        Self {
            broker,
            auth: Arc::new(auth),
            deadline: None,
            response_limit: None,
        }
    }

    /// Caps what a response may weigh as a Lambda response document (see
    /// [`catalog::LAMBDA_RESPONSE_LIMIT`]).
    pub fn with_response_limit(mut self, bytes: usize) -> Self {
        self.response_limit = Some(bytes);
        self
    }

    /// Every OSB request gets `budget` for its calls to backends (`--cloudify-timeout`).
    pub fn with_deadline(mut self, budget: Duration) -> Self {
        self.deadline = Some(budget);
        self
    }
}

/// The router serving `routes` (all of [`Route::ALL`] for `serve`, one for a Lambda), plus
/// `/healthz` and `/readyz`, with JSON 404/405 for anything else.
pub fn router(state: ApiState, routes: &[Route]) -> Router {
    let mut by_path: BTreeMap<&'static str, MethodRouter<ApiState>> = BTreeMap::new();
    for &route in routes {
        let handler = move |State(st): State<ApiState>, req: Request| dispatch(st, route, req);
        let entry = by_path.remove(route.path());
        let method_router = match entry {
            Some(m) => m.on(route.filter(), handler),
            None => on(route.filter(), handler),
        };
        by_path.insert(route.path(), method_router);
    }
    let mut router = Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz));
    for (path, method_router) in by_path {
        router = router.route(path, method_router);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

async fn readyz(State(st): State<ApiState>) -> Response {
    let readiness = st.broker.readiness().await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

async fn not_found() -> Response {
    ApiError::new(StatusCode::NOT_FOUND, "NotFound", "No such route.").into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "This method is not allowed on this route.",
    )
    .into_response()
}

/// Request identity (generated when the platform sent none), originating identity, one log
/// line per request, and the identity echoed in every response (osb.md §2).
async fn observe(mut req: Request, next: Next) -> Response {
    let identity = match req.headers().get(REQUEST_IDENTITY) {
        Some(v) if !v.is_empty() => v.clone(),
        _ => {
            let generated = uuid::Uuid::new_v4().to_string();
            let v = HeaderValue::from_str(&generated).unwrap_or(HeaderValue::from_static("-"));
            req.headers_mut().insert(REQUEST_IDENTITY, v.clone());
            v
        }
    };
    let (platform, user) = extract::originating_identity(req.headers());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_identity = %identity.to_str().unwrap_or("-"),
        origin_platform = platform.as_deref().unwrap_or("-"),
        origin_user = user.as_deref().unwrap_or("-"),
    );
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request finished"
        );
    });
    response.headers_mut().insert(REQUEST_IDENTITY, identity);
    response
}

async fn dispatch(st: ApiState, route: Route, req: Request) -> Response {
    let identity = req
        .headers()
        .get(REQUEST_IDENTITY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let span = tracing::info_span!("route", route = route.name());
    let deadline = st.deadline;
    let work = async move {
        let (parts, body) = req.into_parts();
        match handle(&st, route, parts, body, &identity).await {
            Ok(response) => response,
            Err(e) => e.into_response(),
        }
    };
    crate::deadline::scope(deadline, work.instrument(span)).await
}

fn answer<T: Serialize>(reply: Reply<T>) -> Response {
    let status = match reply.completion {
        Completion::Done => StatusCode::OK,
        Completion::Created => StatusCode::CREATED,
        Completion::Accepted => StatusCode::ACCEPTED,
    };
    (status, Json(reply.body)).into_response()
}

fn with_retry_after(mut response: Response, secs: Option<u64>) -> Response {
    if let Some(secs) = secs {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

/// The pipeline of DESIGN.md §3b for one route.
async fn handle(
    st: &ApiState,
    route: Route,
    mut parts: Parts,
    body: Body,
    identity: &str,
) -> Result<Response, ApiError> {
    if !st.auth.allows(&parts.headers) {
        tracing::info!(route = %route, "authentication failed");
        return Err(ApiError::unauthorized());
    }
    extract::check_version(&parts.headers, route.min_minor())?;
    let query = QueryParams::parse(&parts)?;
    if route.is_async() && !query.accepts_incomplete() {
        return Err(ApiError::async_required());
    }
    let broker = &st.broker;
    let fail = |e| ApiError::from_broker(route, e, identity);
    let response = match route {
        Route::Catalog => {
            let snapshot = broker.catalog_snapshot().await.map_err(fail)?;
            catalog::respond(&snapshot, &parts.headers, st.response_limit)?
        }
        Route::Provision => {
            let id = extract::path_id(&mut parts, "instance_id", InstanceId::parse).await?;
            let req: ProvisionRequest = extract::json_body(&parts, body).await?;
            req.validate().map_err(ApiError::bad_request)?;
            answer(broker.provision(&id, req).await.map_err(fail)?)
        }
        Route::Update => {
            let id = extract::path_id(&mut parts, "instance_id", InstanceId::parse).await?;
            let req: UpdateRequest = extract::json_body(&parts, body).await?;
            answer(broker.update(&id, req).await.map_err(fail)?)
        }
        Route::Deprovision => {
            let id = extract::path_id(&mut parts, "instance_id", InstanceId::parse).await?;
            let req = DeprovisionRequest {
                service_id: query.required("service_id", ServiceId::parse)?,
                plan_id: query.required("plan_id", PlanId::parse)?,
            };
            answer(broker.deprovision(&id, req).await.map_err(fail)?)
        }
        Route::GetInstance => {
            let id = extract::path_id(&mut parts, "instance_id", InstanceId::parse).await?;
            query.optional("service_id", ServiceId::parse)?;
            query.optional("plan_id", PlanId::parse)?;
            Json(broker.get_instance(&id).await.map_err(fail)?).into_response()
        }
        Route::LastOperation => {
            let id = extract::path_id(&mut parts, "instance_id", InstanceId::parse).await?;
            query.optional("service_id", ServiceId::parse)?;
            query.optional("plan_id", PlanId::parse)?;
            let operation = query.optional("operation", OperationId::parse)?;
            let last = broker
                .last_operation(&id, operation.as_ref())
                .await
                .map_err(fail)?;
            let retry = last.retry_after_secs;
            with_retry_after(Json(last).into_response(), retry)
        }
        Route::Bind => {
            let id = extract::path_id(&mut parts, "instance_id", InstanceId::parse).await?;
            let bid = extract::path_id(&mut parts, "binding_id", BindingId::parse).await?;
            let req: BindRequest = extract::json_body(&parts, body).await?;
            req.validate().map_err(ApiError::bad_request)?;
            answer(broker.bind(&id, &bid, req).await.map_err(fail)?)
        }
        Route::Unbind => {
            let id = extract::path_id(&mut parts, "instance_id", InstanceId::parse).await?;
            let bid = extract::path_id(&mut parts, "binding_id", BindingId::parse).await?;
            let req = UnbindRequest {
                service_id: query.required("service_id", ServiceId::parse)?,
                plan_id: query.required("plan_id", PlanId::parse)?,
            };
            Json(broker.unbind(&id, &bid, req).await.map_err(fail)?).into_response()
        }
        Route::GetBinding => {
            let id = extract::path_id(&mut parts, "instance_id", InstanceId::parse).await?;
            let bid = extract::path_id(&mut parts, "binding_id", BindingId::parse).await?;
            query.optional("service_id", ServiceId::parse)?;
            query.optional("plan_id", PlanId::parse)?;
            Json(broker.get_binding(&id, &bid).await.map_err(fail)?).into_response()
        }
        Route::BindingLastOperation => {
            let id = extract::path_id(&mut parts, "instance_id", InstanceId::parse).await?;
            let bid = extract::path_id(&mut parts, "binding_id", BindingId::parse).await?;
            query.optional("service_id", ServiceId::parse)?;
            query.optional("plan_id", PlanId::parse)?;
            query.optional("operation", OperationId::parse)?;
            let last = broker
                .binding_last_operation(&id, &bid)
                .await
                .map_err(fail)?;
            let retry = last.retry_after_secs;
            with_retry_after(Json(last).into_response(), retry)
        }
    };
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_names_round_trip() {
        for r in Route::ALL {
            assert_eq!(r.name().parse::<Route>().unwrap(), r);
        }
        assert!("sync-catalog".parse::<Route>().is_err());
    }
}
