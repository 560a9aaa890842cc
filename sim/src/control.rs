//! Test-only control and inspection routes under `/_sim/` (JSON, no authentication):
//! blueprints at runtime, scheduled workflow failures, HTTP faults, cancel, inspection and
//! reset. Documented in `sim/README.md`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};

use crate::api::cancel_execution;
use crate::fixtures::Fixture;
use crate::state::{FailRule, LoseRule, Sim};

type Shared = Arc<Sim>;

struct CtlError(StatusCode, String);

impl IntoResponse for CtlError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({"error": self.1}))).into_response()
    }
}

fn err(status: StatusCode, msg: impl Into<String>) -> Response {
    CtlError(status, msg.into()).into_response()
}

fn parse(body: &Bytes) -> Result<Value, CtlError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|e| CtlError(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))
}

/// The `/_sim` router.
pub fn router(sim: Shared) -> Router {
    Router::new()
        .route("/_sim/config", get(config))
        .route("/_sim/blueprints", get(list_blueprints).post(add_blueprint))
        .route("/_sim/blueprints/{id}", delete(delete_blueprint))
        .route("/_sim/deployments", get(list_deployments))
        .route("/_sim/executions", get(list_executions))
        .route("/_sim/executions/{id}/cancel", post(cancel))
        .route("/_sim/fail-next", post(fail_next))
        .route("/_sim/lose-answer", post(lose_answer))
        .route("/_sim/faults", get(get_faults).post(set_faults))
        .route("/_sim/reset", post(reset))
        .with_state(sim)
}

async fn config(State(sim): State<Shared>) -> Response {
    axum::Json(json!({
        "manager_version": sim.cfg.version.to_string(),
        "execution_seconds": sim.cfg.execution.as_secs_f64(),
        "tenant": crate::state::TENANT,
        "username": sim.cfg.username,
    }))
    .into_response()
}

async fn list_blueprints(State(sim): State<Shared>) -> Response {
    let st = sim.lock();
    let items: Vec<Value> = st
        .blueprints
        .iter()
        .map(|b| sim.render_blueprint(b))
        .collect();
    axum::Json(items).into_response()
}

async fn add_blueprint(State(sim): State<Shared>, body: Bytes) -> Response {
    let doc = match parse(&body) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let fx = match Fixture::from_json(&doc) {
        Ok(f) => f,
        Err(e) => return err(StatusCode::BAD_REQUEST, e),
    };
    let mut st = sim.lock();
    if st.blueprints.iter().any(|b| b.fx.id == fx.id) {
        return err(
            StatusCode::CONFLICT,
            format!("blueprint `{}` already exists", fx.id),
        );
    }
    let b = sim.make_blueprint(fx, sim.ts(Instant::now()));
    let out = sim.render_blueprint(&b);
    st.blueprints.push(b);
    (StatusCode::CREATED, axum::Json(out)).into_response()
}

async fn delete_blueprint(State(sim): State<Shared>, Path(id): Path<String>) -> Response {
    let mut st = sim.lock();
    let before = st.blueprints.len();
    st.blueprints.retain(|b| b.fx.id != id);
    if st.blueprints.len() == before {
        return err(StatusCode::NOT_FOUND, format!("no blueprint `{id}`"));
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn list_deployments(State(sim): State<Shared>) -> Response {
    let mut st = sim.lock();
    sim.tick(&mut st, Instant::now());
    let items: Vec<Value> = st
        .deployments
        .iter()
        .map(|d| {
            let mut v = sim.render_deployment(&st, d);
            if let Some(m) = v.as_object_mut() {
                m.insert("_installed".into(), json!(d.installed));
                m.insert(
                    "_environment".into(),
                    json!(Sim::env_status(&st, d).map(|s| s.as_str())),
                );
                m.insert(
                    "_given_inputs".into(),
                    Value::Object(d.given_inputs.clone()),
                );
            }
            v
        })
        .collect();
    axum::Json(items).into_response()
}

async fn list_executions(State(sim): State<Shared>) -> Response {
    let mut st = sim.lock();
    sim.tick(&mut st, Instant::now());
    let items: Vec<Value> = st
        .executions
        .iter()
        .map(|e| sim.render_execution(e))
        .collect();
    axum::Json(items).into_response()
}

async fn cancel(State(sim): State<Shared>, Path(id): Path<String>, body: Bytes) -> Response {
    let doc = match parse(&body) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let action = doc
        .get("action")
        .and_then(Value::as_str)
        .unwrap_or("cancel");
    match cancel_execution(&sim, &id, action) {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => err(e.status, e.message),
    }
}

async fn fail_next(State(sim): State<Shared>, body: Bytes) -> Response {
    let doc = match parse(&body) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let rule: FailRule = match serde_json::from_value(doc) {
        Ok(r) => r,
        Err(e) => return err(StatusCode::BAD_REQUEST, format!("bad fail rule: {e}")),
    };
    let mut st = sim.lock();
    st.faults.fail_next.push(rule);
    (StatusCode::CREATED, axum::Json(json!(st.faults))).into_response()
}

async fn lose_answer(State(sim): State<Shared>, body: Bytes) -> Response {
    let doc = match parse(&body) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let rule: LoseRule = match serde_json::from_value(doc) {
        Ok(r) => r,
        Err(e) => {
            return err(
                StatusCode::BAD_REQUEST,
                format!("bad lose-answer rule: {e}"),
            );
        }
    };
    let mut st = sim.lock();
    st.faults.lose_answer.push(rule);
    (StatusCode::CREATED, axum::Json(json!(st.faults))).into_response()
}

async fn get_faults(State(sim): State<Shared>) -> Response {
    axum::Json(json!(sim.lock().faults)).into_response()
}

async fn set_faults(State(sim): State<Shared>, body: Bytes) -> Response {
    let doc = match parse(&body) {
        Ok(d) => d,
        Err(r) => return r.into_response(),
    };
    let num = |k: &str| -> Result<Option<u64>, CtlError> {
        match doc.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                CtlError(
                    StatusCode::BAD_REQUEST,
                    format!("`{k}` must be a non-negative integer"),
                )
            }),
        }
    };
    let (h, d, l) = match (num("http_500"), num("drop_connections"), num("latency_ms")) {
        (Ok(h), Ok(d), Ok(l)) => (h, d, l),
        (Err(r), _, _) | (_, Err(r), _) | (_, _, Err(r)) => return r.into_response(),
    };
    let mut st = sim.lock();
    if let Some(h) = h {
        st.faults.http_500 = u32::try_from(h).unwrap_or(u32::MAX);
    }
    if let Some(d) = d {
        st.faults.drop_connections = u32::try_from(d).unwrap_or(u32::MAX);
    }
    if let Some(l) = l {
        st.faults.latency_ms = l;
    }
    axum::Json(json!(st.faults)).into_response()
}

async fn reset(State(sim): State<Shared>) -> Response {
    sim.reset();
    StatusCode::NO_CONTENT.into_response()
}
