//! Route `catalog` (`GET /v2/catalog`, spec "Catalog Management"): the snapshot's
//! pre-serialised body with a strong `ETag`; `If-None-Match` with a matching tag (or `*`)
//! answers 304 without a body. Behind API Gateway (a response limit set), a catalog too
//! large for a Lambda response is answered with a clear error, never a failed invocation.
//! Must not import adapter crates.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::domain::snapshot::CatalogSnapshot;

/// Lambda's limit on a synchronous response, the whole response document (status, headers,
/// body) as API Gateway receives it; the body travels in it as a JSON string.
pub const LAMBDA_RESPONSE_LIMIT: usize = 6 * 1024 * 1024;
/// Room for the status, headers and the envelope of the response document.
const ENVELOPE_BYTES: usize = 8 * 1024;

/// The bytes `body` takes as a JSON string in the Lambda response document (`"` and `\`
/// escaped; a JSON body has no raw control characters).
pub fn lambda_body_size(body: &[u8]) -> usize {
    body.len() + body.iter().filter(|b| matches!(b, b'"' | b'\\')).count() + 2
}

/// Whether a body fits a response limit of `limit` bytes (cheap unless it is near).
fn fits(body: &[u8], limit: usize) -> bool {
    let room = limit.saturating_sub(ENVELOPE_BYTES);
    body.len().saturating_mul(2) + 2 <= room || lambda_body_size(body) <= room
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison, RFC 9110 §13.1.2).
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = bare(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == want)
}

/// The catalog answer for `snapshot` given the request's headers; `limit`: the transport's
/// response limit, if any (a catalog over it answers 500 `CatalogTooLarge`, logged).
pub fn respond(
    snapshot: &CatalogSnapshot,
    headers: &HeaderMap,
    limit: Option<usize>,
) -> Result<Response, ApiError> {
    let doc = snapshot.document();
    let etag = HeaderValue::from_str(&doc.etag).ok();
    let matched = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| none_match(v, &doc.etag));
    let mut response = if matched {
        StatusCode::NOT_MODIFIED.into_response()
    } else if let Some(limit) = limit.filter(|l| !fits(&doc.body, *l)) {
        let services = snapshot.catalog.active_services().len();
        let bytes = lambda_body_size(&doc.body);
        tracing::error!(
            services,
            bytes,
            limit,
            "the catalog exceeds the Lambda response limit; not served"
        );
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CatalogTooLarge",
            format!(
                "The catalog ({services} services, {bytes} bytes as a Lambda response) exceeds \
                 the {limit}-byte response limit of AWS Lambda behind API Gateway. Serve it with \
                 `cloudify-osb serve`, or offer fewer blueprints (--catalog opt-in)."
            ),
        ));
    } else {
        // The snapshot's bytes themselves (no copy of a catalog that may be megabytes).
        let mut r = Body::from(Bytes::from_owner(doc.body.clone())).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    if let Some(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lambda_size_counts_the_escaping_of_the_body_as_a_json_string() {
        let body = br#"{"a":"x\"y"}"#;
        let as_string = serde_json::to_string(std::str::from_utf8(body).unwrap()).unwrap();
        assert_eq!(lambda_body_size(body), as_string.len());
        assert!(fits(body, ENVELOPE_BYTES + 100));
        assert!(!fits(body, ENVELOPE_BYTES + 10));
    }

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("\"x\", W/\"abc\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abd\"", "\"abc\""));
    }
}
