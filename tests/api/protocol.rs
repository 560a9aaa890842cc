//! Rules that hold on every route: auth (401), version (412), `accepts_incomplete` (422),
//! body syntax (400/413/415), their order (DESIGN.md §3b), request identity, JSON errors.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::*;
use cloudify_osb::http::Route;

#[tokio::test]
async fn every_route_answers_401_without_credentials() {
    let h = Harness::new();
    for route in Route::ALL {
        let (method, uri) = route_request(route);
        let a = h
            .send(
                osb(method, &uri, None)
                    .header("authorization", None)
                    .build(),
            )
            .await;
        a.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
        assert!(
            a.headers.get("www-authenticate").is_some(),
            "{route}: no WWW-Authenticate"
        );
    }
}

#[tokio::test]
async fn every_route_answers_401_to_a_wrong_username_or_password() {
    let h = Harness::new();
    for route in Route::ALL {
        let (method, uri) = route_request(route);
        for auth in [basic("intruder", PASSWORD), basic(USER, "wrong")] {
            let a = h
                .send(
                    osb(method.clone(), &uri, None)
                        .header("authorization", Some(&auth))
                        .build(),
                )
                .await;
            a.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
    }
}

#[tokio::test]
async fn malformed_authorization_headers_answer_401() {
    let h = Harness::new();
    for auth in ["Bearer abc", "Basic !!!", "Basic", "Basic cGxhdGZvcm0="] {
        let a = h
            .send(
                osb(Method::GET, "/v2/catalog", None)
                    .header("authorization", Some(auth))
                    .build(),
            )
            .await;
        a.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
}

#[tokio::test]
async fn the_next_credential_pair_is_accepted_during_rotation() {
    let h = Harness::new();
    let auth = basic("platform-next", "next-pw");
    let a = h
        .send(
            osb(Method::GET, "/v2/catalog", None)
                .header("authorization", Some(&auth))
                .build(),
        )
        .await;
    a.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn every_route_answers_412_without_a_version_header() {
    let h = Harness::new();
    for route in Route::ALL {
        let (method, uri) = route_request(route);
        let a = h
            .send(
                osb(method, &uri, None)
                    .header("x-broker-api-version", None)
                    .build(),
            )
            .await;
        a.assert_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
    }
}

#[tokio::test]
async fn version_3_0_and_2_12_and_garbage_answer_412_naming_the_accepted_range() {
    let h = Harness::new();
    for version in ["3.0", "2.12", "1.17", "two", "2", "2.x", ""] {
        let a = h
            .send(
                osb(Method::GET, "/v2/catalog", None)
                    .header("x-broker-api-version", Some(version))
                    .build(),
            )
            .await;
        a.assert_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
        assert!(a.description().contains("2.13"), "{}", a.text);
    }
}

#[tokio::test]
async fn versions_2_13_to_2_17_are_accepted_on_the_catalog() {
    let h = Harness::new();
    for version in ["2.13", "2.14", "2.15", "2.16", "2.17", "2.99"] {
        let a = h
            .send(
                osb(Method::GET, "/v2/catalog", None)
                    .header("x-broker-api-version", Some(version))
                    .build(),
            )
            .await;
        a.assert_status(StatusCode::OK);
    }
}

#[tokio::test]
async fn the_fetch_routes_need_2_14() {
    let h = Harness::new();
    for uri in [
        "/v2/service_instances/i1",
        "/v2/service_instances/i1/service_bindings/b1",
    ] {
        let old = h
            .send(
                osb(Method::GET, uri, None)
                    .header("x-broker-api-version", Some("2.13"))
                    .build(),
            )
            .await;
        old.assert_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
        assert!(old.description().contains("2.14"), "{}", old.text);
        let new = h
            .send(
                osb(Method::GET, uri, None)
                    .header("x-broker-api-version", Some("2.14"))
                    .build(),
            )
            .await;
        new.assert_error(StatusCode::NOT_FOUND, "NotFound");
    }
}

#[tokio::test]
async fn auth_is_checked_before_the_version() {
    let h = Harness::new();
    let a = h
        .send(
            osb(Method::GET, "/v2/catalog", None)
                .header("authorization", None)
                .header("x-broker-api-version", None)
                .build(),
        )
        .await;
    a.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
}

#[tokio::test]
async fn the_version_is_checked_before_accepts_incomplete_and_the_body() {
    let h = Harness::new();
    let a = h
        .send(
            osb(Method::PUT, "/v2/service_instances/i1", Some(json!({})))
                .header("x-broker-api-version", None)
                .build(),
        )
        .await;
    a.assert_error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
}

#[tokio::test]
async fn accepts_incomplete_is_checked_before_the_body() {
    let h = Harness::new();
    let a = h
        .send(
            osb(Method::PUT, "/v2/service_instances/i1", None)
                .raw_body("{not json")
                .build(),
        )
        .await;
    a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "AsyncRequired");
}

#[tokio::test]
async fn async_routes_answer_422_async_required_with_the_exact_description() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let q = format!("service_id={}&plan_id={}", o.service_id, o.plan_id);
    for flag in [
        "",
        "accepts_incomplete=false&",
        "accepts_incomplete=TRUE&",
        "accepts_incomplete=1&",
    ] {
        for (method, uri, body) in [
            (
                Method::PUT,
                format!("/v2/service_instances/i1?{flag}"),
                Some(provision_body(&o)),
            ),
            (
                Method::PATCH,
                format!("/v2/service_instances/i1?{flag}"),
                Some(json!({"service_id": o.service_id})),
            ),
            (
                Method::DELETE,
                format!("/v2/service_instances/i1?{flag}{q}"),
                None,
            ),
        ] {
            let a = h.call(method, &uri, body).await;
            a.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "AsyncRequired");
            assert_eq!(a.json["description"], ASYNC_REQUIRED);
        }
    }
}

