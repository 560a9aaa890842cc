//! OSB request parsing through the real router (in-memory store, no Cloudify): any method,
//! path, query, headers and body. The broker never panics and never answers 500, and every
//! answer is a JSON object (errors with `error` and `description`).
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request};
use cloudify_osb::adapters::memory::MemoryStore;
use cloudify_osb::domain::broker::{Broker, BrokerSettings};
use cloudify_osb::domain::ports::BinderRegistry;
use cloudify_osb::http::{ApiState, BasicAuth, Route, router};
use libfuzzer_sys::fuzz_target;
use secrecy::SecretString;
use tower::ServiceExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn app() -> axum::Router {
    static STATE: OnceLock<ApiState> = OnceLock::new();
    let state = STATE.get_or_init(|| {
        let broker = Broker::new(
            Arc::new(MemoryStore::new()),
            None,
            BinderRegistry::new(),
            BrokerSettings::default(),
        );
        ApiState::new(
            Arc::new(broker),
            BasicAuth::new("u", &SecretString::from("p")),
        )
    });
    router(state.clone(), &Route::ALL)
}

// Input: line 1 = method selector + path-and-query, line 2 = extra header value for a
// header chosen by the selector, rest = body.
fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let first = parts.next().unwrap_or_default();
    let header = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default().to_vec();
    let (sel, path) = first.split_first().map_or((0, &[][..]), |(s, p)| (*s, p));
    let method =
        [Method::GET, Method::PUT, Method::PATCH, Method::DELETE][usize::from(sel % 4)].clone();
    let path = String::from_utf8_lossy(path);
    let uri = if path.starts_with('/') {
        path.into_owned()
    } else {
        format!("/v2/service_instances/{path}")
    };
    let mut req = Request::builder()
        .method(method)
        .uri(uri.as_str())
        .header("authorization", "Basic dTpw")
        .header("x-broker-api-version", "2.17");
    let name = [
        "content-type",
        "x-broker-api-originating-identity",
        "x-broker-api-request-identity",
        "content-length",
    ][usize::from((sel / 4) % 4)];
    if let Ok(v) = axum::http::HeaderValue::from_bytes(header) {
        req = req.header(name, v);
    }
    let Ok(req) = req.body(Body::from(body)) else {
        return;
    };
    let resp = runtime().block_on(async { app().oneshot(req).await.expect("infallible") });
    let status = resp.status();
    assert_ne!(status.as_u16(), 500, "500 for {uri}");
    assert!(
        !status.is_server_error() || status.as_u16() == 503,
        "{status} for {uri}"
    );
    let bytes = runtime()
        .block_on(axum::body::to_bytes(resp.into_body(), usize::MAX))
        .expect("body");
    if status.as_u16() == 304 {
        return;
    }
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("non-JSON {status} for {uri}"));
    assert!(value.is_object(), "{status} for {uri}: {value}");
    if status.is_client_error() {
        assert!(
            value["error"].is_string() && value["description"].is_string(),
            "{value}"
        );
    }
});
