//! The broker's own Vault login against OpenBao + MariaDB: AppRole with the example's broker
//! policy (`examples/mariadb/vault/broker-policy.hcl`, its paths moved onto the test's mounts),
//! re-login after the token is revoked or expires, `renew-self` of short-lived tokens (AppRole
//! and a static token). Uses the parent module's per-test world (`Fx`).
//!
//! There is no live AWS IAM login test: OpenBao has no `aws` auth method and no STS is
//! reachable here; the signed login request is unit-tested against botocore's vectors
//! (`src/adapters/vault/auth.rs`).

use std::sync::Arc;
use std::time::Duration;

use cloudify_osb::adapters::vault::{AuthStats, VaultAuth, VaultBinder, VaultSettings};
use cloudify_osb::domain::error::BinderError;
use cloudify_osb::domain::ports::Binder;
use secrecy::SecretString;
use serde_json::{Value, json};

use super::{Fx, instance, lease_id, need};

/// The example's broker policy with its paths on the test's mounts and name prefix.
fn broker_policy(fx: &Fx) -> String {
    let policy = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/mariadb/vault/broker-policy.hcl"
    ))
    .expect("the example's broker policy is readable");
    assert!(policy.contains("path \"cloudify-osb/data/bindings/*\""));
    policy
        .replace("\"cloudify-osb/", &format!("\"{}/", fx.kv()))
        .replace("\"database/", &format!("\"{}/", fx.engine()))
        .replace("/database/creds/", &format!("/{}/creds/", fx.engine()))
        .replace("osb-*", &format!("{}-*", fx.tag))
}

/// The AppRole side of a test: an approle mount of its own, the broker policy, one role.
struct AppRole {
    mount: String,
    role_id: String,
    secret_id: String,
}

impl AppRole {
    /// `token` holds the role's token settings (`token_ttl`, `token_max_ttl`, …).
    async fn new(fx: &Fx, token: Value) -> Self {
        let mount = format!("{}-approle", fx.tag);
        let policy = format!("{}-broker", fx.tag);
        fx.bao
            .ok(
                "POST",
                &format!("sys/auth/{mount}"),
                Some(json!({"type": "approle"})),
            )
            .await;
        fx.bao
            .ok(
                "PUT",
                &format!("sys/policies/acl/{policy}"),
                Some(json!({ "policy": broker_policy(fx) })),
            )
            .await;
        let mut role = json!({ "token_policies": [policy] });
        if let (Some(role), Some(extra)) = (role.as_object_mut(), token.as_object()) {
            role.extend(extra.clone());
        }
        fx.bao
            .ok("POST", &format!("auth/{mount}/role/broker"), Some(role))
            .await;
        let role_id = fx
            .bao
            .ok("GET", &format!("auth/{mount}/role/broker/role-id"), None)
            .await["data"]["role_id"]
            .as_str()
            .expect("a role_id")
            .to_owned();
        let secret_id = fx
            .bao
            .ok(
                "POST",
                &format!("auth/{mount}/role/broker/secret-id"),
                Some(json!({})),
            )
            .await["data"]["secret_id"]
            .as_str()
            .expect("a secret_id")
            .to_owned();
        Self {
            mount,
            role_id,
            secret_id,
        }
    }

    fn auth(&self) -> VaultAuth {
        VaultAuth::AppRole {
            mount: self.mount.clone(),
            role_id: SecretString::from(self.role_id.clone()),
            secret_id: SecretString::from(self.secret_id.clone()),
        }
    }

    /// Revokes every token this mount issued (the broker's included).
    async fn revoke_tokens(&self, fx: &Fx) {
        fx.bao
            .ok(
                "PUT",
                &format!("sys/leases/revoke-prefix/auth/{}/login", self.mount),
                Some(json!({})),
            )
            .await;
    }

    async fn remove(self, fx: &Fx) {
        fx.bao
            .call("DELETE", &format!("sys/auth/{}", self.mount), None)
            .await;
        fx.bao
            .call(
                "DELETE",
                &format!("sys/policies/acl/{}-broker", fx.tag),
                None,
            )
            .await;
    }
}

/// A binder on the test's mounts that logs in with `auth`; it replaces the world's own
/// (root-token) binder, so that every bind below goes through it.
fn with_binder(mut fx: Fx, auth: VaultAuth) -> Fx {
    let mut settings = VaultSettings::new(need("VAULT_ADDR", "openbao"), auth);
    settings.kv_mount = fx.kv();
    settings.name_prefix = fx.tag.clone();
    fx.binder = VaultBinder::new(settings).expect("valid binder settings");
    fx
}

