//! The one HTTP client to the manager: built once (TLS, timeouts, `Tenant` and auth headers
//! as sensitive default headers), URL building with escaped path segments, and bounded
//! retries with exponential backoff for idempotent calls only. Non-idempotent calls (PUT
//! deployment, POST executions) are sent once: after an ambiguous failure the caller
//! re-checks Cloudify's state instead of sending them again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::ExposeSecret;
use serde::Serialize;

use super::config::{CaCert, CloudifyConfig, CloudifyCredentials, RetryPolicy, api_base};
use crate::domain::error::OrchestratorError;

/// An answer with any status; the caller decides what a status means.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

/// Whether a call may be sent again after a connection error, timeout or 5xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    Idempotent,
    Once,
}

pub(super) struct Transport {
    client: reqwest::Client,
    base: Url,
    retry: RetryPolicy,
    request_timeout: Duration,
    sent: AtomicU64,
}

fn config_error(msg: impl Into<String>) -> OrchestratorError {
    OrchestratorError::Unavailable(msg.into())
}

fn default_headers(config: &CloudifyConfig) -> Result<HeaderMap, OrchestratorError> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let tenant = HeaderValue::from_str(&config.tenant)
        .map_err(|_| config_error("the Cloudify tenant name is not a valid header value"))?;
    headers.insert(HeaderName::from_static("tenant"), tenant);
    match &config.credentials {
        CloudifyCredentials::None => {}
        CloudifyCredentials::Basic { username, password } => {
            use base64::Engine as _;
            let raw = format!("{username}:{}", password.expose_secret());
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
            let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
                .map_err(|_| config_error("the Cloudify username is not usable in a header"))?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        CloudifyCredentials::Token(token) => {
            let mut v = HeaderValue::from_str(token.expose_secret())
                .map_err(|_| config_error("the Cloudify token is not a valid header value"))?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static("authentication-token"), v);
        }
    }
    Ok(headers)
}

