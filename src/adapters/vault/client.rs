//! A small Vault HTTP client: one reqwest client (built once, with timeouts), the broker's
//! token and its lifecycle, and the mapping of Vault's answers to [`BinderError`]. Plain
//! reqwest rather than vaultrs: the binder needs the lease envelope, `sys/leases/*`, a raw
//! health probe and a MySQL connection body, none of which vaultrs 0.8 offers, and what
//! remains is a few JSON calls.
//!
//! Token lifecycle ([`VaultAuth`] says how to get one):
//! - the first request logs in (AppRole, AWS IAM) or looks the static token up, to learn its
//!   TTL and whether it is renewable; nothing is sent at construction;
//! - past 2/3 of its TTL a renewable token is renewed with `auth/token/renew-self`; a token
//!   that cannot be renewed (or whose renewal is capped by its `max_ttl`) is replaced by a
//!   new login; while one request refreshes, the others go on with the still-valid token;
//! - a 403 on a logged-in token (revoked, expired early) triggers one new login and one retry
//!   of the request; concurrent 403s on the same token share that login;
//! - one login or renewal at a time.
//!
//! Never puts a token, secret ID, password or response body into an error or a log line.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::auth::VaultAuth;
use crate::domain::error::BinderError;

/// Longest Vault error text passed on.
const MAX_TEXT: usize = 240;

/// Paths that take no token.
const UNAUTHENTICATED: &[&str] = &["sys/health"];

/// After a failed renewal of a static token, the next attempt waits this long.
const RENEW_RETRY: Duration = Duration::from_secs(10);

/// How long the keep-alive task sleeps at most between two looks at the token.
const KEEPALIVE_TICK: Duration = Duration::from_secs(60);

/// One Vault server and the broker's token there. A background task (started with the first
/// token that has a TTL, ended when the client is dropped) renews the token when due even if
/// no request comes, so that an idle `serve` does not let it expire.
pub struct VaultClient {
    inner: Arc<Inner>,
}

struct Inner {
    me: Weak<Inner>,
    keepalive: AtomicBool,
    http: reqwest::Client,
    base: String,
    auth: VaultAuth,
    session: Mutex<Option<Arc<Session>>>,
    /// Held while logging in or renewing: one at a time.
    refresh: tokio::sync::Mutex<()>,
    next_session: AtomicU64,
    logins: AtomicU64,
    renewals: AtomicU64,
    denial_relogins: AtomicU64,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("base", &self.inner.base)
            .field("auth", &self.inner.auth.method())
            .finish_non_exhaustive()
    }
}

/// How often the client logged in and renewed (for tests and diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AuthStats {
    /// Logins (AppRole, IAM) or look-ups of the static token.
    pub logins: u64,
    /// Successful `renew-self` calls.
    pub renewals: u64,
    /// New logins after Vault denied the token (403).
    pub relogins_after_denial: u64,
}

/// A token in use and when to refresh it.
struct Session {
    id: u64,
    token: SecretString,
    /// When to renew or log in again; `None`: never (no TTL, or nothing can be done).
    refresh_at: Option<Instant>,
    /// When the token expires; `None`: no TTL.
    expires_at: Option<Instant>,
    renewable: bool,
    /// The TTL granted at login: a renewal far below it was capped by `max_ttl`.
    login_ttl: Duration,
}

impl Session {
    /// `ttl` zero means no expiry (root tokens).
    fn new(id: u64, token: SecretString, ttl: Duration, renewable: bool, can_login: bool) -> Self {
        let now = Instant::now();
        let (refresh_at, expires_at) = if ttl.is_zero() {
            (None, None)
        } else if renewable || can_login {
            (Some(now + ttl * 2 / 3), Some(now + ttl))
        } else {
            (None, Some(now + ttl))
        };
        Self {
            id,
            token,
            refresh_at,
            expires_at,
            renewable,
            login_ttl: ttl,
        }
    }

    /// Before the refresh point.
    fn fresh(&self, now: Instant) -> bool {
        self.refresh_at.is_none_or(|t| now < t)
    }

    /// Not expired (with a second's margin for the request in flight).
    fn usable(&self, now: Instant) -> bool {
        self.expires_at
            .is_none_or(|t| now + Duration::from_secs(1) < t)
    }