#[tokio::test]
async fn the_body_is_checked_before_the_instance() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.provisioned("i1", &o).await;
    let a = h
        .send(
            osb(
                Method::PUT,
                "/v2/service_instances/i1?accepts_incomplete=true",
                None,
            )
            .header("content-type", Some("application/json"))
            .raw_body("{\"service_id\": ")
            .build(),
        )
        .await;
    a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn the_request_identity_is_echoed_on_success_and_on_every_error() {
    let h = Harness::new();
    let cases = [
        osb(Method::GET, "/v2/catalog", None),
        osb(Method::GET, "/v2/catalog", None).header("authorization", None),
        osb(Method::GET, "/v2/catalog", None).header("x-broker-api-version", Some("3.0")),
        osb(Method::GET, "/v2/nothing-here", None),
        osb(Method::POST, "/v2/catalog", None),
        osb(Method::GET, "/v2/service_instances/unknown", None),
    ];
    for req in cases {
        let a = h
            .send(
                req.header("x-broker-api-request-identity", Some("e2f5-identity"))
                    .build(),
            )
            .await;
        assert_eq!(
            a.headers.get("x-broker-api-request-identity").unwrap(),
            "e2f5-identity",
            "{}",
            a.text
        );
        a.assert_json();
    }
}

#[tokio::test]
async fn a_request_identity_is_made_up_when_the_platform_sends_none() {
    let h = Harness::new();
    let a = h
        .send(
            osb(Method::GET, "/v2/catalog", None)
                .header("x-broker-api-request-identity", None)
                .build(),
        )
        .await;
    let id = a.headers.get("x-broker-api-request-identity").unwrap();
    assert!(!id.is_empty());
}

#[tokio::test]
async fn a_malformed_originating_identity_never_fails_a_request() {
    let h = Harness::new();
    for value in [
        "kubernetes",
        "kubernetes !!notbase64",
        "cloudfoundry eyJ1c2VyX2lkIjoiYSJ9",
        " ",
    ] {
        let a = h
            .send(
                osb(Method::GET, "/v2/catalog", None)
                    .header("x-broker-api-originating-identity", Some(value))
                    .build(),
            )
            .await;
        a.assert_status(StatusCode::OK);
    }
}

#[tokio::test]
async fn unknown_paths_answer_a_json_404() {
    let h = Harness::new();
    for uri in [
        "/",
        "/v2",
        "/v2/catalog/x",
        "/v2/service_instances/i1/extra/b/c/d",
    ] {
        h.get(uri)
            .await
            .assert_error(StatusCode::NOT_FOUND, "NotFound");
    }
}

#[tokio::test]
async fn unknown_methods_answer_a_json_405() {
    let h = Harness::new();
    for (method, uri) in [
        (Method::POST, "/v2/catalog"),
        (Method::DELETE, "/v2/catalog"),
        (Method::POST, "/v2/service_instances/i1"),
        (
            Method::PATCH,
            "/v2/service_instances/i1/service_bindings/b1",
        ),
        (Method::PUT, "/v2/service_instances/i1/last_operation"),
    ] {
        let a = h.call(method, uri, None).await;
        a.assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    }
}