/// A reqwest error for logs: its kind and source chain (URLs carry no credentials here).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "error reading the body"
    } else {
        "request error"
    };
    let mut out = format!("Cloudify {kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Delay before retry number `retry` (1-based), with up to 25 % jitter.
fn backoff(policy: &RetryPolicy, retry: u32) -> Duration {
    let exp = policy
        .initial_backoff
        .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
    let base = exp.min(policy.max_backoff);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = base.mul_f64(f64::from(nanos % 1000) / 4000.0);
    base + jitter
}

/// The shortest time worth starting an HTTP exchange with.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

impl Transport {
    pub fn new(config: &CloudifyConfig) -> Result<Self, OrchestratorError> {
        let base = api_base(&config.url).map_err(config_error)?;
        let mut builder = reqwest::Client::builder()
            .default_headers(default_headers(config)?)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("cloudify-osb/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(50));
        if let Some(ca) = &config.ca_cert {
            let pem = match ca {
                CaCert::Pem(text) => text.clone().into_bytes(),
                CaCert::File(path) => std::fs::read(path).map_err(|e| {
                    config_error(format!(
                        "cannot read the Cloudify CA certificate {}: {e}",
                        path.display()
                    ))
                })?,
            };
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| config_error(format!("invalid Cloudify CA certificate: {e}")))?;
            builder = builder.tls_certs_merge(certs);
        }
        if config.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|e| config_error(format!("cannot build the Cloudify client: {e}")))?;
        Ok(Self {
            client,
            base,
            retry: config.retry,
            request_timeout: config.request_timeout,
            sent: AtomicU64::new(0),
        })
    }

    /// The API base URL (`…/api/v3.1`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// HTTP requests sent so far (each retry counts).
    pub fn round_trips(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// `base/seg1/seg2…?k=v…` with each segment escaped.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty();
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends a request; retries idempotent ones on connection errors, timeouts and 5xx,
    /// within the policy's attempts and time budget. An HTTP answer of any status is a
    /// [`Reply`]; only transport failures are errors (`Unavailable`).
    pub async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        url: Url,
        body: Option<&B>,
        retry: Retry,
    ) -> Result<Reply, OrchestratorError> {
        let started = Instant::now();
        // The policy's budget, cut to what is left of the OSB request being served.
        let budget = match crate::deadline::remaining() {
            Some(left) => self.retry.total_budget.min(left),
            None => self.retry.total_budget,
        };
        let attempts = match retry {
            Retry::Idempotent => self.retry.max_attempts.max(1),
            Retry::Once => 1,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = budget.saturating_sub(started.elapsed());
            if remaining < MIN_ATTEMPT {
                tracing::warn!(
                    %method, path = url.path(), attempt,
                    "no time left for a Cloudify call within the request's deadline"
                );
                return Err(OrchestratorError::Unavailable(format!(
                    "{method} {}: no time left within the request's deadline",
                    url.path()
                )));
            }
            let timeout = self.request_timeout.min(remaining);
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .timeout(timeout);
            if let Some(b) = body {
                request = request.json(b);
            }
            self.sent.fetch_add(1, Ordering::Relaxed);
            let t0 = Instant::now();
            let outcome = match request.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(body) => Ok(Reply {
                            status,
                            body: body.into(),
                        }),
                        Err(e) => Err(describe(&e)),
                    }
                }
                Err(e) => Err(describe(&e)),
            };
            let ms = t0.elapsed().as_millis() as u64;
            let may_retry = attempt < attempts
                && started.elapsed() + backoff(&self.retry, attempt) + MIN_ATTEMPT < budget;
            match outcome {
                Ok(reply) if retryable_status(reply.status) && may_retry => {
                    tracing::warn!(
                        %method, path = url.path(), status = reply.status.as_u16(), attempt, ms,
                        "Cloudify answered a server error; retrying"
                    );
                }
                Ok(reply) => {
                    tracing::debug!(
                        %method, path = url.path(), status = reply.status.as_u16(), attempt, ms,
                        "Cloudify call"
                    );
                    return Ok(reply);
                }
                Err(detail) if may_retry => {
                    tracing::warn!(
                        %method, path = url.path(), attempt, ms, error = %detail,
                        "Cloudify call failed; retrying"
                    );
                }
                Err(detail) => {
                    tracing::warn!(
                        %method, path = url.path(), attempt, ms, error = %detail,
                        "Cloudify call failed"
                    );
                    return Err(OrchestratorError::Unavailable(format!(
                        "{method} {}: {detail}",
                        url.path()
                    )));
                }
            }
            tokio::time::sleep(backoff(&self.retry, attempt)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            total_budget: Duration::from_secs(10),
        };
        let d1 = backoff(&p, 1);
        let d3 = backoff(&p, 3);
        let d9 = backoff(&p, 9);
        assert!(
            d1 >= Duration::from_millis(100) && d1 < Duration::from_millis(126),
            "{d1:?}"
        );
        assert!(d3 >= Duration::from_millis(400), "{d3:?}");
        assert!(d9 <= Duration::from_millis(625), "{d9:?}");
    }

    #[test]
    fn urls_escape_segments_and_keep_the_prefix() {
        let t = Transport::new(&CloudifyConfig::new("http://127.0.0.1:9/")).unwrap();
        let u = t.url(&["deployments", "osb-a b/c"], &[("_include", "id,status")]);
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/api/v3.1/deployments/osb-a%20b%2Fc?_include=id%2Cstatus"
        );
    }

    #[test]
    fn the_tenant_and_credentials_are_default_headers_marked_sensitive() {
        let mut c = CloudifyConfig::new("http://127.0.0.1:9");
        c.tenant = "t1".into();
        c.credentials = CloudifyCredentials::Basic {
            username: "admin".into(),
            password: secrecy::SecretString::from("admin"),
        };
        let h = default_headers(&c).unwrap();
        assert_eq!(h["tenant"], "t1");
        assert_eq!(h[AUTHORIZATION], "Basic YWRtaW46YWRtaW4=");
        assert!(h[AUTHORIZATION].is_sensitive());
        c.credentials = CloudifyCredentials::Token(secrecy::SecretString::from("ctok-1-x"));
        let h = default_headers(&c).unwrap();
        assert!(h["authentication-token"].is_sensitive());
        assert!(!h.contains_key(AUTHORIZATION));
    }
}
