//! The lease renewal pass (`domain::renewal::renew_due`) against OpenBao + MariaDB: roles with
//! short TTLs, bindings kept in a memory store, the pass run as `serve` and the scheduled
//! function run it. Uses the parent module's per-test world (`Fx`).

use std::sync::Arc;
use std::time::Duration;

use cloudify_osb::adapters::memory::MemoryStore;
use cloudify_osb::adapters::vault::{VaultBinder, VaultSettings};
use cloudify_osb::domain::ports::{BinderRegistry, Store};
use cloudify_osb::domain::renewal::renew_due;
use secrecy::SecretString;
use serde_json::json;
use time::OffsetDateTime;

use super::{Fx, config_doc, instance, lease_id, need};

/// The test's world with its role's TTLs replaced, a registry holding a binder on the same
/// mounts, and an empty memory store.
async fn world(default_ttl: &str, max_ttl: &str) -> (Fx, BinderRegistry, MemoryStore) {
    let fx = Fx::new().await;
    let mut doc = config_doc(&fx.tag);
    doc["role"]["default_ttl"] = json!(default_ttl);
    doc["role"]["max_ttl"] = json!(max_ttl);
    fx.bao.kv_put(&fx.kv(), "binders/mariadb", doc).await;
    let mut settings = VaultSettings::new(
        need("VAULT_ADDR", "openbao"),
        SecretString::from(need("VAULT_TOKEN", "openbao")),
    );
    settings.kv_mount = fx.kv();
    settings.name_prefix = fx.tag.clone();
    let mut registry = BinderRegistry::new();
    registry.register(Arc::new(VaultBinder::new(settings).unwrap()));
    (fx, registry, MemoryStore::new())
}

#[tokio::test]
async fn the_renewal_pass_keeps_a_login_working_past_the_roles_ttl() {
    let (fx, binders, store) = world("6s", "60s").await;
    let inst = instance("renew-1");
    let (bound, record) = fx.bind(&inst, "bind-1", &fx.outputs()).await.unwrap();
    let first_end = bound.lease.unwrap().expires_at;
    store.create_binding(&record).await.unwrap();
    let started = std::time::Instant::now();
    let mut renewed = 0;
    // A pass every 2 s, each renewing what falls due within 3 s, for 10 s (> the 6 s TTL).
    while started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let report = renew_due(
            &store,
            &binders,
            OffsetDateTime::now_utc(),
            time::Duration::seconds(3),
        )
        .await
        .unwrap();
        assert_eq!(report.failed, 0, "{report}");
        renewed += report.renewed;
    }
    assert!(renewed >= 2, "renewed {renewed} times");
    let now_record = store
        .binding(&record.instance_id, &record.id)
        .await
        .unwrap()
        .unwrap();
    assert!(now_record.expires_at.unwrap() > first_end);
    assert!(now_record.renew_before.is_some());
    assert!(fx.bao.lease_exists(&lease_id(&record)).await);
    let rows = fx
        .login(&bound.credentials)
        .expect("login still works past the first TTL");
    assert!(rows.contains(&format!("{}-row", fx.tag)), "{rows}");
    fx.cleanup().await;
}

#[tokio::test]
async fn a_binding_past_its_roles_max_ttl_is_reported_expired_and_no_longer_renewed() {
    let (fx, binders, store) = world("2s", "4s").await;
    let inst = instance("renew-2");
    let (bound, record) = fx.bind(&inst, "bind-1", &fx.outputs()).await.unwrap();
    store.create_binding(&record).await.unwrap();
    let started = std::time::Instant::now();
    let mut ended = 0;
    while started.elapsed() < Duration::from_secs(8) && ended == 0 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let report = renew_due(
            &store,
            &binders,
            OffsetDateTime::now_utc(),
            time::Duration::seconds(2),
        )
        .await
        .unwrap();
        // A renew racing Vault's own revocation at the cap may fail; the next pass retries.
        // Capped at max_ttl (nothing left to renew) or found over: either ends renewal.
        ended += report.expired + report.final_;
    }
    assert_eq!(ended, 1, "the pass saw the lease reach its end");
    // Past the cap (4 s after the bind) the recorded end is in the past.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = OffsetDateTime::now_utc();
    let after = store
        .binding(&record.instance_id, &record.id)
        .await
        .unwrap()
        .unwrap();
    // Fetch binding reports metadata.expires_at from this: in the past.
    assert!(after.expires_at.unwrap() < now, "{:?}", after.expires_at);
    assert!(after.expires_at.unwrap() <= record.created_at + time::Duration::seconds(6));
    assert_eq!(after.renew_before, None);
    let due = store
        .bindings_due(now + time::Duration::hours(1))
        .await
        .unwrap();
    assert!(due.iter().all(|b| b.id != record.id), "still listed as due");
    assert!(fx.login(&bound.credentials).is_err(), "login past max_ttl");
    fx.cleanup().await;
}
