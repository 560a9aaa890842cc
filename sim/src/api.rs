//! The Cloudify REST API v3.1 surface (`/api/v3.1/...`, `/api/version`): authentication,
//! tenant check, injected faults, lists, blueprints, deployments, executions and tokens.
//!
//! Version-dependent behaviour is asked of `Version` predicates only. Must not import the
//! `control` module (the test-only routes build on this one, not the other way round).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Map, Value, json};

use crate::fixtures::{parse_labels, valid_resource_id, validate_inputs};
use crate::net::ConnHandle;
use crate::state::{Deployment, Execution, Sim, State as SimState, Status, TENANT, Token};
use crate::version::DeleteMode;

type Shared = Arc<Sim>;
type Params = Query<Vec<(String, String)>>;
type ApiResult = Result<Response, ApiError>;

/// A Cloudify error answer: `{message, error_code, server_traceback}`.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Cloudify `error_code`.
    pub code: &'static str,
    /// Message.
    pub message: String,
}

#[derive(Clone, Debug)]
struct ErrorMark(ApiError);

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with the given code.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 `not_found_error` for a resource kind and ID.
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            format!("Requested `{kind}` with ID `{id}` was not found"),
        )
    }

    fn exception_name(&self) -> String {
        self.code
            .split('_')
            .filter(|w| *w != "error")
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<String>()
            + "Error"
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "message": self.message,
            "error_code": self.code,
            "server_traceback": Value::Null,
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        resp.extensions_mut().insert(ErrorMark(self));
        resp
    }
}

fn ok(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, axum::Json(body)).into_response())
}

/// The `/api` router (state, middlewares and routes).
pub fn router(sim: Shared) -> Router {
    let v31 = Router::new()
        .route("/version", get(version))
        .route("/status", get(status))
        .route("/tokens", get(tokens_get).post(tokens_post))
        .route("/tokens/{id}", get(token_get).delete(token_delete))
        .route("/blueprints", get(blueprints_list))
        .route("/blueprints/{id}", get(blueprint_get))
        .route("/searches/blueprints", post(search_blueprints))
        .route("/searches/deployments", post(search_deployments))
        .route("/deployments", get(deployments_list))
        .route(
            "/deployments/{id}",
            get(deployment_get)
                .put(deployment_put)
                .delete(deployment_delete),
        )
        .route("/deployments/{id}/outputs", get(deployment_outputs))
        .route(
            "/deployments/{id}/capabilities",
            get(deployment_capabilities),
        )
        .route("/executions", get(executions_list).post(executions_post))
        .route("/deployment-updates", get(updates_list))
        .route("/deployment-updates/{id}", get(update_get))
        .route(
            "/deployment-updates/{id}/update/initiate",
            post(update_initiate).put(update_initiate),
        )
        .route(
            "/executions/{id}",
            get(execution_get).post(execution_action),
        );
    Router::new()
        .nest("/api/v3.1", v31)
        .route("/api/version", get(version))
        .fallback(not_found_route)
        .layer(middleware::from_fn_with_state(sim.clone(), authenticate))
        .layer(middleware::from_fn_with_state(sim.clone(), inject_faults))
        .layer(middleware::from_fn_with_state(sim.clone(), fill_traceback))
        .with_state(sim)
}

async fn not_found_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found_error",
        "404: Not Found. The requested URL was not found on the server.",
    )
}

async fn fill_traceback(State(sim): State<Shared>, req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    if !sim.cfg.version.fills_server_traceback() {
        return resp;
    }
    let Some(ErrorMark(err)) = resp.extensions().get::<ErrorMark>().cloned() else {
        return resp;
    };
    let tb = format!(
        "Traceback (most recent call last):\n  File \"/opt/manager/env/lib/python2.7/site-packages/manager_rest/rest/rest_decorators.py\", line 200, in wrapper\n    return func(*args, **kwargs)\nmanager_exceptions.{}: {}\n",
        err.exception_name(),
        err.message
    );
    let body = json!({"message": err.message, "error_code": err.code, "server_traceback": tb});
    (err.status, axum::Json(body)).into_response()
}