    fn header(&self) -> Result<HeaderValue, BinderError> {
        let mut value = HeaderValue::from_str(self.token.expose_secret())
            .map_err(|_| BinderError::Unavailable("Vault issued a malformed token".into()))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// The `auth` block of a login or renewal answer: token, TTL, renewable.
fn auth_block(reply: &Reply) -> Option<(Option<SecretString>, Duration, bool)> {
    let auth = reply.body.as_ref()?.get("auth")?;
    let token = auth
        .get("client_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .map(|t| SecretString::from(t.to_owned()));
    let ttl = auth.get("lease_duration").and_then(Value::as_u64)?;
    let renewable = auth
        .get("renewable")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Some((token, Duration::from_secs(ttl), renewable))
}

/// An answer: status and the JSON body (None when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    pub fn is_not_found(&self) -> bool {
        self.status == StatusCode::NOT_FOUND
    }

    /// The envelope's `data`, or `Value::Null`.
    pub fn data(&self) -> &Value {
        self.body
            .as_ref()
            .and_then(|b| b.get("data"))
            .unwrap_or(&Value::Null)
    }

    /// Vault's `errors`, joined, shortened, with secrets scrubbed.
    pub fn error_text(&self, secrets: &[&str]) -> String {
        let mut text = self
            .body
            .as_ref()
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_array)
            .map(|errs| {
                errs.iter()
                    .filter_map(Value::as_str)
                    .map(|e| {
                        e.replace("1 error occurred:", "")
                            .split_whitespace()
                            .filter(|w| *w != "*")
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            text = text.replace(s, "<redacted>");
        }
        if text.len() > MAX_TEXT {
            let mut cut = MAX_TEXT;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    }

    /// Success, or the error this status stands for. `what` names the operation (no
    /// secrets), e.g. `write database/roles/osb-1`.
    pub fn check(self, what: &str, secrets: &[&str]) -> Result<Reply, BinderError> {
        if self.is_success() {
            return Ok(self);
        }
        Err(self.to_error(what, secrets))
    }

    /// The error this (failed) answer stands for.
    pub fn to_error(&self, what: &str, secrets: &[&str]) -> BinderError {
        let code = self.status.as_u16();
        let text = self.error_text(secrets);
        let detail = if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        };
        match code {
            503 => BinderError::Unavailable(format!(
                "Vault is sealed or unavailable (503) at {what}{detail}"
            )),
            403 => BinderError::Rejected(format!(
                "Vault denied {what} (403: the broker's token is invalid or lacks a policy)"
            )),
            429 | 500.. => {
                BinderError::Unavailable(format!("Vault answered {code} at {what}{detail}"))
            }
            _ => BinderError::Rejected(format!("Vault refused {what} ({code}){detail}")),
        }
    }
}

impl VaultClient {
    /// Builds the HTTP client once. `addr` is `scheme://host[:port]`. Makes no request.
    pub fn new(addr: &str, auth: VaultAuth, timeout: Duration) -> Result<Self, BinderError> {
        let addr = addr.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(addr)
            .map_err(|_| BinderError::Config("VAULT_ADDR is not a URL".into()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(BinderError::Config(
                "VAULT_ADDR must be http(s)://host[:port]".into(),
            ));
        }
        auth.validate()?;
        let mut headers = HeaderMap::new();
        headers.insert("X-Vault-Request", HeaderValue::from_static("true"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|_| BinderError::Config("cannot build the Vault HTTP client".into()))?;
        let inner = Arc::new_cyclic(|me| Inner {
            me: me.clone(),
            keepalive: AtomicBool::new(false),
            http,
            base: format!("{addr}/v1/"),
            auth,
            session: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            next_session: AtomicU64::new(1),
            logins: AtomicU64::new(0),
            renewals: AtomicU64::new(0),
            denial_relogins: AtomicU64::new(0),
        });
        Ok(Self { inner })
    }

    /// Logins and renewals so far.
    pub fn auth_stats(&self) -> AuthStats {
        let s = &self.inner;
        AuthStats {
            logins: s.logins.load(Ordering::Relaxed),
            renewals: s.renewals.load(Ordering::Relaxed),
            relogins_after_denial: s.denial_relogins.load(Ordering::Relaxed),
        }
    }

    /// One request to `/v1/<path>` with the broker's token (logging in or renewing first when
    /// due; once more after a 403 on a logged-in token). Transport failures are `Unavailable`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, BinderError> {
        self.inner.call(method, path, body).await
    }

    pub async fn get(&self, path: &str) -> Result<Reply, BinderError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply, BinderError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Reply, BinderError> {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// DELETE that treats "already gone" (404) as done.
    pub async fn delete(&self, path: &str) -> Result<(), BinderError> {
        let reply = self.call(Method::DELETE, path, None).await?;
        if reply.is_not_found() {
            return Ok(());
        }
        reply.check(&format!("delete {path}"), &[]).map(|_| ())
    }

    /// LIST (`?list=true`): the keys, empty when nothing is there (404).
    pub async fn list(&self, path: &str) -> Result<Vec<String>, BinderError> {
        let reply = self.get(&format!("{path}?list=true")).await?;
        if reply.is_not_found() {
            return Ok(Vec::new());
        }
        let reply = reply.check(&format!("list {path}"), &[])?;
        Ok(reply
            .data()
            .get("keys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default())
    }
}

impl Inner {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, BinderError> {
        let bare = path.split('?').next().unwrap_or(path);
        if UNAUTHENTICATED.contains(&bare) {
            return self.send(None, method, path, body).await;
        }
        let session = self.session().await?;
        let reply = self
            .send(Some(&session), method.clone(), path, body)
            .await?;
        if reply.status != StatusCode::FORBIDDEN || !self.auth.can_login() {
            return Ok(reply);
        }
        match self.relogin_after_denial(&session).await? {
            Some(fresh) => self.send(Some(&fresh), method, path, body).await,
            None => Ok(reply),
        }
    }

    /// The HTTP exchange itself, with `session`'s token when given.
    async fn send(
        &self,
        session: Option<&Session>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, BinderError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(s) = session {
            req = req.header("X-Vault-Token", s.header()?);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "unreachable"
            } else {
                "failed"
            };
            BinderError::Unavailable(format!("Vault {kind} at {method} {path}"))
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|_| {
            BinderError::Unavailable(format!("Vault's answer to {method} {path} was cut off"))
        })?;
        let body = if bytes.is_empty() {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        Ok(Reply { status, body })
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn install(&self, session: Session) -> Arc<Session> {
        let session = Arc::new(session);
        *self
            .session
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(session.clone());
        if session.refresh_at.is_some() {
            self.start_keepalive();
        }
        session
    }

    /// Starts the keep-alive task once: it refreshes the token when due, between requests
    /// too, and ends when the client is dropped. Failures wait [`RENEW_RETRY`].
    fn start_keepalive(&self) {
        if self.keepalive.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.keepalive.store(false, Ordering::Release);
            return;
        };
        let me = self.me.clone();
        runtime.spawn(async move {
            loop {
                let wait = {
                    let Some(inner) = me.upgrade() else { return };
                    inner
                        .current()
                        .and_then(|s| s.refresh_at)
                        .map(|t| t.saturating_duration_since(Instant::now()))
                        .unwrap_or(KEEPALIVE_TICK)
                        .min(KEEPALIVE_TICK)
                };
                tokio::time::sleep(wait).await;
                let Some(inner) = me.upgrade() else { return };
                let due = inner
                    .current()
                    .and_then(|s| s.refresh_at)
                    .is_some_and(|t| Instant::now() >= t);
                if !due {
                    continue;
                }
                if let Err(e) = inner.session().await {
                    tracing::warn!(error = %e, "keeping the Vault token alive failed; retrying");
                    drop(inner);
                    tokio::time::sleep(RENEW_RETRY).await;
                }
            }
        });
    }

    fn new_session(&self, token: SecretString, ttl: Duration, renewable: bool) -> Session {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        Session::new(id, token, ttl, renewable, self.auth.can_login())
    }

    /// The token to use now: the current one while fresh; past its refresh point, renewed or
    /// replaced by one caller while the others use it as long as it is valid.
    async fn session(&self) -> Result<Arc<Session>, BinderError> {
        if let Some(s) = self.current() {
            let now = Instant::now();
            if s.fresh(now) {
                return Ok(s);
            }
            if s.usable(now) {
                let Ok(guard) = self.refresh.try_lock() else {
                    return Ok(s);
                };
                let out = self.refresh_locked().await;
                drop(guard);
                return out;
            }
        }
        let _guard = self.refresh.lock().await;
        self.refresh_locked().await
    }

    /// With the refresh lock held: the current token if another caller already refreshed it,
    /// else a renewal or a new login.
    async fn refresh_locked(&self) -> Result<Arc<Session>, BinderError> {
        let now = Instant::now();
        let Some(s) = self.current() else {
            return self.login().await;
        };
        if s.fresh(now) {
            return Ok(s);
        }
        // A static token is renewed even when it looks expired: Vault's answer decides.
        if s.renewable && (s.usable(now) || !self.auth.can_login()) {
            match self.renew(&s).await {
                Ok(renewed) => {
                    let capped = renewed.login_ttl < s.login_ttl / 2;
                    if capped && self.auth.can_login() {
                        tracing::info!(
                            method = self.auth.method(),
                            "the Vault token reached its max TTL; logging in again"
                        );
                        return self.login().await;
                    }
                    let renewed = Session {
                        // Keep the TTL granted at login, to notice the cap later.
                        login_ttl: s.login_ttl,
                        ..renewed
                    };
                    return Ok(self.install(renewed));
                }
                Err(e) if self.auth.can_login() => {
                    tracing::warn!(error = %e, "renewing the Vault token failed; logging in again");
                    return self.login().await;
                }
                Err(e) => {
                    // Past its expiry nothing can save a static token: stop trying.
                    let retry = if s.usable(now) {
                        tracing::warn!(error = %e, "renewing the Vault token failed; retrying later");
                        Some(now + RENEW_RETRY)
                    } else {
                        tracing::error!(
                            error = %e,
                            "the Vault token (VAULT_TOKEN) expired and cannot be renewed; give the broker a new one"
                        );
                        None
                    };
                    return Ok(self.install(Session {
                        id: s.id,
                        token: s.token.clone(),
                        refresh_at: retry,
                        expires_at: s.expires_at,
                        renewable: s.renewable,
                        login_ttl: s.login_ttl,
                    }));
                }
            }
        }
        if self.auth.can_login() {
            return self.login().await;
        }
        // A static token that cannot be renewed: use it until Vault refuses it.
        Ok(s)
    }

    /// `auth/token/renew-self`: the renewed session (same token, new TTL).
    async fn renew(&self, s: &Session) -> Result<Session, BinderError> {
        let reply = self
            .send(
                Some(s),
                Method::POST,
                "auth/token/renew-self",
                Some(&json!({})),
            )
            .await?;
        if !reply.is_success() {
            return Err(reply.to_error("token renew-self", &[]));
        }
        let Some((_, ttl, renewable)) = auth_block(&reply) else {
            return Err(BinderError::Unavailable(
                "Vault's renew-self answer has no auth block".into(),
            ));
        };
        self.renewals.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(ttl_secs = ttl.as_secs(), "renewed the Vault token");
        let mut renewed = self.new_session(s.token.clone(), ttl, renewable);
        renewed.id = s.id;
        Ok(renewed)
    }

    /// Logs in (AppRole, IAM), or looks the static token up; installs the new session.
    async fn login(&self) -> Result<Arc<Session>, BinderError> {
        let method = self.auth.method();
        let Some(request) = self.auth.login_request().await? else {
            return self.look_up_static().await;
        };
        let reply = self
            .send(None, Method::POST, &request.path, Some(&request.body))
            .await?;
        drop(request);
        if !reply.is_success() {
            let text = reply.error_text(&self.auth.secrets());
            let code = reply.status.as_u16();
            let detail = if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            };
            tracing::error!(method, status = code, "Vault login failed");
            return Err(BinderError::Unavailable(format!(
                "the broker's Vault login ({method}) failed ({code}){detail}"
            )));
        }
        let Some((Some(token), ttl, renewable)) = auth_block(&reply) else {
            return Err(BinderError::Unavailable(format!(
                "Vault's {method} login answer has no token"
            )));
        };
        self.logins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            method,
            ttl_secs = ttl.as_secs(),
            renewable,
            "logged in to Vault"
        );
        Ok(self.install(self.new_session(token, ttl, renewable)))
    }

    /// The static token's TTL and renewability (`lookup-self`). A token that may not look
    /// itself up is used as it is, without renewal.
    async fn look_up_static(&self) -> Result<Arc<Session>, BinderError> {
        let VaultAuth::Token(token) = &self.auth else {
            return Err(BinderError::Config("no Vault token".into()));
        };
        let probe = self.new_session(token.clone(), Duration::ZERO, false);
        let reply = self
            .send(Some(&probe), Method::GET, "auth/token/lookup-self", None)
            .await?;
        self.logins.fetch_add(1, Ordering::Relaxed);
        if !reply.is_success() {
            if reply.status.is_server_error() {
                return Err(reply.to_error("token lookup", &[]));
            }
            tracing::warn!(
                status = reply.status.as_u16(),
                "cannot look up the Vault token; it is used without renewal"
            );
            return Ok(self.install(probe));
        }
        let data = reply.data();
        let ttl = data.get("ttl").and_then(Value::as_u64).unwrap_or(0);
        let renewable = data
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        tracing::debug!(ttl_secs = ttl, renewable, "looked up the Vault token");
        Ok(self.install(self.new_session(token.clone(), Duration::from_secs(ttl), renewable)))
    }

    /// After a 403 with `used`: a new login (once for all callers that saw the same token),
    /// or `None` when the token is alive and the denial is its policy's (Vault answers both
    /// with a bare "permission denied"; `lookup-self`, which the default policy allows, tells
    /// them apart, so a missing policy causes no login storm).
    async fn relogin_after_denial(
        &self,
        used: &Session,
    ) -> Result<Option<Arc<Session>>, BinderError> {
        let _guard = self.refresh.lock().await;
        if let Some(current) = self.current().filter(|c| c.id != used.id) {
            return Ok(Some(current));
        }
        let probe = self
            .send(Some(used), Method::GET, "auth/token/lookup-self", None)
            .await?;
        if probe.is_success() {
            return Ok(None);
        }
        self.denial_relogins.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            method = self.auth.method(),
            "Vault denied the broker's token; logging in again"
        );
        self.login().await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(code: u16, body: Value) -> Reply {
        Reply {
            status: StatusCode::from_u16(code).unwrap(),
            body: Some(body),
        }
    }

    #[test]
    fn a_sealed_vault_is_unavailable() {
        let err = reply(503, json!({"errors": ["Vault is sealed"]})).to_error("read x", &[]);
        assert!(matches!(err, BinderError::Unavailable(_)), "{err}");
    }

    #[test]
    fn client_errors_are_rejections_with_vaults_text_and_no_secret() {
        let err = reply(
            400,
            json!({"errors": ["1 error occurred:\n\t* error creating database object: access denied for hunter22\n\n"]}),
        )
        .to_error("write database/config/osb-1", &["hunter22"]);
        let text = err.to_string();
        assert!(matches!(err, BinderError::Rejected(_)));
        assert!(text.contains("error creating database object"), "{text}");
        assert!(!text.contains("hunter22"), "{text}");
        assert!(!text.contains("1 error occurred"), "{text}");
    }

    #[test]
    fn long_vault_texts_are_shortened() {
        let long = "x".repeat(2000);
        let text = reply(400, json!({"errors": [long]})).error_text(&[]);
        assert!(text.chars().count() <= MAX_TEXT + 1);
    }

    #[test]
    fn sessions_refresh_two_thirds_into_their_ttl_when_something_can_be_done() {
        let t = || SecretString::from("t");
        let now = Instant::now();
        let s = Session::new(1, t(), Duration::from_secs(30), true, false);
        let refresh = s.refresh_at.unwrap() - now;
        assert!(refresh >= Duration::from_secs(20) && refresh < Duration::from_secs(21));
        assert!(s.fresh(now) && !s.fresh(now + Duration::from_secs(21)));
        assert!(s.usable(now + Duration::from_secs(28)));
        assert!(!s.usable(now + Duration::from_secs(30)));
        // A login method refreshes even a non-renewable token (by logging in again).
        let s = Session::new(2, t(), Duration::from_secs(30), false, true);
        assert!(s.refresh_at.is_some());
        // A static token that cannot be renewed, or one without TTL: nothing to do.
        let s = Session::new(3, t(), Duration::from_secs(30), false, false);
        assert!(s.refresh_at.is_none() && s.expires_at.is_some());
        let s = Session::new(4, t(), Duration::ZERO, true, true);
        assert!(s.fresh(now + Duration::from_secs(1 << 20)) && s.usable(now));
    }

    #[test]
    fn a_bad_address_is_a_config_error() {
        for addr in ["not a url", "ftp://x", "http://"] {
            let token = VaultAuth::from(SecretString::from("t"));
            assert!(
                matches!(
                    VaultClient::new(addr, token, Duration::from_secs(1)),
                    Err(BinderError::Config(_))
                ),
                "{addr}"
            );
        }
    }
}