#[tokio::test]
async fn a_router_for_one_route_serves_only_that_route() {
    let h = Harness::with(Options {
        routes: vec![Route::Catalog],
        ..Options::default()
    });
    h.get("/v2/catalog").await.assert_status(StatusCode::OK);
    let a = h.get("/v2/service_instances/i1").await;
    a.assert_error(StatusCode::NOT_FOUND, "NotFound");
}

#[tokio::test]
async fn healthz_and_readyz_need_no_auth_and_no_version() {
    let h = Harness::new();
    let req = |uri: &str| {
        osb(Method::GET, uri, None)
            .header("authorization", None)
            .header("x-broker-api-version", None)
            .build()
    };
    let a = h.send(req("/healthz")).await;
    a.assert_status(StatusCode::OK);
    let a = h.send(req("/readyz")).await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json["ready"], true);
    assert_eq!(a.json["checks"]["store"], "ok");
    assert_eq!(a.json["checks"]["cloudify"], "ok");
    assert_eq!(a.json["checks"]["vault"], "ok");
}

#[tokio::test]
async fn readyz_answers_503_when_a_configured_backend_is_down() {
    let h = Harness::new();
    h.cloudify.with(|s| s.down = true);
    let a = h.get("/readyz").await;
    a.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json["ready"], false);
    assert_eq!(a.json["checks"]["cloudify"], "unavailable");
    assert!(!a.text.contains("secret-token"), "{}", a.text);
}

#[tokio::test]
async fn readyz_reports_backends_that_are_not_configured_without_failing() {
    let h = Harness::with(Options {
        cloudify: false,
        binder: false,
        ..Options::default()
    });
    let a = h.get("/readyz").await;
    a.assert_status(StatusCode::OK);
    assert_eq!(a.json["checks"]["cloudify"], "not configured");
    assert_eq!(a.json["checks"]["vault"], "not configured");
}

#[tokio::test]
async fn an_oversized_body_answers_a_json_413() {
    let h = Harness::new();
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(2 * 1024 * 1024));
    let a = h
        .send(
            osb(
                Method::PUT,
                "/v2/service_instances/i1?accepts_incomplete=true",
                None,
            )
            .header("content-type", Some("application/json"))
            .raw_body(big)
            .build(),
        )
        .await;
    a.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge");
}

#[tokio::test]
async fn a_wrong_content_type_answers_a_json_415() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let a = h
        .send(
            osb(
                Method::PUT,
                "/v2/service_instances/i1?accepts_incomplete=true",
                None,
            )
            .header("content-type", Some("text/plain"))
            .raw_body(provision_body(&o).to_string())
            .build(),
        )
        .await;
    a.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType");
}

#[tokio::test]
async fn a_json_body_without_content_type_is_accepted() {
    let h = Harness::new();
    let o = h.mariadb().await;
    let a = h
        .send(
            osb(
                Method::PUT,
                "/v2/service_instances/i1?accepts_incomplete=true",
                None,
            )
            .raw_body(provision_body(&o).to_string())
            .build(),
        )
        .await;
    a.assert_status(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn malformed_empty_and_non_object_bodies_answer_400() {
    let h = Harness::new();
    for body in ["{", "", "   ", "[]", "\"x\"", "null", "{\"service_id\": 5}"] {
        let a = h
            .send(
                osb(
                    Method::PUT,
                    "/v2/service_instances/i1?accepts_incomplete=true",
                    None,
                )
                .header("content-type", Some("application/json"))
                .raw_body(body)
                .build(),
            )
            .await;
        a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    }
}

#[tokio::test]
async fn unsafe_instance_and_binding_ids_answer_400() {
    let h = Harness::new();
    for id in ["..", ".", "a%20b", "a%2Fb", "%7B%7Bx%7D%7D", "%C3%BC"] {
        let a = h
            .get(&format!("/v2/service_instances/{id}/last_operation"))
            .await;
        a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
        let a = h
            .get(&format!("/v2/service_instances/i1/service_bindings/{id}"))
            .await;
        a.assert_error(StatusCode::BAD_REQUEST, "BadRequest");
    }
    let long = "a".repeat(201);
    h.get(&format!("/v2/service_instances/{long}"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "BadRequest");
}

#[tokio::test]
async fn a_503_names_the_dependency_and_the_request_identity_but_no_upstream_text() {
    let h = Harness::new();
    let o = h.mariadb().await;
    h.cloudify.with(|s| s.down = true);
    let a = h.provision("i1", &o).await;
    a.assert_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
    assert!(a.description().contains("Cloudify"), "{}", a.text);
    assert!(a.description().contains("req-test-1"), "{}", a.text);
    assert!(!a.text.contains("secret-token"), "{}", a.text);
    assert!(!a.text.contains("10.0.0.1"), "{}", a.text);
}