async fn inject_faults(State(sim): State<Shared>, req: Request, next: Next) -> Response {
    let (latency, drop, fail, lose) = {
        let mut st = sim.lock();
        let f = &mut st.faults;
        let drop = f.drop_connections > 0;
        let fail = !drop && f.http_500 > 0;
        if drop {
            f.drop_connections -= 1;
        } else if fail {
            f.http_500 -= 1;
        }
        let lose = if drop || fail {
            false
        } else {
            let (method, path) = (req.method().as_str(), req.uri().path());
            match f.lose_answer.iter().position(|r| r.matches(method, path)) {
                Some(i) => {
                    f.lose_answer.remove(i);
                    true
                }
                None => false,
            }
        };
        (f.latency_ms, drop, fail, lose)
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if drop {
        if let Some(ConnectInfo(conn)) = req.extensions().get::<ConnectInfo<ConnHandle>>() {
            conn.kill();
        }
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if lose {
        // Carried out; its answer is lost.
        let _carried_out = next.run(req).await;
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Internal error occurred in manager REST server - simulated failure (cloudify-sim)",
        )
        .into_response();
    }
    if fail {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Internal error occurred in manager REST server - simulated failure (cloudify-sim)",
        )
        .into_response();
    }
    next.run(req).await
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn authenticate(State(sim): State<Shared>, req: Request, next: Next) -> Response {
    match check_auth(&sim, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

fn unauthorized(msg: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized_error", msg)
}

fn check_auth(sim: &Sim, h: &HeaderMap) -> Result<(), ApiError> {
    if let Some(token) = header_str(h, "authentication-token") {
        let known = sim.lock().tokens.iter().any(|t| t.value == token);
        if !known {
            return Err(unauthorized("User unauthorized: invalid token"));
        }
    } else {
        let basic = header_str(h, header::AUTHORIZATION.as_str())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|s| {
                s.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            })
            .filter(|(u, _)| u.chars().next().is_some_and(|c| c.is_ascii_alphabetic()));
        let Some((user, pass)) = basic else {
            return Err(unauthorized("No authentication info provided"));
        };
        if user != sim.cfg.username || pass != sim.cfg.password {
            return Err(unauthorized(format!(
                "User unauthorized: Authentication failed for <User username=`{user}`>. Wrong credentials or locked account"
            )));
        }
    }
    if let Some(tenant) = header_str(h, "tenant") {
        if tenant != TENANT {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_error",
                format!(
                    "Authorization failed: Tried to authenticate with invalid tenant name: {tenant}"
                ),
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Parameters and lists

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn parse_bool_str(name: &str, s: &str) -> Result<bool, ApiError> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" | "" => Ok(false),
        _ => Err(ApiError::bad(
            "bad_parameters_error",
            format!("{name} must be a boolean, got {s}"),
        )),
    }
}

fn query_bool(q: &[(String, String)], name: &str) -> Result<Option<bool>, ApiError> {
    param(q, name).map(|s| parse_bool_str(name, s)).transpose()
}

/// A body boolean: JSON boolean, "true"/"false" strings, or null/absent (= `None`).
fn body_bool(body: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => parse_bool_str(name, s).map(Some),
        Some(other) => Err(ApiError::bad(
            "bad_parameters_error",
            format!("{name} must be a boolean, got {other}"),
        )),
    }
}

fn parse_body(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad(
            "bad_parameters_error",
            "Request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad(
            "bad_parameters_error",
            format!("Failed to decode JSON object: {e}"),
        )),
    }
}

struct ListParams {
    offset: usize,
    size: usize,
    include: Option<Vec<String>>,
    sort: Vec<(String, bool)>,
    filters: Vec<(String, Vec<String>)>,
}

fn parse_usize(name: &str, s: &str) -> Result<usize, ApiError> {
    s.trim().parse::<usize>().map_err(|_| {
        ApiError::bad(
            "bad_parameters_error",
            format!("{name} must be a non-negative integer, got `{s}`"),
        )
    })
}

fn parse_include(q: &[(String, String)]) -> Option<Vec<String>> {
    let parts: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "_include")
        .flat_map(|(_, v)| v.split(',').map(str::trim).map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then_some(parts)
}

fn parse_list(sim: &Sim, q: &[(String, String)]) -> Result<ListParams, ApiError> {
    let offset = param(q, "_offset")
        .map(|s| parse_usize("_offset", s))
        .transpose()?
        .unwrap_or(0);
    let size = param(q, "_size")
        .map(|s| parse_usize("_size", s))
        .transpose()?
        .unwrap_or(1000);
    if size > 1000 && sim.cfg.version.refuses_large_page() {
        return Err(ApiError::bad(
            "illegal_action_error",
            format!("Invalid pagination size: {size}. Max allowed: 1000"),
        ));
    }
    let sort = q
        .iter()
        .filter(|(k, _)| k == "_sort")
        .flat_map(|(_, v)| v.split(',').map(str::trim).map(str::to_string))
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix('-') {
            Some(f) => (f.to_string(), true),
            None => (s.trim_start_matches('+').to_string(), false),
        })
        .collect();
    let mut filters: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in q {
        if k.starts_with('_') {
            continue;
        }
        match filters.iter_mut().find(|(fk, _)| fk == k) {
            Some((_, vals)) => vals.push(v.clone()),
            None => filters.push((k.clone(), vec![v.clone()])),
        }
    }
    Ok(ListParams {
        offset,
        size,
        include: parse_include(q),
        sort,
        filters,
    })
}

fn value_matches(field: &Value, wanted: &str) -> bool {
    match field {
        Value::String(s) => s == wanted,
        Value::Bool(b) => parse_bool_str("", wanted).is_ok_and(|w| w == *b),
        Value::Number(n) => n.to_string() == wanted,
        Value::Null => wanted.eq_ignore_ascii_case("none") || wanted.eq_ignore_ascii_case("null"),
        // Lists and objects are not filterable by plain query parameters.
        _ => true,
    }
}

