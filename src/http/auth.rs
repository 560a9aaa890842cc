//! HTTP Basic authentication of the platform (osb.md §3): constant-time comparison of
//! SHA-256 digests, a second accepted pair during credential rotation. Must not import
//! adapter crates.

use axum::http::{HeaderMap, header};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type Digest32 = [u8; 32];

fn digest(s: &[u8]) -> Digest32 {
    Sha256::digest(s).into()
}

/// The accepted username/password pairs, kept only as digests.
#[derive(Clone)]
pub struct BasicAuth {
    pairs: Vec<(Digest32, Digest32)>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BasicAuth({} accepted pairs)", self.pairs.len())
    }
}

impl BasicAuth {
    /// Accepts `username`/`password`.
    pub fn new(username: &str, password: &SecretString) -> Self {
        Self {
            pairs: vec![(
                digest(username.as_bytes()),
                digest(password.expose_secret().as_bytes()),
            )],
        }
    }

    /// Also accepts a second pair (`BROKER_USERNAME_NEXT` / `BROKER_PASSWORD_NEXT`).
    pub fn with_next(mut self, username: &str, password: &SecretString) -> Self {
        self.pairs.push((
            digest(username.as_bytes()),
            digest(password.expose_secret().as_bytes()),
        ));
        self
    }

    /// Whether the request's `Authorization` header carries an accepted pair.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some((user, password)) = basic_credentials(headers) else {
            return false;
        };
        let (user, password) = (digest(user.as_bytes()), digest(password.as_bytes()));
        let mut ok = subtle::Choice::from(0);
        for (u, p) in &self.pairs {
            ok |= u.ct_eq(&user) & p.ct_eq(&password);
        }
        ok.into()
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(user: &str, password: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {token}")).unwrap(),
        );
        h
    }

    #[test]
    fn only_the_configured_pairs_are_accepted() {
        let auth = BasicAuth::new("admin", &SecretString::from("pw"))
            .with_next("admin2", &SecretString::from("pw2"));
        assert!(auth.allows(&headers("admin", "pw")));
        assert!(auth.allows(&headers("admin2", "pw2")));
        assert!(!auth.allows(&headers("admin", "pw2")));
        assert!(!auth.allows(&headers("other", "pw")));
        assert!(!auth.allows(&HeaderMap::new()));
    }

    #[test]
    fn passwords_may_contain_colons() {
        let auth = BasicAuth::new("u", &SecretString::from("a:b"));
        assert!(auth.allows(&headers("u", "a:b")));
    }
}
