//! The original broker's binder config (`examples/mariadb/binder-config.legacy.json`, as the
//! original `2-config-secret` script stored it: one JSON string under key `config`) read as a
//! legacy mode, on OpenBao + MariaDB (issue 6). The document names the engine mount
//! `database`, the connection `vault_test` with the blueprint's admin `demo`/`new_password`,
//! and the template role `database/roles/my-role`, so this test sets those up as the
//! original scripts did (`1-enabledb`, `3-setrole`, the blueprint's `mysql_commands`).

use cloudify_osb::adapters::vault::{VaultBinder, VaultSettings};
use cloudify_osb::domain::binding::{Binding, Credentials};
use cloudify_osb::domain::catalog::ServiceSettings;
use cloudify_osb::domain::ids::BindingId;
use cloudify_osb::domain::instance::Instance;
use cloudify_osb::domain::ports::{BindContext, Binder, Bound};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use super::{Fx, binding_record, instance, need};

const LEGACY: &str = include_str!("../../../examples/mariadb/binder-config.legacy.json");

async fn bind(
    binder: &VaultBinder,
    settings: &ServiceSettings,
    inst: &Instance,
    binding: &str,
    outputs: &Map<String, Value>,
) -> (Bound, Binding) {
    let id = BindingId::parse(binding).unwrap();
    let params = Map::new();
    let ctx = BindContext {
        instance: inst,
        binding_id: &id,
        parameters: &params,
        outputs,
        settings,
    };
    binder.configure(&ctx).await.expect("configure");
    let bound = binder.credentials(&ctx).await.expect("credentials");
    let record = binding_record(inst, &id, &bound);
    (bound, record)
}

/// What the original scripts set up (`1-enabledb`, `3-setrole`, `2-config-secret`, the
/// blueprint's admin user), a binder on the test's KV mount, settings naming the document,
/// and the outputs the original blueprint had.
async fn legacy_world(fx: &Fx) -> (VaultBinder, ServiceSettings, Map<String, Value>) {
    // `1-enabledb`: the `database` engine (already there when another run made it).
    let (status, body) = fx
        .bao
        .call(
            "POST",
            "sys/mounts/database",
            Some(json!({"type": "database"})),
        )
        .await;
    assert!(
        (200..300).contains(&status) || body.to_string().contains("already in use"),
        "mount database: {status} {body}"
    );
    // The blueprint's admin user, as `mysql_commands` made it, able to create users.
    fx.db.root_sql(
        "CREATE USER IF NOT EXISTS 'demo'@'%' IDENTIFIED BY 'new_password'; \
         ALTER USER 'demo'@'%' IDENTIFIED BY 'new_password'; \
         GRANT SELECT ON *.* TO 'demo'@'%' WITH GRANT OPTION; \
         GRANT CREATE USER ON *.* TO 'demo'@'%';",
    );
    // `3-setrole`: the template role.
    fx.bao
        .ok(
            "POST",
            "database/roles/my-role",
            Some(json!({
                "db_name": "vault_test",
                "creation_statements": "CREATE USER '{{name}}'@'%' identified by '{{password}}'; grant select on *.* to '{{name}}'@'%';",
                "default_ttl": "1h",
                "max_ttl": "24h"
            })),
        )
        .await;
    // `2-config-secret`: the document as one JSON string under `config`.
    fx.bao
        .kv_put(&fx.kv(), "binders/legacy", json!({ "config": LEGACY }))
        .await;
    let settings = ServiceSettings {
        blueprint_id: "mariadb".into(),
        binder: "vault".into(),
        binder_config: format!("{}/binders/legacy", fx.kv()),
        binding_rotatable: false,
    };
    let mut vs = VaultSettings::new(
        need("VAULT_ADDR", "openbao"),
        SecretString::from(need("VAULT_TOKEN", "openbao")),
    );
    vs.kv_mount = fx.kv();
    vs.name_prefix = fx.tag.clone();
    let binder = VaultBinder::new(vs).unwrap();
    // The output as the original blueprint named it; host:port, since the test's MariaDB
    // may not listen on 3306 (the original URL has no port).
    let outputs: Map<String, Value> = json!({
        "mysql_ip": format!("{}:{}", fx.db.host, fx.db.port),
        "not_listed": "must not appear",
    })
    .as_object()
    .cloned()
    .unwrap();
    (binder, settings, outputs)
}