fn cmp_values(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn project(item: Value, include: &Option<Vec<String>>) -> Result<Value, ApiError> {
    let Some(fields) = include else {
        return Ok(item);
    };
    let Value::Object(m) = item else {
        return Ok(item);
    };
    let mut out = Map::new();
    for f in fields {
        match m.get(f) {
            Some(v) => {
                out.insert(f.clone(), v.clone());
            }
            None => {
                return Err(ApiError::bad(
                    "no_such_include_field_error",
                    format!("Illegal include field `{f}`: no such field"),
                ));
            }
        }
    }
    Ok(Value::Object(out))
}

fn list_response(items: Vec<Value>, p: &ListParams) -> ApiResult {
    list_response_with(rows_of(items), p, None)
}

fn rows_of(items: Vec<Value>) -> Vec<(Arc<Value>, Option<Arc<str>>)> {
    items.into_iter().map(|i| (Arc::new(i), None)).collect()
}

/// Filters, sorts and pages light rows; each row may carry one large field already
/// serialized (`raw_field` = its name, e.g. a blueprint's `plan`), spliced into the page's
/// JSON text so that it is neither cloned nor re-serialized per request.
fn list_response_with(
    rows: Vec<(Arc<Value>, Option<Arc<str>>)>,
    p: &ListParams,
    raw_field: Option<&str>,
) -> ApiResult {
    let mut items: Vec<(Arc<Value>, Option<Arc<str>>)> = rows
        .into_iter()
        .filter(|(item, _)| {
            p.filters.iter().all(|(k, wanted)| match item.get(k) {
                Some(field) => wanted.iter().any(|w| value_matches(field, w)),
                None => true,
            })
        })
        .collect();
    for (field, desc) in p.sort.iter().rev() {
        items.sort_by(|(a, _), (b, _)| {
            let o = cmp_values(
                a.get(field).unwrap_or(&Value::Null),
                b.get(field).unwrap_or(&Value::Null),
            );
            if *desc { o.reverse() } else { o }
        });
    }
    let total = items.len();
    let wants_raw = raw_field.filter(|f| {
        p.include
            .as_ref()
            .is_none_or(|inc| inc.iter().any(|i| i == f))
    });
    let light_include = p.include.as_ref().map(|inc| {
        inc.iter()
            .filter(|i| Some(i.as_str()) != raw_field)
            .cloned()
            .collect::<Vec<_>>()
    });
    let mut body = String::from("{\"items\":[");
    for (n, (item, raw)) in items.into_iter().skip(p.offset).take(p.size).enumerate() {
        let projected = project(Arc::unwrap_or_clone(item), &light_include)?;
        let mut text = serde_json::to_string(&projected).unwrap_or_else(|_| "{}".into());
        if let (Some(name), Some(raw)) = (wants_raw, raw) {
            text.pop();
            if text.len() > 1 {
                text.push(',');
            }
            text.push_str(&format!("{}:{raw}}}", Value::String(name.to_string())));
        }
        if n > 0 {
            body.push(',');
        }
        body.push_str(&text);
    }
    body.push_str(&format!(
        "],\"metadata\":{{\"pagination\":{{\"total\":{total},\"offset\":{},\"size\":{}}}}}}}",
        p.offset, p.size
    ));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

// ---------------------------------------------------------------------------------------
// Version, status, tokens

async fn version(State(sim): State<Shared>) -> ApiResult {
    ok(
        StatusCode::OK,
        json!({
            "edition": "premium",
            "version": sim.cfg.version.to_string(),
            "build": "cloudify-sim",
            "date": "",
            "commit": "",
            "distribution": "cloudify-sim",
            "distro_release": "",
        }),
    )
}

async fn status(State(_sim): State<Shared>) -> ApiResult {
    ok(StatusCode::OK, json!({"status": "running", "services": {}}))
}

fn render_token(sim: &Sim, t: &Token, with_value: bool) -> Value {
    json!({
        "id": t.id,
        "value": if with_value { json!(t.value) } else { json!(format!("ctok-{}-********", t.id)) },
        "description": t.description,
        "expiration_date": t.expiration_date,
        "last_used": Value::Null,
        "username": sim.cfg.username,
        "role": "sys_admin",
    })
}

async fn tokens_get(State(sim): State<Shared>, Query(q): Params) -> ApiResult {
    let mut st = sim.lock();
    if sim.cfg.version.has_token_resources() {
        let items: Vec<Value> = st
            .tokens
            .iter()
            .map(|t| render_token(&sim, t, false))
            .collect();
        return list_response(items, &parse_list(&sim, &q)?);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let value = format!("WyIw{id}");
    st.tokens.push(Token {
        id,
        value: value.clone(),
        description: None,
        expiration_date: None,
    });
    ok(StatusCode::OK, json!({"role": "sys_admin", "value": value}))
}

async fn tokens_post(State(sim): State<Shared>, body: Bytes) -> ApiResult {
    if !sim.cfg.version.has_token_resources() {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "The method is not allowed for the requested URL.",
        ));
    }
    let body = parse_body(&body)?;
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let secret = uuid::Uuid::new_v4().simple().to_string();
    let t = Token {
        value: format!("ctok-{id}-{secret}"),
        id,
        description: body
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string),
        expiration_date: body
            .get("expiration_date")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let out = render_token(&sim, &t, true);
    sim.lock().tokens.push(t);
    ok(StatusCode::OK, out)
}

async fn token_get(State(sim): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let st = sim.lock();
    match st.tokens.iter().find(|t| t.id == id) {
        Some(t) if sim.cfg.version.has_token_resources() => {
            ok(StatusCode::OK, render_token(&sim, t, false))
        }
        _ => Err(ApiError::not_found("Token", &id)),
    }
}

async fn token_delete(State(sim): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let mut st = sim.lock();
    let before = st.tokens.len();
    st.tokens.retain(|t| t.id != id);
    if before == st.tokens.len() || !sim.cfg.version.has_token_resources() {
        return Err(ApiError::not_found("Token", &id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------------------------
// Blueprints

fn blueprint_rows(sim: &Sim) -> Vec<(Arc<Value>, Option<Arc<str>>)> {
    let st = sim.lock();
    st.blueprints
        .iter()
        .map(|b| (b.light.clone(), Some(b.plan_json.clone())))
        .collect()
}

async fn blueprints_list(State(sim): State<Shared>, Query(q): Params) -> ApiResult {
    let p = parse_list(&sim, &q)?;
    list_response_with(blueprint_rows(&sim), &p, Some("plan"))
}

async fn blueprint_get(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult {
    let item = {
        let st = sim.lock();
        st.blueprints
            .iter()
            .find(|b| b.fx.id == id)
            .map(|b| sim.render_blueprint(b))
    };
    let item = item.ok_or_else(|| ApiError::not_found("Blueprint", &id))?;
    ok(StatusCode::OK, project(item, &parse_include(&q))?)
}

fn labels_of(item: &Value) -> Vec<(String, String)> {
    item.get("labels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|l| {
                    Some((
                        l.get("key")?.as_str()?.to_string(),
                        l.get("value")?.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rule_matches(item: &Value, rule: &Value) -> Result<bool, ApiError> {
    let bad = |m: &str| ApiError::bad("invalid_filter_rule", m.to_string());
    let key = rule
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("filter rule needs `key`"))?;
    let op = rule
        .get("operator")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("filter rule needs `operator`"))?;
    let values: Vec<String> = rule
        .get("values")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let kind = rule.get("type").and_then(Value::as_str).unwrap_or("label");
    let have: Vec<String> = match kind {
        "label" => labels_of(item)
            .into_iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
            .collect(),
        "attribute" => match item.get(key) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Null) | None => vec![],
            Some(other) => vec![other.to_string()],
        },
        other => return Err(bad(&format!("unknown filter rule type `{other}`"))),
    };
    Ok(match op {
        "any_of" => have.iter().any(|h| values.contains(h)),
        "not_any_of" => !have.iter().any(|h| values.contains(h)),
        "is_null" => have.is_empty(),
        "is_not_null" => !have.is_empty(),
        "is_not_empty" => have.iter().any(|h| !h.is_empty()),
        "contains" => have.iter().any(|h| values.iter().any(|v| h.contains(v))),
        "not_contains" => !have.iter().any(|h| values.iter().any(|v| h.contains(v))),
        "starts_with" => have.iter().any(|h| values.iter().any(|v| h.starts_with(v))),
        "ends_with" => have.iter().any(|h| values.iter().any(|v| h.ends_with(v))),
        other => return Err(bad(&format!("unknown filter rule operator `{other}`"))),
    })
}

fn search(
    sim: &Sim,
    items: Vec<(Arc<Value>, Option<Arc<str>>)>,
    q: &[(String, String)],
    body: &Bytes,
    raw_field: Option<&str>,
) -> ApiResult {
    if !sim.cfg.version.has_searches() {
        return Err(not_found_sync());
    }
    let body = parse_body(body)?;
    let rules = match body.get("filter_rules") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(r)) => r.clone(),
        Some(_) => {
            return Err(ApiError::bad(
                "bad_parameters_error",
                "filter_rules must be a list",
            ));
        }
    };
    let mut kept = Vec::new();
    for (item, t) in items {
        let mut all = true;
        for r in &rules {
            all &= rule_matches(&item, r)?;
        }
        if all {
            kept.push((item, t));
        }
    }
    list_response_with(kept, &parse_list(sim, q)?, raw_field)
}

fn not_found_sync() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found_error",
        "404: Not Found. The requested URL was not found on the server.",
    )
}

async fn search_blueprints(State(sim): State<Shared>, Query(q): Params, body: Bytes) -> ApiResult {
    search(&sim, blueprint_rows(&sim), &q, &body, Some("plan"))
}

async fn search_deployments(State(sim): State<Shared>, Query(q): Params, body: Bytes) -> ApiResult {
    search(&sim, rows_of(rendered_deployments(&sim)), &q, &body, None)
}

// ---------------------------------------------------------------------------------------
// Deployments

fn rendered_deployments(sim: &Sim) -> Vec<Value> {
    let mut st = sim.lock();
    sim.tick(&mut st, Instant::now());
    st.deployments
        .iter()
        .map(|d| sim.render_deployment(&st, d))
        .collect()
}

async fn deployments_list(State(sim): State<Shared>, Query(q): Params) -> ApiResult {
    let p = parse_list(&sim, &q)?;
    list_response(rendered_deployments(&sim), &p)
}

/// A copy of deployment `id`, or Cloudify's 404 for it.
fn deployment_copy(st: &SimState, id: &str) -> Result<Deployment, ApiError> {
    st.deployments
        .iter()
        .find(|d| d.id == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Deployment", id))
}

fn with_deployment<T>(
    sim: &Sim,
    id: &str,
    f: impl FnOnce(&mut SimState, usize) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut st = sim.lock();
    sim.tick(&mut st, Instant::now());
    let i = st
        .deployments
        .iter()
        .position(|d| d.id == id)
        .ok_or_else(|| ApiError::not_found("Deployment", id))?;
    f(&mut st, i)
}

async fn deployment_get(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult {
    let item = with_deployment(&sim, &id, |st, i| {
        Ok(sim.render_deployment(st, &st.deployments[i]))
    })?;
    ok(StatusCode::OK, project(item, &parse_include(&q))?)
}

fn values_of(sim: &Sim, id: &str, which: &str) -> ApiResult {
    let values = with_deployment(sim, id, |st, i| {
        sim.evaluate_values(&st.deployments[i], which).map_err(|e| {
            ApiError::bad(
                "deployment_outputs_evaluation_error",
                format!("Error evaluating deployment {which} of `{id}`: {e}"),
            )
        })
    })?;
    ok(StatusCode::OK, json!({"deployment_id": id, which: values}))
}

async fn deployment_outputs(State(sim): State<Shared>, Path(id): Path<String>) -> ApiResult {
    values_of(&sim, &id, "outputs")
}

async fn deployment_capabilities(State(sim): State<Shared>, Path(id): Path<String>) -> ApiResult {
    if !sim.cfg.version.has_capabilities() {
        return Err(not_found_sync());
    }
    values_of(&sim, &id, "capabilities")
}

fn validate_deployment_id(sim: &Sim, id: &str) -> Result<(), ApiError> {
    let prefix = "The `deployment_id` argument";
    let bad = |m: String| ApiError::bad("bad_parameters_error", m);
    if id.is_empty() {
        return Err(bad(format!("{prefix} is empty")));
    }
    if id.len() > 256 {
        return Err(bad(format!(
            "{prefix} is too long. Maximum allowed length is 256 characters"
        )));
    }
    if sim.cfg.version.id_must_begin_with_letter()
        && !id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
    {
        return Err(bad(format!("{prefix} must begin with a letter")));
    }
    if !valid_resource_id(id) {
        return Err(bad(format!(
            "{prefix} contains illegal characters. Only letters, digits, \"-\", \".\" and \"_\" are allowed"
        )));
    }
    Ok(())
}

async fn deployment_put(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> ApiResult {
    let v = sim.cfg.version;
    validate_deployment_id(&sim, &id)?;
    let body = parse_body(&body)?;
    let blueprint_id = match body.get("blueprint_id") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            return Err(ApiError::bad(
                "bad_parameters_error",
                "Missing blueprint_id in json request body",
            ));
        }
    };
    let given = match body.get("inputs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::bad(
                "bad_parameters_error",
                "inputs must be a dictionary",
            ));
        }
    };
    let labels = if v.deployment_has_labels() {
        parse_labels(body.get("labels")).map_err(|e| ApiError::bad("bad_parameters_error", e))?
    } else {
        Vec::new()
    };
    let visibility = match body.get("visibility") {
        None | Some(Value::Null) => "tenant".to_string(),
        Some(Value::String(s)) if ["private", "tenant", "global"].contains(&s.as_str()) => {
            s.clone()
        }
        Some(other) => {
            return Err(ApiError::bad(
                "bad_parameters_error",
                format!("Invalid visibility: {other}. Valid values are private, tenant, global"),
            ));
        }
    };
    let runtime_only_evaluation = body_bool(&body, "runtime_only_evaluation")?.unwrap_or(false);
    body_bool(&body, "skip_plugins_validation")?;
    let async_create = query_bool(&q, "async_create")?.unwrap_or(false);
    let display_name = body
        .get("display_name")
        .and_then(Value::as_str)
        .unwrap_or(&id)
        .to_string();
    let site_name = body
        .get("site_name")
        .and_then(Value::as_str)
        .map(str::to_string);

    let create_id = {
        let now = Instant::now();
        let mut st = sim.lock();
        sim.tick(&mut st, now);
        if let Some(existing) = st.deployments.iter().find(|d| d.id == id) {
            let leftover = v.put_replaces_failed_leftover()
                && matches!(
                    Sim::env_status(&st, existing),
                    Some(Status::Failed | Status::Cancelled)
                );
            if !leftover {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict_error",
                    format!("<Deployment id=`{id}` tenant=`{TENANT}`> already exists"),
                ));
            }
            st.deployments.retain(|d| d.id != id);
            st.executions.retain(|e| e.deployment_id != id);
        }
        let bp = st
            .blueprints
            .iter()
            .find(|b| b.fx.id == blueprint_id)
            .map(|b| b.fx.clone())
            .ok_or_else(|| ApiError::not_found("Blueprint", &blueprint_id))?;
        if v.blueprint_has_state() && bp.state != "uploaded" {
            return Err(ApiError::bad(
                "deployment_creation_error",
                format!(
                    "Can't create deployment `{id}`: blueprint `{blueprint_id}` is in state `{}`, not `uploaded`",
                    bp.state
                ),
            ));
        }
        let (inputs, fail_with) = match validate_inputs(&bp.input_defs(), &given) {
            Ok(eff) => (eff, None),
            Err(e) if v.validates_inputs_in_put() => {
                return Err(ApiError::bad(e.code, e.message));
            }
            Err(e) => (given.clone(), Some(e.message)),
        };
        let stamp = sim.ts(now);
        st.deployments.push(Deployment {
            id: id.clone(),
            blueprint: bp.clone(),
            given_inputs: given,
            inputs,
            labels,
            display_name,
            visibility,
            site_name,
            runtime_only_evaluation,
            created_at: stamp.clone(),
            updated_at: stamp,
            create_execution: String::new(),
            latest_execution: String::new(),
            installed: false,
        });
        let exec_id = sim.new_execution(
            &mut st,
            &id,
            &bp.id,
            "create_deployment_environment",
            json!({}),
            Status::Pending,
            false,
            fail_with,
            now,
        );
        if let Some(d) = st.deployments.iter_mut().find(|d| d.id == id) {
            d.create_execution = exec_id.clone();
        }
        exec_id
    };

    if v.put_blocks_on_environment() && !async_create {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ended = {
                let mut st = sim.lock();
                sim.tick(&mut st, Instant::now());
                st.executions
                    .iter()
                    .find(|e| e.id == create_id)
                    .map(|e| (e.status, e.error.clone()))
            };
            match ended {
                Some((Status::Terminated, _)) | None => break,
                Some((Status::Failed, err)) if !err.is_empty() => {
                    let last = err.lines().last().unwrap_or(&err).to_string();
                    return Err(ApiError::bad("deployment_creation_error", last));
                }
                Some((s, _)) if s.is_ended() => {
                    return Err(ApiError::bad(
                        "deployment_environment_creation_in_progress_error",
                        "Deployment environment creation is still in progress, try again in a minute",
                    ));
                }
                Some(_) if Instant::now() >= deadline => {
                    return Err(ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_server_error",
                        "Internal error occurred in manager REST server - timed out waiting for the deployment environment",
                    ));
                }
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    let body = with_deployment(&sim, &id, |st, i| {
        Ok(sim.render_deployment(st, &st.deployments[i]))
    })?;
    ok(StatusCode::CREATED, body)
}

