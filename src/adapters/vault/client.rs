//! A small Vault HTTP client: one reqwest client (built once, with timeouts), token auth,
//! and the mapping of Vault's answers to [`BinderError`]. Plain reqwest rather than vaultrs:
//! the binder needs the lease envelope, `sys/leases/*`, a raw health probe and a MySQL
//! connection body, none of which vaultrs 0.8 offers, and what remains is a few JSON calls.
//! Never puts a token, password or response body into an error or a log line.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::domain::error::BinderError;

/// Longest Vault error text passed on.
const MAX_TEXT: usize = 240;

/// One Vault server, one token.
pub struct VaultClient {
    http: reqwest::Client,
    base: String,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
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
    /// Builds the HTTP client once. `addr` is `scheme://host[:port]`.
    pub fn new(addr: &str, token: &SecretString, timeout: Duration) -> Result<Self, BinderError> {
        let addr = addr.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(addr)
            .map_err(|_| BinderError::Config("VAULT_ADDR is not a URL".into()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(BinderError::Config(
                "VAULT_ADDR must be http(s)://host[:port]".into(),
            ));
        }
        let mut token_header = HeaderValue::from_str(token.expose_secret())
            .map_err(|_| BinderError::Config("VAULT_TOKEN has invalid characters".into()))?;
        token_header.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("X-Vault-Token", token_header);
        headers.insert("X-Vault-Request", HeaderValue::from_static("true"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|_| BinderError::Config("cannot build the Vault HTTP client".into()))?;
        Ok(Self {
            http,
            base: format!("{addr}/v1/"),
        })
    }

    /// One request to `/v1/<path>`; transport failures are `Unavailable`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, BinderError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method.clone(), &url);
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
    fn a_bad_address_is_a_config_error() {
        let token = SecretString::from("t");
        for addr in ["not a url", "ftp://x", "http://"] {
            assert!(
                matches!(
                    VaultClient::new(addr, &token, Duration::from_secs(1)),
                    Err(BinderError::Config(_))
                ),
                "{addr}"
            );
        }
    }
}