fn login(fx: &Fx, c: &Credentials) -> Result<String, String> {
    fx.db.run(
        c.get("username").unwrap(),
        c.get("password").unwrap(),
        &format!("SELECT name FROM `{}`.items", fx.database),
    )
}

#[tokio::test]
async fn the_original_example_binds_two_instances_each_with_its_own_connection_and_role() {
    let fx = Fx::new().await;
    let (binder, settings, outputs) = legacy_world(&fx).await;
    let (a, b) = (
        instance(&format!("{}-a", fx.tag)),
        instance(&format!("{}-b", fx.tag)),
    );
    let (ba, ra) = bind(&binder, &settings, &a, "bind-1", &outputs).await;
    let (bb, _rb) = bind(&binder, &settings, &b, "bind-1", &outputs).await;
    let (ba2, _) = bind(&binder, &settings, &a, "bind-2", &outputs).await;

    let login = |c: &Credentials| login(&fx, c);
    let row = format!("{}-row", fx.tag);
    for c in [&ba.credentials, &bb.credentials, &ba2.credentials] {
        assert_eq!(login(c), Ok(row.clone()), "every login works");
        assert_eq!(c.get("mysql_ip"), outputs["mysql_ip"].as_str());
        assert_eq!(
            c.get("not_listed"),
            None,
            "__credoutputs__ is an allow-list"
        );
        assert_eq!(c.get("type"), Some("mysql"));
        for k in ["__path__", "__credpath__", "__credoutputs__"] {
            assert_eq!(c.get(k), None);
        }
    }
    assert_ne!(
        ba.credentials.get("username"),
        bb.credentials.get("username")
    );

    // Each instance has its own connection and role, cloned from the template.
    for inst in [&a, &b] {
        let conn_name = format!("vault_test-{}", inst.id);
        let role_name = format!("my-role-{}", inst.id);
        let conn = fx
            .bao
            .ok("GET", &format!("database/config/{conn_name}"), None)
            .await;
        assert_eq!(conn["data"]["allowed_roles"], json!([role_name]));
        assert_eq!(conn["data"]["plugin_name"], json!("mysql-database-plugin"));
        let text = conn.to_string();
        assert!(!text.contains("__"), "no special key reaches Vault: {text}");
        let role = fx
            .bao
            .ok("GET", &format!("database/roles/{role_name}"), None)
            .await;
        assert_eq!(role["data"]["db_name"], json!(conn_name));
        assert_eq!(role["data"]["default_ttl"], json!(3600));
        assert_eq!(role["data"]["max_ttl"], json!(86400));
    }
    assert!(
        super::lease_id(&ra).starts_with(&format!("database/creds/my-role-{}/", a.id)),
        "the lease is under the instance's role"
    );
    assert_eq!(
        fx.bao.status("database/config/vault_test").await,
        404,
        "the shared connection of the original is never written"
    );
    let template = fx.bao.ok("GET", "database/roles/my-role", None).await;
    assert_eq!(
        template["data"]["db_name"],
        json!("vault_test"),
        "the template is untouched"
    );

    // Unbind and deprovision A: B keeps working, A's objects are gone.
    binder.revoke(&ra).await.unwrap();
    assert!(login(&ba.credentials).is_err(), "the unbound login fails");
    assert!(login(&ba2.credentials).is_ok());
    binder.remove_instance(&a, &settings).await.unwrap();
    assert!(
        login(&ba2.credentials).is_err(),
        "deprovision revokes A's rest"
    );
    assert_eq!(login(&bb.credentials), Ok(row.clone()), "B still works");
    for path in [
        format!("database/config/vault_test-{}", a.id),
        format!("database/roles/my-role-{}", a.id),
        format!("{}/metadata/instances/{}", fx.kv(), a.id),
    ] {
        assert_eq!(fx.bao.status(&path).await, 404, "{path}");
    }
    // And B binds again after A is gone.
    let (bb2, _) = bind(&binder, &settings, &b, "bind-2", &outputs).await;
    assert_eq!(login(&bb2.credentials), Ok(row));
    assert_eq!(fx.bao.status("database/roles/my-role").await, 200);

    binder.remove_instance(&b, &settings).await.unwrap();
    assert!(login(&bb.credentials).is_err());
    assert_eq!(
        fx.bao
            .status(&format!("database/config/vault_test-{}", b.id))
            .await,
        404
    );
    // The template role stays: the other legacy tests of this run use it too.
    fx.cleanup().await;
}