async fn deployment_delete(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult {
    let v = sim.cfg.version;
    let force = v.delete_has_force() && query_bool(&q, "force")?.unwrap_or(false);
    let ignore_live = force
        || (v.delete_has_ignore_live_nodes()
            && query_bool(&q, "ignore_live_nodes")?.unwrap_or(false));
    query_bool(&q, "delete_logs")?;
    let now = Instant::now();
    let mut st = sim.lock();
    sim.tick(&mut st, now);
    let d = deployment_copy(&st, &id)?;
    let active: Vec<String> = st
        .executions
        .iter()
        .filter(|e| e.deployment_id == id && !e.status.is_ended())
        .map(|e| e.id.clone())
        .collect();
    if !force && !active.is_empty() {
        return Err(ApiError::bad(
            "dependent_exists_error",
            format!(
                "Can't delete deployment {id} - There are running or queued executions for this deployment. Running executions ids: {}",
                active.join(",")
            ),
        ));
    }
    if !ignore_live && d.installed {
        return Err(ApiError::bad(
            "dependent_exists_error",
            format!(
                "Can't delete deployment {id} - Deployment still has active nodes (run uninstall first, or pass {})",
                if v.delete_has_force() {
                    "force=true"
                } else {
                    "ignore_live_nodes=true"
                }
            ),
        ));
    }
    let body = sim.render_deployment(&st, &d);
    if force {
        let already_deleting = st.executions.iter().any(|e| {
            e.deployment_id == id
                && e.workflow_id == "delete_deployment_environment"
                && !e.status.is_ended()
        });
        if already_deleting {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        for e in st.executions.iter_mut() {
            if e.deployment_id == id && !e.status.is_ended() {
                e.status = Status::Cancelled;
                e.ended_at = Some(sim.ts(now));
            }
        }
    }
    match v.delete_mode() {
        DeleteMode::Sync200 => {
            if Sim::take_fail_rule(&mut st, "delete_deployment_environment", &id).is_some() {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_server_error",
                    format!(
                        "Internal error occurred in manager REST server - delete_deployment_environment failed for `{id}`"
                    ),
                ));
            }
            st.deployments.retain(|x| x.id != id);
            st.executions.retain(|x| x.deployment_id != id);
            ok(StatusCode::OK, body)
        }
        mode => {
            sim.new_execution(
                &mut st,
                &id,
                &d.blueprint.id,
                "delete_deployment_environment",
                json!({"delete_logs": query_bool(&q, "delete_logs")?.unwrap_or(false)}),
                Status::Pending,
                false,
                None,
                now,
            );
            if mode == DeleteMode::Async200 {
                ok(StatusCode::OK, body)
            } else {
                Ok(StatusCode::NO_CONTENT.into_response())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Executions

async fn executions_list(State(sim): State<Shared>, Query(q): Params) -> ApiResult {
    let p = parse_list(&sim, &q)?;
    let items: Vec<Value> = {
        let mut st = sim.lock();
        sim.tick(&mut st, Instant::now());
        st.executions
            .iter()
            .map(|e| sim.render_execution(e))
            .collect()
    };
    list_response(items, &p)
}

fn find_execution<T>(
    sim: &Sim,
    id: &str,
    f: impl FnOnce(&mut SimState, usize) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut st = sim.lock();
    sim.tick(&mut st, Instant::now());
    let i = st
        .executions
        .iter()
        .position(|e| e.id == id)
        .ok_or_else(|| ApiError::not_found("Execution", id))?;
    f(&mut st, i)
}

async fn execution_get(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult {
    let item = find_execution(&sim, &id, |st, i| {
        Ok(sim.render_execution(&st.executions[i]))
    })?;
    ok(StatusCode::OK, project(item, &parse_include(&q))?)
}

fn workflow_parameters(
    d: &Deployment,
    workflow: &str,
    given: Map<String, Value>,
    allow_custom: bool,
) -> Result<Value, ApiError> {
    let Some(def) = d
        .blueprint
        .plan
        .get("workflows")
        .and_then(|w| w.get(workflow))
    else {
        return Err(ApiError::bad(
            "nonexistent_workflow_error",
            format!(
                "Workflow {workflow} does not exist in the deployment {}",
                d.id
            ),
        ));
    };
    let schema = def
        .get("parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let missing: Vec<&String> = schema
        .iter()
        .filter(|(k, s)| s.get("default").is_none() && !given.contains_key(*k))
        .map(|(k, _)| k)
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::bad(
            "illegal_execution_parameters_error",
            format!(
                "Workflow \"{workflow}\" must be provided with the following parameters to execute: {missing:?}"
            ),
        ));
    }
    let custom: Vec<&String> = given.keys().filter(|k| !schema.contains_key(*k)).collect();
    if !custom.is_empty() && !allow_custom {
        return Err(ApiError::bad(
            "illegal_execution_parameters_error",
            format!(
                "Workflow \"{workflow}\" does not accept the following parameters: {custom:?}. Parameters passed: {:?}. Allowed parameters: {:?}. To run the workflow anyway, pass \"allow_custom_parameters=true\"",
                given.keys().collect::<Vec<_>>(),
                schema.keys().collect::<Vec<_>>()
            ),
        ));
    }
    let mut merged = Map::new();
    for (k, s) in &schema {
        if let Some(dv) = s.get("default") {
            merged.insert(k.clone(), dv.clone());
        }
    }
    merged.extend(given);
    Ok(Value::Object(merged))
}

async fn executions_post(State(sim): State<Shared>, body: Bytes) -> ApiResult {
    let v = sim.cfg.version;
    let body = parse_body(&body)?;
    let field = |name: &str| match body.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(ApiError::bad(
            "bad_parameters_error",
            format!("Missing {name} in json request body"),
        )),
    };
    let dep_id = field("deployment_id")?;
    let workflow = field("workflow_id")?;
    let given = match body.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            return Err(ApiError::bad(
                "bad_parameters_error",
                format!(
                    "request body's 'parameters' field must be a dict but is of type {}",
                    match other {
                        Value::String(_) => "str",
                        Value::Array(_) => "list",
                        Value::Bool(_) => "bool",
                        _ => "number",
                    }
                ),
            ));
        }
    };
    let allow_custom = body_bool(&body, "allow_custom_parameters")?.unwrap_or(false);
    let force = body_bool(&body, "force")?.unwrap_or(false);
    let dry_run = body_bool(&body, "dry_run")?.unwrap_or(false);
    let queue = v.has_queue() && body_bool(&body, "queue")?.unwrap_or(false);
    let now = Instant::now();
    let mut st = sim.lock();
    sim.tick(&mut st, now);
    let d = deployment_copy(&st, &dep_id)?;
    let parameters = workflow_parameters(&d, &workflow, given, allow_custom)?;
    match Sim::env_status(&st, &d) {
        Some(Status::Pending | Status::Queued) => {
            return Err(ApiError::bad(
                "deployment_environment_creation_pending_error",
                "Deployment environment creation is still pending, try again in a minute",
            ));
        }
        Some(
            Status::Started | Status::Cancelling | Status::ForceCancelling | Status::KillCancelling,
        ) => {
            return Err(ApiError::bad(
                "deployment_environment_creation_in_progress_error",
                "Deployment environment creation is still in progress, try again in a minute",
            ));
        }
        Some(Status::Failed) => {
            return Err(ApiError::bad(
                "deployment_creation_error",
                format!(
                    "Can't launch executions since environment creation for deployment {dep_id} has failed"
                ),
            ));
        }
        Some(Status::Cancelled) => {
            return Err(ApiError::bad(
                "deployment_creation_error",
                format!(
                    "Can't launch executions since environment creation for deployment {dep_id} has been cancelled"
                ),
            ));
        }
        Some(Status::Terminated) | None => {}
    }
    let running: Vec<&Execution> = st
        .executions
        .iter()
        .filter(|e| e.deployment_id == dep_id && !e.status.is_ended())
        .collect();
    let status = if running.is_empty() || force {
        Status::Pending
    } else if queue {
        Status::Queued
    } else {
        let ids: Vec<&str> = running.iter().map(|e| e.id.as_str()).collect();
        return Err(ApiError::bad(
            "existing_running_execution_error",
            format!(
                "The following executions are currently running for this deployment: {ids:?}. To execute this workflow anyway, pass \"force=true\" as a query parameter to this request"
            ),
        ));
    };
    let id = sim.new_execution(
        &mut st,
        &dep_id,
        &d.blueprint.id,
        &workflow,
        parameters,
        status,
        dry_run,
        None,
        now,
    );
    let e = st
        .executions
        .iter()
        .find(|e| e.id == id)
        .map(|e| sim.render_execution(e))
        .unwrap_or(Value::Null);
    ok(StatusCode::CREATED, e)
}

/// Applies a cancel action to an execution; shared with the control routes.
pub fn cancel_execution(sim: &Sim, id: &str, action: &str) -> Result<Value, ApiError> {
    let v = sim.cfg.version;
    let target = match action {
        "cancel" => Status::Cancelling,
        "force-cancel" => Status::ForceCancelling,
        "kill" if v.has_kill() => Status::KillCancelling,
        "resume" | "force-resume" | "requeue" => {
            return Err(ApiError::bad(
                "illegal_action_error",
                format!("cloudify-sim does not support `{action}` of execution {id}"),
            ));
        }
        other => {
            return Err(ApiError::bad(
                "bad_parameters_error",
                format!(
                    "Unknown action `{other}`; valid actions: cancel, force-cancel{}",
                    if v.has_kill() { ", kill" } else { "" }
                ),
            ));
        }
    };
    find_execution(sim, id, |st, i| {
        let now = Instant::now();
        let e = &st.executions[i];
        let cancellable = matches!(e.status, Status::Pending | Status::Started | Status::Queued)
            || (target != Status::Cancelling
                && matches!(e.status, Status::Cancelling | Status::ForceCancelling));
        if !cancellable {
            return Err(ApiError::bad(
                "illegal_action_error",
                format!(
                    "Can't {action} execution {id} because it's in status {}",
                    e.status.as_str()
                ),
            ));
        }
        if e.status == Status::Queued {
            sim.end_execution(st, i, Status::Cancelled, now);
        } else {
            let e = &mut st.executions[i];
            e.status = target;
            e.since = now;
        }
        Ok(st
            .executions
            .iter()
            .find(|e| e.id == id)
            .map(|e| sim.render_execution(e))
            .unwrap_or(Value::Null))
    })
}

async fn execution_action(
    State(sim): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    let action = body.get("action").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad(
            "bad_parameters_error",
            "Missing action in json request body",
        )
    })?;
    ok(StatusCode::OK, cancel_execution(&sim, &id, action)?)
}