/// Binds `binding` on a fresh instance `inst` and checks the MariaDB login works.
async fn bind_and_log_in(fx: &Fx, inst: &str, binding: &str) {
    let inst = instance(inst);
    let (bound, _) = fx
        .bind(&inst, binding, &fx.outputs())
        .await
        .unwrap_or_else(|e| panic!("bind {binding} failed: {e}"));
    let rows = fx
        .login(&bound.credentials)
        .unwrap_or_else(|e| panic!("MariaDB login of {binding} failed: {e}"));
    assert!(rows.contains(&format!("{}-row", fx.tag)), "{rows}");
}

fn stats(fx: &Fx) -> AuthStats {
    fx.binder.auth_stats()
}

#[tokio::test]
async fn approle_login_with_the_broker_policy_binds_and_logs_in_once() {
    let fx = Fx::new().await;
    let approle = AppRole::new(&fx, json!({"token_ttl": "1h", "token_max_ttl": "4h"})).await;
    let fx = with_binder(fx, approle.auth());
    assert_eq!(
        stats(&fx),
        AuthStats::default(),
        "no request before the first use"
    );
    fx.binder.connect().await.expect("readiness with AppRole");
    bind_and_log_in(&fx, "auth-1", "bind-1").await;
    bind_and_log_in(&fx, "auth-2", "bind-1").await;
    let s = stats(&fx);
    assert_eq!(s.logins, 1, "{s:?}");
    assert_eq!(s.relogins_after_denial, 0, "{s:?}");
    approle.remove(&fx).await;
    fx.cleanup().await;
}

#[tokio::test]
async fn a_wrong_secret_id_fails_the_bind_as_unavailable_without_echoing_it() {
    let fx = Fx::new().await;
    let approle = AppRole::new(&fx, json!({"token_ttl": "1h"})).await;
    let wrong = "0f1e2d3c-aaaa-bbbb-cccc-wrongsecret1";
    let fx = with_binder(
        fx,
        VaultAuth::AppRole {
            mount: approle.mount.clone(),
            role_id: SecretString::from(approle.role_id.clone()),
            secret_id: SecretString::from(wrong.to_owned()),
        },
    );
    let err = fx
        .bind(&instance("auth-bad"), "bind-1", &fx.outputs())
        .await
        .expect_err("a wrong secret ID cannot bind");
    let text = err.to_string();
    assert!(matches!(err, BinderError::Unavailable(_)), "{text}");
    assert!(text.contains("approle"), "{text}");
    assert!(
        !text.contains(wrong) && !text.contains(&approle.role_id),
        "{text}"
    );
    assert_eq!(stats(&fx).logins, 0);
    approle.remove(&fx).await;
    fx.cleanup().await;
}

