//! Request checks and parsing of the OSB pipeline (DESIGN.md §3b, osb.md §1–2): the version
//! header, the query, path IDs and JSON bodies, each failing with an OSB JSON error instead
//! of axum's text/plain rejections. Must not import adapter crates.

use axum::body::Body;
use axum::extract::{FromRequestParts, Query, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// The largest request body accepted (413 beyond).
pub const BODY_LIMIT: usize = 1024 * 1024;
/// The oldest accepted minor version of the 2.x API.
pub const MIN_MINOR: u32 = 13;
/// `X-Broker-API-Version` (osb.md §2.1).
pub const API_VERSION: &str = "x-broker-api-version";
/// `X-Broker-API-Request-Identity`, echoed in every response (osb.md §2).
pub const REQUEST_IDENTITY: &str = "x-broker-api-request-identity";
/// `X-Broker-API-Originating-Identity` (osb.md §2.2).
pub const ORIGINATING_IDENTITY: &str = "x-broker-api-originating-identity";

/// Checks `X-Broker-API-Version`: any `2.N` with `N ≥ min_minor` (412 otherwise).
pub fn check_version(headers: &HeaderMap, min_minor: u32) -> Result<u32, ApiError> {
    let refuse = || {
        ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            format!("X-Broker-API-Version 2.{min_minor} or later (2.x) is required."),
        )
    };
    let value = headers
        .get(API_VERSION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(refuse)?;
    let (major, minor) = value.trim().split_once('.').ok_or_else(refuse)?;
    let minor: u32 = minor.parse().map_err(|_| refuse())?;
    if major != "2" || minor < min_minor {
        return Err(refuse());
    }
    Ok(minor)
}

/// The query as decoded pairs (400 when it cannot be decoded).
#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// Decodes the request's query.
    pub fn parse(parts: &Parts) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|Query(pairs)| Self(pairs))
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `accepts_incomplete`, strictly: only `true` is true (osb.md §6.1).
    pub fn accepts_incomplete(&self) -> bool {
        self.get("accepts_incomplete") == Some("true")
    }

    /// A required parameter, parsed (400 when missing or invalid).
    pub fn required<T, E: std::fmt::Display>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<T, ApiError> {
        let raw = self
            .get(key)
            .ok_or_else(|| ApiError::bad_request(format!("query parameter {key} is required")))?;
        parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
    }

    /// An optional parameter, parsed when present (400 when invalid).
    pub fn optional<T, E: std::fmt::Display>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ApiError> {
        self.get(key)
            .map(|raw| parse(raw).map_err(|e| ApiError::bad_request(e.to_string())))
            .transpose()
    }
}

/// A path parameter, parsed with the ID's validating `parse` (400 when invalid).
pub async fn path_id<T, E: std::fmt::Display>(
    parts: &mut Parts,
    key: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, ApiError> {
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid path: {e}")))?;
    let raw = params
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .ok_or_else(|| ApiError::bad_request(format!("path parameter {key} is missing")))?;
    parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// Reads a JSON object body into `T`: 415 for another declared content type, 413 beyond
/// [`BODY_LIMIT`], 400 for anything malformed or missing.
pub async fn json_body<T: DeserializeOwned>(parts: &Parts, body: Body) -> Result<T, ApiError> {
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        let mime = ct
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "The request body must be application/json.",
            ));
        }
    }
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
            format!("The request body must be at most {BODY_LIMIT} bytes."),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|e| {
        if e.into_inner().is::<http_body_util::LengthLimitError>() {
            too_large()
        } else {
            ApiError::bad_request("the request body could not be read")
        }
    })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("a JSON object body is required"));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

/// The platform and user of `X-Broker-API-Originating-Identity`, parsed leniently (osb.md
/// §2.2): never fails, only says less.
pub fn originating_identity(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(value) = headers
        .get(ORIGINATING_IDENTITY)
        .and_then(|v| v.to_str().ok())
    else {
        return (None, None);
    };
    let mut it = value.trim().splitn(2, ' ');
    let platform = it.next().filter(|p| !p.is_empty()).map(str::to_owned);
    let user = it
        .next()
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<Value>(&json).ok())
        .and_then(|v| {
            ["username", "user_id", "user", "name"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
        });
    (platform, user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn versions_from_2_13_on_are_accepted() {
        assert_eq!(check_version(&with(API_VERSION, "2.13"), 13).unwrap(), 13);
        assert_eq!(check_version(&with(API_VERSION, "2.17"), 14).unwrap(), 17);
        for bad in ["2.12", "3.0", "2", "x.y", "", "2.x", "1.13"] {
            let e = check_version(&with(API_VERSION, bad), 13).unwrap_err();
            assert_eq!(e.status, StatusCode::PRECONDITION_FAILED, "{bad}");
        }
        assert!(check_version(&with(API_VERSION, "2.13"), 14).is_err());
        assert!(check_version(&HeaderMap::new(), 13).is_err());
    }

    #[test]
    fn originating_identity_is_parsed_leniently() {
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(r#"{"username":"alice","uid":"1","groups":[]}"#);
        let (p, u) =
            originating_identity(&with(ORIGINATING_IDENTITY, &format!("kubernetes {b64}")));
        assert_eq!(p.as_deref(), Some("kubernetes"));
        assert_eq!(u.as_deref(), Some("alice"));
        let (p, u) = originating_identity(&with(ORIGINATING_IDENTITY, "cloudfoundry !!!"));
        assert_eq!(p.as_deref(), Some("cloudfoundry"));
        assert_eq!(u, None);
    }
}