#[tokio::test]
async fn a_legacy_document_without_its_template_role_fails_the_bind_naming_it() {
    let fx = Fx::new().await;
    let mut doc: Value = serde_json::from_str(LEGACY).unwrap();
    doc["__path__"] = json!(format!("{}/config/vault_test", fx.engine()));
    doc["__credpath__"] = json!(format!("{}/creds/no-such-role", fx.engine()));
    fx.bao.kv_put(&fx.kv(), "binders/legacy", doc).await;
    let mut settings = fx.settings.clone();
    settings.binder_config = format!("{}/binders/legacy", fx.kv());
    let inst = instance("legacy-1");
    let id = BindingId::parse("bind-1").unwrap();
    let params = Map::new();
    let outputs = fx.outputs();
    let ctx = BindContext {
        instance: &inst,
        binding_id: &id,
        parameters: &params,
        outputs: &outputs,
        settings: &settings,
    };
    let err = fx.binder.configure(&ctx).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, cloudify_osb::domain::error::BinderError::Config(_))
            && text.contains("no-such-role"),
        "{text}"
    );
    assert_eq!(
        fx.bao
            .status(&format!("{}/metadata/instances/legacy-1", fx.kv()))
            .await,
        404,
        "nothing was recorded"
    );
    fx.cleanup().await;
}

/// `cloudify-osb service convert-config`, as in tests/e2e (`$CLOUDIFY_OSB_BIN` wins).
fn convert_config(doc: &std::path::Path, role: &std::path::Path) -> Value {
    let bin = std::env::var("CLOUDIFY_OSB_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cloudify-osb").to_owned());
    let out = std::process::Command::new(bin)
        .args(["service", "convert-config"])
        .arg(doc)
        .arg("--role")
        .arg(role)
        .output()
        .expect("the cloudify-osb binary runs");
    assert!(
        out.status.success(),
        "convert-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("convert-config prints JSON")
}

#[tokio::test]
async fn convert_config_output_validates_binds_and_takes_over_an_instance_bound_with_the_legacy_document()
 {
    let fx = Fx::new().await;
    let (binder, mut settings, outputs) = legacy_world(&fx).await;
    let inst = instance(&format!("{}-m", fx.tag));
    let (b1, r1) = bind(&binder, &settings, &inst, "bind-1", &outputs).await;
    assert!(login(&fx, &b1.credentials).is_ok());

    // Convert: the document as the original stored it, the role as `bao read -format=json`.
    let dir = tempfile::tempdir().unwrap();
    let (doc_file, role_file) = (dir.path().join("legacy.json"), dir.path().join("role.json"));
    std::fs::write(&doc_file, json!({ "config": LEGACY }).to_string()).unwrap();
    let role = fx.bao.ok("GET", "database/roles/my-role", None).await;
    std::fs::write(&role_file, role.to_string()).unwrap();
    let converted = convert_config(&doc_file, &role_file);
    let schema: Value =
        serde_json::from_str(include_str!("../../../schemas/binder-config.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&converted)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{converted}");
    assert_eq!(converted["outputs"], json!(["mysql_ip"]));
    assert!(!converted.to_string().contains("__"), "{converted}");

    // The service moves to the converted document: the instance's next bind gets the
    // current format's objects, the legacy binding keeps working until it is unbound.
    fx.bao
        .kv_put(&fx.kv(), "binders/converted", converted)
        .await;
    settings.binder_config = format!("{}/binders/converted", fx.kv());
    let (b2, r2) = bind(&binder, &settings, &inst, "bind-2", &outputs).await;
    let name = format!("{}-{}", fx.tag, inst.id);
    assert!(super::lease_id(&r2).starts_with(&format!("database/creds/{name}/")));
    assert_eq!(login(&fx, &b2.credentials), Ok(format!("{}-row", fx.tag)));
    assert!(
        login(&fx, &b1.credentials).is_ok(),
        "the legacy binding still works"
    );
    assert_eq!(b2.credentials.get("mysql_ip"), outputs["mysql_ip"].as_str());

    // Deprovision removes both generations of objects.
    binder.revoke(&r1).await.unwrap();
    binder.revoke(&r2).await.unwrap();
    binder.remove_instance(&inst, &settings).await.unwrap();
    for path in [
        format!("database/config/vault_test-{}", inst.id),
        format!("database/roles/my-role-{}", inst.id),
        format!("database/config/{name}"),
        format!("database/roles/{name}"),
    ] {
        assert_eq!(fx.bao.status(&path).await, 404, "{path}");
    }
    fx.cleanup().await;
}
