//! Configuration of the Cloudify adapter (DESIGN.md §3a: `CLOUDIFY_URL`, `CLOUDIFY_TENANT`,
//! `CLOUDIFY_USERNAME` / `CLOUDIFY_PASSWORD` / `CLOUDIFY_TOKEN`, `CLOUDIFY_CA_CERT`,
//! `CLOUDIFY_INSECURE`) plus timeouts and the retry policy. Secrets stay in
//! [`SecretString`]s and never reach `Debug` output or logs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use secrecy::SecretString;

/// The API prefix the adapter appends to the manager URL.
pub const API_PREFIX: &str = "/api/v3.1";

/// How the adapter authenticates to the manager.
#[derive(Clone, Default)]
pub enum CloudifyCredentials {
    /// No credentials (only useful against an open test manager).
    #[default]
    None,
    /// `Authorization: Basic …`.
    Basic {
        username: String,
        password: SecretString,
    },
    /// `Authentication-Token: …` (a session token before 6.4, an API token from 6.4).
    Token(SecretString),
}

impl fmt::Debug for CloudifyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"[redacted]")
                .finish(),
            Self::Token(_) => f.write_str("Token([redacted])"),
        }
    }
}

/// Where the adapter finds an extra CA certificate for the manager's TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaCert {
    /// A PEM file on disk.
    File(PathBuf),
    /// PEM text given inline (e.g. from a secret).
    Pem(String),
}

impl CaCert {
    /// Reads `CLOUDIFY_CA_CERT`: PEM text when it holds a `-----BEGIN` block, a path otherwise.
    pub fn from_setting(value: &str) -> Self {
        if value.contains("-----BEGIN") {
            Self::Pem(value.to_owned())
        } else {
            Self::File(PathBuf::from(value))
        }
    }
}

/// Bounded retries with exponential backoff, for idempotent calls only (GET, DELETE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Upper bound of one delay.
    pub max_backoff: Duration,
    /// No new attempt starts after this much time since the first one, and no attempt runs
    /// past it: a call never takes much longer than this (API Gateway stops at 30 s).
    pub total_budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            total_budget: Duration::from_secs(25),
        }
    }
}

/// Everything the adapter needs to talk to one manager and tenant.
#[derive(Debug, Clone)]
pub struct CloudifyConfig {
    /// `scheme://host[:port]` of the manager; a trailing `/api/v3.1` is tolerated.
    pub url: String,
    /// The tenant sent in the `Tenant` header (default `default_tenant`).
    pub tenant: String,
    pub credentials: CloudifyCredentials,
    /// An extra trusted CA certificate (added to the system's roots).
    pub ca_cert: Option<CaCert>,
    /// Accept any TLS certificate (test managers only).
    pub insecure: bool,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP exchange.
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// `_size` of one blueprint page during catalog sync (`plan` is large; 4.x refuses > 1000).
    pub page_size: u32,
}

/// The default tenant of every manager.
pub const DEFAULT_TENANT: &str = "default_tenant";

impl CloudifyConfig {
    /// A configuration with the defaults: tenant `default_tenant`, no credentials, connect
    /// timeout 5 s, request timeout 20 s, 4 attempts for idempotent calls, pages of 100.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tenant: DEFAULT_TENANT.to_owned(),
            credentials: CloudifyCredentials::None,
            ca_cert: None,
            insecure: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            retry: RetryPolicy::default(),
            page_size: 100,
        }
    }

    /// The API base URL: the manager URL with `/api/v3.1` appended (once).
    pub fn api_base(&self) -> Result<Url, String> {
        api_base(&self.url)
    }
}

/// Normalises `scheme://host[:port][/prefix][/api/v3.1][/]` to `…[/prefix]/api/v3.1`.
pub(super) fn api_base(url: &str) -> Result<Url, String> {
    let trimmed = url.trim();
    let mut parsed =
        Url::parse(trimmed).map_err(|e| format!("invalid Cloudify URL {trimmed:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "invalid Cloudify URL {trimmed:?}: the scheme must be http or https"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("invalid Cloudify URL {trimmed:?}: no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "invalid Cloudify URL: put credentials in CLOUDIFY_USERNAME/CLOUDIFY_PASSWORD, not in the URL"
                .to_owned(),
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "invalid Cloudify URL {trimmed:?}: no query or fragment allowed"
        ));
    }
    let mut path = parsed.path().trim_end_matches('/').to_owned();
    if let Some(stripped) = path.strip_suffix(API_PREFIX) {
        path = stripped.to_owned();
    }
    path.push_str(API_PREFIX);
    parsed.set_path(&path);
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn the_api_prefix_is_appended_once() {
        for (given, want) in [
            ("http://cfy:8080", "http://cfy:8080/api/v3.1"),
            ("http://cfy:8080/", "http://cfy:8080/api/v3.1"),
            ("https://cfy", "https://cfy/api/v3.1"),
            ("https://cfy/api/v3.1", "https://cfy/api/v3.1"),
            ("https://cfy/api/v3.1/", "https://cfy/api/v3.1"),
            (
                "https://gw.example/cloudify",
                "https://gw.example/cloudify/api/v3.1",
            ),
            (" http://127.0.0.1:1234 ", "http://127.0.0.1:1234/api/v3.1"),
        ] {
            assert_eq!(api_base(given).unwrap().as_str(), want, "{given}");
        }
    }

    #[test]
    fn unusable_urls_are_refused_with_a_reason() {
        for bad in [
            "cfy:8080",
            "ftp://cfy",
            "http://",
            "http://admin:secret@cfy",
            "http://cfy?x=1",
            "",
        ] {
            let e = api_base(bad).unwrap_err();
            assert!(e.contains("Cloudify URL"), "{bad}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn credentials_are_redacted_in_debug_output() {
        let c = CloudifyCredentials::Basic {
            username: "admin".into(),
            password: SecretString::from("hunter2"),
        };
        let shown = format!("{c:?}");
        assert!(
            shown.contains("admin") && !shown.contains("hunter2"),
            "{shown}"
        );
        let t = CloudifyCredentials::Token(SecretString::from("ctok-1-abc"));
        assert!(!format!("{t:?}").contains("ctok"));
    }

    #[test]
    fn a_ca_setting_is_pem_text_or_a_path() {
        assert_eq!(
            CaCert::from_setting("/etc/cfy/ca.pem"),
            CaCert::File("/etc/cfy/ca.pem".into())
        );
        assert!(matches!(
            CaCert::from_setting("-----BEGIN CERTIFICATE-----\nMII…"),
            CaCert::Pem(_)
        ));
    }
}
