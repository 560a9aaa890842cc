//! Concurrent binds on one instance (issue 6, task A): every bind used to rewrite the
//! instance's database connection, and Vault resets a connection's pool when its config is
//! written, so a bind reading credentials meanwhile failed now and then with 503. The binder
//! now writes the connection and role only when what it would write changed (a fingerprint
//! kept in the instance's KV record). Uses the parent module's per-test world (`Fx`).

use std::sync::Arc;

use cloudify_osb::adapters::vault::{VaultBinder, VaultSettings};
use cloudify_osb::domain::ids::BindingId;
use cloudify_osb::domain::ports::{BindContext, Binder};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::{Fx, config_doc, instance, need};

fn binder_for(fx: &Fx) -> Arc<VaultBinder> {
    let mut settings = VaultSettings::new(
        need("VAULT_ADDR", "openbao"),
        SecretString::from(need("VAULT_TOKEN", "openbao")),
    );
    settings.kv_mount = fx.kv();
    settings.name_prefix = fx.tag.clone();
    Arc::new(VaultBinder::new(settings).unwrap())
}

/// The connection's and the role's config as Vault reports them, to see whether a bind wrote.
async fn engine_objects(fx: &Fx, name: &str) -> (Value, Value) {
    let conn = fx
        .bao
        .ok("GET", &format!("{}/config/{name}", fx.engine()), None)
        .await;
    let role = fx
        .bao
        .ok("GET", &format!("{}/roles/{name}", fx.engine()), None)
        .await;
    (conn["data"].clone(), role["data"].clone())
}

/// KV v2 version of the instance record: it only moves when the binder writes the record.
async fn record_version(fx: &Fx, instance_id: &str) -> u64 {
    let meta = fx
        .bao
        .ok(
            "GET",
            &format!("{}/metadata/instances/{instance_id}", fx.kv()),
            None,
        )
        .await;
    meta["data"]["current_version"]
        .as_u64()
        .expect("the instance record has a version")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_binds_on_one_instance_all_succeed_with_working_logins() {
    let fx = Fx::new().await;
    let binder = binder_for(&fx);
    let inst = Arc::new(instance("conc-1"));
    let settings = Arc::new(fx.settings.clone());
    let outputs = Arc::new(fx.outputs());

    // Twice: a first wave on a fresh instance (every bind finds nothing configured yet) and
    // a second wave on the configured instance (the case the bug report describes).
    for wave in 0..2 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..20 {
            let (binder, inst, settings, outputs) = (
                binder.clone(),
                inst.clone(),
                settings.clone(),
                outputs.clone(),
            );
            tasks.spawn(async move {
                let id = BindingId::parse(&format!("w{wave}-b{i}")).unwrap();
                let params = Map::new();
                let ctx = BindContext {
                    instance: &inst,
                    binding_id: &id,
                    parameters: &params,
                    outputs: &outputs,
                    settings: &settings,
                };
                // The first wave runs the two steps apart, the second as the broker does.
                if wave == 0 {
                    binder.configure(&ctx).await?;
                    binder.credentials(&ctx).await
                } else {
                    binder.bind(&ctx).await
                }
            });
        }
        let mut failures = Vec::new();
        let mut creds = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined.expect("the bind task did not panic") {
                Ok(bound) => creds.push(bound.credentials),
                Err(e) => failures.push(e.to_string()),
            }
        }
        assert!(
            failures.is_empty(),
            "wave {wave}: {} of 20 binds failed: {failures:?}",
            failures.len()
        );
        assert_eq!(creds.len(), 20);
        let mut users: Vec<&str> = creds.iter().filter_map(|c| c.get("username")).collect();
        users.sort_unstable();
        users.dedup();
        assert_eq!(users.len(), 20, "wave {wave}: twenty distinct users");
        for c in &creds {
            assert_eq!(
                fx.login(c),
                Ok(format!("{}-row", fx.tag)),
                "wave {wave}: every login works"
            );
        }
    }
    assert_eq!(fx.db.users_with_prefix(&fx.tag).len(), 40);
    fx.cleanup().await;
}

#[tokio::test]
async fn an_unchanged_config_is_not_written_again_and_a_changed_one_is() {
    let fx = Fx::new().await;
    let inst = instance("fp-1");
    let name = fx.name(&inst);
    let (b1, _) = fx.bind(&inst, "bind-1", &fx.outputs()).await.unwrap();
    let before = engine_objects(&fx, &name).await;
    let version = record_version(&fx, "fp-1").await;
    let record = fx
        .bao
        .ok("GET", &format!("{}/data/instances/fp-1", fx.kv()), None)
        .await;
    let text = record.to_string();
    assert!(
        record["data"]["data"]["fingerprint"].is_string(),
        "{record}"
    );
    assert!(
        !text.contains(&fx.admin_password),
        "the record holds no admin password"
    );

    // Same config, same outputs: neither the record nor the engine objects are written.
    let (b2, _) = fx.bind(&inst, "bind-2", &fx.outputs()).await.unwrap();
    assert_eq!(record_version(&fx, "fp-1").await, version);
    assert_eq!(engine_objects(&fx, &name).await, before);
    assert!(fx.login(&b1.credentials).is_ok() && fx.login(&b2.credentials).is_ok());

    // A changed role (TTL) is written, and so is the record (twice: the claim, then the
    // fingerprint).
    let mut doc = config_doc(&fx.tag);
    doc["role"]["default_ttl"] = json!("30m");
    fx.bao.kv_put(&fx.kv(), "binders/mariadb", doc).await;
    let (b3, _) = fx.bind(&inst, "bind-3", &fx.outputs()).await.unwrap();
    assert_eq!(record_version(&fx, "fp-1").await, version + 2);
    let (_, role) = engine_objects(&fx, &name).await;
    assert_eq!(role["default_ttl"], json!(1800));
    assert!(fx.login(&b3.credentials).is_ok());

    // A changed admin password (the referenced KV secret) is written too: Vault then logs in
    // with the new one.
    let new_password = format!("B{}-8y", uuid::Uuid::new_v4().simple());
    fx.db.root_sql(&format!(
        "ALTER USER '{}_adm'@'%' IDENTIFIED BY '{new_password}'",
        fx.tag
    ));
    fx.bao
        .kv_put(
            &fx.kv(),
            "admin/mariadb",
            json!({ "password": new_password }),
        )
        .await;
    let (b4, _) = fx.bind(&inst, "bind-4", &fx.outputs()).await.unwrap();
    assert_eq!(record_version(&fx, "fp-1").await, version + 4);
    assert!(fx.login(&b4.credentials).is_ok());
    let record = fx
        .bao
        .ok("GET", &format!("{}/data/instances/fp-1", fx.kv()), None)
        .await;
    assert!(!record.to_string().contains(&new_password));

    // A changed output that the connection uses is written as well.
    let mut outputs = fx.outputs();
    outputs.insert("mysql_ip".into(), json!("localhost"));
    let (b5, _) = fx.bind(&inst, "bind-5", &outputs).await.unwrap();
    assert_eq!(record_version(&fx, "fp-1").await, version + 6);
    let (conn, _) = engine_objects(&fx, &name).await;
    assert!(
        conn["connection_details"]["connection_url"]
            .as_str()
            .unwrap_or_default()
            .contains("tcp(localhost:"),
        "{conn}"
    );
    assert!(fx.login(&b5.credentials).is_ok());
    fx.cleanup().await;
}
