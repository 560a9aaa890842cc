//! Route `catalog` (`GET /v2/catalog`, spec "Catalog Management"): the snapshot's
//! pre-serialised body with a strong `ETag`; `If-None-Match` with a matching tag (or `*`)
//! answers 304 without a body. Must not import adapter crates.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::domain::snapshot::CatalogSnapshot;

/// Whether an `If-None-Match` header value matches `etag` (weak comparison, RFC 9110 §13.1.2).
pub fn none_match(if_none_match: &str, etag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let want = bare(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == want)
}

/// The catalog answer for `snapshot` given the request's headers.
pub fn respond(snapshot: &CatalogSnapshot, headers: &HeaderMap) -> Response {
    let doc = snapshot.document();
    let etag = HeaderValue::from_str(&doc.etag).ok();
    let matched = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| none_match(v, &doc.etag));
    let mut response = if matched {
        StatusCode::NOT_MODIFIED.into_response()
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
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        assert!(none_match("\"abc\"", "\"abc\""));
        assert!(none_match("\"x\", W/\"abc\"", "\"abc\""));
        assert!(none_match("*", "\"abc\""));
        assert!(!none_match("\"abd\"", "\"abc\""));
    }
}