#[tokio::test]
async fn a_revoked_token_is_replaced_by_one_new_login_and_the_next_binds_succeed() {
    let fx = Fx::new().await;
    let approle = AppRole::new(&fx, json!({"token_ttl": "1h", "token_max_ttl": "4h"})).await;
    let fx = with_binder(fx, approle.auth());
    let (_, first) = fx
        .bind(&instance("revoke-1"), "bind-1", &fx.outputs())
        .await
        .expect("first bind");
    assert_eq!(stats(&fx).logins, 1);
    assert!(fx.bao.lease_exists(&lease_id(&first)).await);
    approle.revoke_tokens(&fx).await;
    // Vault's rule, which the README's auth section builds on: a lease belongs to the token
    // that created it and goes with it.
    // (Vault revokes the token's leases in the background, within about 100 ms here.)
    let mut gone = false;
    for _ in 0..150 {
        if !fx.bao.lease_exists(&lease_id(&first)).await {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the revoked token's credential lease is gone");
    // Eight binds at once on the dead token: one new login serves them all.
    let fx = Arc::new(fx);
    let mut binds = tokio::task::JoinSet::new();
    for i in 0..8 {
        let fx = fx.clone();
        binds.spawn(async move {
            bind_and_log_in(&fx, &format!("revoke-{}", i + 2), "bind-1").await;
        });
    }
    while let Some(done) = binds.join_next().await {
        done.expect("every bind after the revocation succeeds");
    }
    let s = stats(&fx);
    assert_eq!(s.relogins_after_denial, 1, "{s:?}");
    assert_eq!(s.logins, 2, "{s:?}");
    let fx = Arc::into_inner(fx).expect("the binds are done");
    approle.remove(&fx).await;
    fx.cleanup().await;
}

#[tokio::test]
async fn a_policy_denial_is_not_taken_for_a_dead_token() {
    let fx = Fx::new().await;
    let approle = AppRole::new(&fx, json!({"token_ttl": "1h"})).await;
    let fx = with_binder(fx, approle.auth());
    bind_and_log_in(&fx, "deny-1", "bind-1").await;
    // The broker's policy goes away: the token lives, binds are denied, no login storm.
    fx.bao
        .ok(
            "PUT",
            &format!("sys/policies/acl/{}-broker", fx.tag),
            Some(json!({"policy": "path \"nothing/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
    for i in 0..3 {
        let err = fx
            .bind(
                &instance(&format!("deny-{}", i + 2)),
                "bind-1",
                &fx.outputs(),
            )
            .await
            .expect_err("denied by the policy");
        assert!(err.to_string().contains("403"), "{err}");
    }
    let s = stats(&fx);
    assert_eq!((s.logins, s.relogins_after_denial), (1, 0), "{s:?}");
    approle.remove(&fx).await;
    fx.cleanup().await;
}

#[tokio::test]
async fn a_token_past_its_max_ttl_is_replaced_by_a_new_login() {
    let fx = Fx::new().await;
    let approle = AppRole::new(&fx, json!({"token_ttl": "3s", "token_max_ttl": "3s"})).await;
    let fx = with_binder(fx, approle.auth());
    bind_and_log_in(&fx, "expire-1", "bind-1").await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    bind_and_log_in(&fx, "expire-2", "bind-1").await;
    // Replaced ahead of time (the keep-alive logs in again when a renewal is capped), not
    // after a denial.
    let s = stats(&fx);
    assert!(s.logins >= 2, "{s:?}");
    assert_eq!(s.relogins_after_denial, 0, "{s:?}");
    approle.remove(&fx).await;
    fx.cleanup().await;
}

#[tokio::test]
async fn an_idle_approle_token_is_renewed_with_renew_self_and_outlives_its_first_ttl() {
    let fx = Fx::new().await;
    let approle = AppRole::new(&fx, json!({"token_ttl": "6s", "token_max_ttl": "1h"})).await;
    let fx = with_binder(fx, approle.auth());
    bind_and_log_in(&fx, "renew-a1", "bind-1").await;
    // Idle for 1.5 TTLs: the keep-alive renews the token at 2/3 of its TTL, no new login.
    tokio::time::sleep(Duration::from_secs(9)).await;
    bind_and_log_in(&fx, "renew-a2", "bind-1").await;
    assert!(stats(&fx).renewals >= 1, "{:?}", stats(&fx));
    let s = stats(&fx);
    assert_eq!(s.logins, 1, "{s:?}");
    assert_eq!(s.relogins_after_denial, 0, "{s:?}");
    assert!(s.renewals >= 2, "{s:?}");
    approle.remove(&fx).await;
    fx.cleanup().await;
}

#[tokio::test]
async fn an_idle_static_periodic_token_is_renewed_and_outlives_its_first_ttl() {
    let fx = Fx::new().await;
    let policy = format!("{}-broker", fx.tag);
    fx.bao
        .ok(
            "PUT",
            &format!("sys/policies/acl/{policy}"),
            Some(json!({ "policy": broker_policy(&fx) })),
        )
        .await;
    let token = fx
        .bao
        .ok(
            "POST",
            "auth/token/create",
            Some(json!({"policies": [policy], "period": "6s", "renewable": true})),
        )
        .await["auth"]["client_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let fx = with_binder(fx, VaultAuth::Token(SecretString::from(token)));
    bind_and_log_in(&fx, "renew-t1", "bind-1").await;
    // Idle for 1.5 periods: a static token cannot be re-obtained, only the keep-alive's
    // renewals keep it; then busy past another 2/3.
    tokio::time::sleep(Duration::from_secs(9)).await;
    bind_and_log_in(&fx, "renew-t2", "bind-1").await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    bind_and_log_in(&fx, "renew-t3", "bind-1").await;
    let s = stats(&fx);
    assert_eq!(s.logins, 1, "one look-up: {s:?}");
    assert!(s.renewals >= 2, "{s:?}");
    fx.bao
        .call("DELETE", &format!("sys/policies/acl/{policy}"), None)
        .await;
    fx.cleanup().await;
}