// ---- Deployment updates (`/deployment-updates`) ----

fn render_update(u: &crate::state::DeploymentUpdate) -> Value {
    json!({
        "id": u.id,
        "deployment_id": u.deployment_id,
        "state": u.state,
        "execution_id": u.execution_id,
        "old_blueprint_id": u.blueprint_id,
        "new_blueprint_id": u.blueprint_id,
        "old_inputs": u.old_inputs,
        "new_inputs": u.new_inputs,
        "steps": [],
        "modified_entity_ids": {},
        "deployment_plan": {},
        "runtime_only_evaluation": false,
        "created_at": u.created_at,
        "tenant_name": TENANT,
        "created_by": "admin",
        "visibility": "tenant",
        "private_resource": false,
        "resource_availability": "tenant",
    })
}

/// `POST` (client 5.x+) or `PUT` (older clients) `/deployment-updates/{id}/update/initiate`:
/// an update that reuses a blueprint (`blueprint_id`, default the deployment's own) with new
/// `inputs`; it starts the `update` workflow and answers the update record.
async fn update_initiate(
    State(sim): State<Shared>,
    Path(dep_id): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body = parse_body(&body)?;
    let given = match body.get("inputs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::bad(
                "bad_parameters_error",
                "inputs must be a dictionary",
            ));
        }
    };
    let now = Instant::now();
    let mut st = sim.lock();
    sim.tick(&mut st, now);
    let d = deployment_copy(&st, &dep_id)?;
    if let Some(Value::String(b)) = body.get("blueprint_id") {
        if b != &d.blueprint.id && !st.blueprints.iter().any(|x| &x.fx.id == b) {
            return Err(ApiError::not_found("Blueprint", b));
        }
    }
    let mut new_inputs = d.given_inputs.clone();
    new_inputs.extend(given);
    validate_inputs(&d.blueprint.input_defs(), &new_inputs)
        .map_err(|e| ApiError::bad(e.code, e.message))?;
    let running: Vec<String> = st
        .executions
        .iter()
        .filter(|e| e.deployment_id == dep_id && !e.status.is_ended())
        .map(|e| e.id.clone())
        .collect();
    if !running.is_empty() {
        return Err(ApiError::bad(
            "existing_running_execution_error",
            format!(
                "The following executions are currently running for this deployment: {running:?}. To execute this workflow anyway, pass \"force=true\" as a query parameter to this request"
            ),
        ));
    }
    let update_id = format!("{dep_id}-{}", uuid::Uuid::new_v4());
    let execution_id = sim.new_execution(
        &mut st,
        &dep_id,
        &d.blueprint.id,
        "update",
        json!({"update_id": update_id}),
        Status::Pending,
        false,
        None,
        now,
    );
    let update = crate::state::DeploymentUpdate {
        id: update_id,
        deployment_id: dep_id,
        execution_id,
        state: "executing_workflow".into(),
        blueprint_id: d.blueprint.id.clone(),
        old_inputs: d.given_inputs.clone(),
        new_inputs,
        created_at: sim.ts(now),
    };
    let rendered = render_update(&update);
    st.updates.push(update);
    ok(StatusCode::OK, rendered)
}

/// `GET /deployment-updates/{id}`.
async fn update_get(State(sim): State<Shared>, Path(id): Path<String>) -> ApiResult {
    let mut st = sim.lock();
    sim.tick(&mut st, Instant::now());
    let u = st
        .updates
        .iter()
        .find(|u| u.id == id)
        .ok_or_else(|| ApiError::not_found("Deployment update", &id))?;
    ok(StatusCode::OK, render_update(u))
}

/// `GET /deployment-updates` (optionally filtered by `deployment_id`).
async fn updates_list(State(sim): State<Shared>, Query(q): Params) -> ApiResult {
    let dep = q
        .iter()
        .find(|(k, _)| k == "deployment_id")
        .map(|(_, v)| v.clone());
    let rest: Vec<(String, String)> = q
        .iter()
        .filter(|(k, _)| k != "deployment_id")
        .cloned()
        .collect();
    let p = parse_list(&sim, &rest)?;
    let items = {
        let mut st = sim.lock();
        sim.tick(&mut st, Instant::now());
        st.updates
            .iter()
            .filter(|u| dep.as_deref().is_none_or(|d| d == u.deployment_id))
            .map(render_update)
            .collect()
    };
    list_response(items, &p)
}
