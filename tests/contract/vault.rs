//! The Vault binder contract (DESIGN.md §5–§6, §8.3): `VaultBinder` against a real OpenBao
//! (`VAULT_ADDR`, `VAULT_TOKEN`, from `tests/services/openbao.sh`) driving the database
//! secrets engine on a real MariaDB (`MARIADB_URL`, from `tests/services/mariadb.sh`).
//!
//! Each test has its own tag: its own database engine mount `<tag>-db`, KV mount `<tag>-kv`,
//! name prefix `<tag>`, MariaDB database `<tag>_app`, admin `<tag>_adm` and generated users
//! `<tag>_…`, and asserts only on what carries it. Logins are checked with the `mariadb`
//! command-line client (lighter than a Rust MySQL driver), password passed in `MYSQL_PWD`.
//! The seal test starts its own OpenBao (`OPENBAO_BIN`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cloudify_osb::adapters::vault::{VaultBinder, VaultSettings};
use cloudify_osb::domain::binding::{Binding, BindingState, Credentials};
use cloudify_osb::domain::catalog::ServiceSettings;
use cloudify_osb::domain::error::BinderError;
use cloudify_osb::domain::ids::{BindingId, InstanceId, PlanId, ServiceId};
use cloudify_osb::domain::instance::{Instance, InstanceState};
use cloudify_osb::domain::ports::{BindContext, Binder, Bound};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

fn need(var: &str, from: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: the Vault binder contract tests need {from}. Run tests/run, or \
             `TEST_STATE=/tmp/s bash tests/services/{from}.sh start` and source /tmp/s/*.env"
        ),
    }
}

/// The MariaDB server from `MARIADB_URL` (`mysql://root[:password]@127.0.0.1:PORT`).
#[derive(Clone)]
struct MariaDb {
    host: String,
    port: String,
    root: String,
    root_password: String,
}

impl MariaDb {
    fn from_env() -> Self {
        let url = need("MARIADB_URL", "mariadb");
        let rest = url
            .strip_prefix("mysql://")
            .unwrap_or_else(|| panic!("MARIADB_URL must start with mysql://"));
        let (userinfo, hostport) = rest
            .trim_end_matches('/')
            .rsplit_once('@')
            .unwrap_or(("root", rest));
        let (root, root_password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (host, port) = hostport.split_once(':').unwrap_or((hostport, "3306"));
        Self {
            host: host.into(),
            port: port.into(),
            root: root.into(),
            root_password: root_password.into(),
        }
    }

    /// Runs SQL as `user`; stdout (tab-separated, no headers) or the client's error.
    fn run(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .args([
                "--no-defaults",
                "--protocol=TCP",
                "-N",
                "-B",
                "--connect-timeout=5",
            ])
            .arg(format!("-h{}", self.host))
            .arg(format!("-P{}", self.port))
            .arg(format!("-u{user}"))
            .args(["-e", sql])
            .env("MYSQL_PWD", password)
            .stdin(Stdio::null())
            .output()
            .expect("the `mariadb` client runs (package mariadb-client)");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    fn root_sql(&self, sql: &str) -> String {
        self.run(&self.root, &self.root_password, sql)
            .unwrap_or_else(|e| panic!("root SQL failed: {e}\n{sql}"))
    }

    fn users_with_prefix(&self, tag: &str) -> Vec<String> {
        let out = self.root_sql(&format!(
            "SELECT User FROM mysql.user WHERE User LIKE '{tag}\\_%' AND User <> '{tag}_adm'"
        ));
        out.lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

/// Raw calls to OpenBao for setup and checks.
#[derive(Clone)]
struct Bao {
    http: reqwest::Client,
    addr: String,
    token: String,
}

impl Bao {
    fn new(addr: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            addr: addr.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("OpenBao answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {body}"
        );
        body
    }

    async fn status(&self, path: &str) -> u16 {
        self.call("GET", path, None).await.0
    }

    /// Lease lookup: true while the lease exists.
    async fn lease_exists(&self, lease_id: &str) -> bool {
        let (status, body) = self
            .call(
                "PUT",
                "sys/leases/lookup",
                Some(json!({ "lease_id": lease_id })),
            )
            .await;
        match status {
            200 => true,
            400 => {
                assert!(body.to_string().contains("invalid lease"), "{body}");
                false
            }
            other => panic!("lease lookup answered {other}: {body}"),
        }
    }

    async fn leases_under(&self, prefix: &str) -> Vec<String> {
        let (status, body) = self
            .call("LIST", &format!("sys/leases/lookup/{prefix}"), None)
            .await;
        match status {
            404 => Vec::new(),
            200 => body["data"]["keys"]
                .as_array()
                .map(|k| {
                    k.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            other => panic!("lease list answered {other}: {body}"),
        }
    }

    async fn mount(&self, path: &str, body: Value) {
        self.ok("POST", &format!("sys/mounts/{path}"), Some(body))
            .await;
    }

    /// KV v2 write, retried while a fresh mount upgrades.
    async fn kv_put(&self, mount: &str, path: &str, data: Value) {
        for _ in 0..50 {
            let (status, body) = self
                .call(
                    "POST",
                    &format!("{mount}/data/{path}"),
                    Some(json!({ "data": data })),
                )
                .await;
            if (200..300).contains(&status) {
                return;
            }
            assert!(
                body.to_string().contains("pgrad"),
                "KV write answered {status}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("KV mount {mount} never became writable");
    }
}

fn tag() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("v{}", &id[..7])
}

/// One test's world: its mounts, database, admin user and binder.
struct Fx {
    tag: String,
    db: MariaDb,
    bao: Bao,
    binder: VaultBinder,
    settings: ServiceSettings,
    database: String,
    admin_password: String,
}

fn config_doc(tag: &str) -> Value {
    json!({
        "engine": {"mount": format!("{tag}-db"), "plugin": "mysql-database-plugin"},
        "connection": {
            "url": "{{username}}:{{password}}@tcp({{ outputs.mysql_ip }}:{{ outputs.mysql_port }})/",
            "username": format!("{tag}_adm"),
            "password_ref": {"path": format!("{tag}-kv/admin/mariadb"), "key": "password"},
            "username_template": format!("{{{{ printf \"{tag}_%s\" (random 12) }}}}")
        },
        "role": {
            "creation_statements": [
                "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'",
                "GRANT SELECT ON `{{ outputs.database }}`.* TO '{{name}}'@'%'"
            ],
            "revocation_statements": ["DROP USER IF EXISTS '{{name}}'@'%'"],
            "default_ttl": "1h",
            "max_ttl": "2h"
        },
        "credentials": {
            "type": "mysql",
            "uri_scheme": "mysql",
            "values": {
                "host": "{{ outputs.mysql_ip }}",
                "port": "{{ outputs.mysql_port }}",
                "database": "{{ outputs.database }}",
                "instance": "{{ instance.id }}",
                "binding": "{{ binding.id }}",
                "echo": "{{ outputs.tricky }}"
            }
        },
        "outputs": ["mysql_ip", "tricky"]
    })
}

impl Fx {
    async fn new() -> Self {
        let addr = need("VAULT_ADDR", "openbao");
        let token = need("VAULT_TOKEN", "openbao");
        Self::on(&addr, &token).await
    }

    async fn on(addr: &str, token: &str) -> Self {
        let tag = tag();
        let db = MariaDb::from_env();
        let database = format!("{tag}_app");
        let admin_password = format!("A{}-9z", uuid::Uuid::new_v4().simple());
        db.root_sql(&format!(
            "CREATE DATABASE `{database}`; \
             CREATE TABLE `{database}`.items (name VARCHAR(40)); \
             INSERT INTO `{database}`.items VALUES ('{tag}-row'); \
             CREATE USER '{tag}_adm'@'%' IDENTIFIED BY '{admin_password}'; \
             GRANT ALL PRIVILEGES ON `{database}`.* TO '{tag}_adm'@'%' WITH GRANT OPTION; \
             GRANT CREATE USER ON *.* TO '{tag}_adm'@'%';"
        ));
        let bao = Bao::new(addr, token);
        bao.mount(&format!("{tag}-db"), json!({"type": "database"}))
            .await;
        bao.mount(
            &format!("{tag}-kv"),
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
        let kv = format!("{tag}-kv");
        bao.kv_put(&kv, "admin/mariadb", json!({ "password": admin_password }))
            .await;
        bao.kv_put(&kv, "binders/mariadb", config_doc(&tag)).await;
        let mut settings = VaultSettings::new(addr, SecretString::from(token.to_owned()));
        settings.kv_mount = kv.clone();
        settings.name_prefix = tag.clone();
        let binder = VaultBinder::new(settings).expect("valid binder settings");
        Self {
            settings: ServiceSettings {
                blueprint_id: "mariadb".into(),
                binder: "vault".into(),
                binder_config: format!("{kv}/binders/mariadb"),
                binding_rotatable: false,
            },
            tag,
            db,
            bao,
            binder,
            database,
            admin_password,
        }
    }

    fn outputs(&self) -> Map<String, Value> {
        json!({
            "mysql_ip": self.db.host,
            "mysql_port": self.db.port.parse::<u16>().unwrap(),
            "database": self.database,
            "tricky": "a\"b', {{password}} }} {{ outputs.mysql_ip }} {\"x\": [1]}",
            "not_listed": "must not appear",
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn engine(&self) -> String {
        format!("{}-db", self.tag)
    }

    fn kv(&self) -> String {
        format!("{}-kv", self.tag)
    }

    fn name(&self, instance: &Instance) -> String {
        format!("{}-{}", self.tag, instance.id)
    }

    async fn bind(
        &self,
        instance: &Instance,
        binding: &str,
        outputs: &Map<String, Value>,
    ) -> Result<(Bound, Binding), BinderError> {
        let binding_id = BindingId::parse(binding).unwrap();
        let params = Map::new();
        let ctx = BindContext {
            instance,
            binding_id: &binding_id,
            parameters: &params,
            outputs,
            settings: &self.settings,
        };
        // What the broker calls: both steps on one read of the binder config.
        let bound = self.binder.bind(&ctx).await?;
        let record = binding_record(instance, &binding_id, &bound);
        Ok((bound, record))
    }

    fn login(&self, c: &Credentials) -> Result<String, String> {
        self.db.run(
            c.get("username").unwrap(),
            c.get("password").unwrap(),
            &format!("SELECT name FROM `{}`.items", self.database),
        )
    }

    async fn cleanup(self) {
        for m in [self.engine(), self.kv()] {
            self.bao
                .call("DELETE", &format!("sys/mounts/{m}"), None)
                .await;
        }
        let users = self.db.users_with_prefix(&self.tag);
        let mut sql = format!(
            "DROP DATABASE IF EXISTS `{}`; DROP USER IF EXISTS '{}_adm'@'%';",
            self.database, self.tag
        );
        for u in users {
            sql.push_str(&format!("DROP USER IF EXISTS '{u}'@'%';"));
        }
        self.db.root_sql(&sql);
    }
}

fn instance(id: &str) -> Instance {
    let id = InstanceId::parse(id).unwrap();
    Instance {
        deployment_id: id.deployment_id(),
        id,
        service_id: ServiceId::parse("svc").unwrap(),
        plan_id: PlanId::parse("plan").unwrap(),
        blueprint_id: "mariadb".into(),
        organization_guid: "org".into(),
        space_guid: "space".into(),
        context: Some(json!({"platform": "kubernetes", "namespace": "ns1"})),
        parameters: Map::new(),
        maintenance_info_version: None,
        dashboard_url: None,
        request_hash: "h".into(),
        state: InstanceState::Provisioned,
        operation: None,
        created_at: OffsetDateTime::now_utc(),
        version: 1,
    }
}

fn binding_record(instance: &Instance, id: &BindingId, bound: &Bound) -> Binding {
    Binding {
        instance_id: instance.id.clone(),
        id: id.clone(),
        service_id: instance.service_id.clone(),
        plan_id: instance.plan_id.clone(),
        request_hash: "h".into(),
        parameters: Map::new(),
        context: None,
        bind_resource: None,
        predecessor_binding_id: None,
        binder: "vault".into(),
        binder_state: bound.state.clone(),
        state: BindingState::Bound,
        expires_at: bound.lease.map(|l| l.expires_at),
        renew_before: bound.lease.map(|l| l.renew_before),
        created_at: OffsetDateTime::now_utc(),
        version: 1,
    }
}

fn lease_id(binding: &Binding) -> String {
    binding.binder_state["lease_id"]
        .as_str()
        .expect("lease_id kept in the binding state")
        .to_owned()
}

#[tokio::test]
async fn bind_returns_credentials_that_log_in_and_read_the_instances_database() {
    let fx = Fx::new().await;
    let inst = instance("inst-1");
    let (bound, record) = fx.bind(&inst, "bind-1", &fx.outputs()).await.unwrap();
    let c = &bound.credentials;

    assert_eq!(fx.login(c).unwrap(), format!("{}-row", fx.tag));
    let user = c.get("username").unwrap();
    assert!(user.starts_with(&format!("{}_", fx.tag)), "{user}");
    assert_eq!(c.get("type"), Some("mysql"));
    assert_eq!(c.get("provider"), Some("cloudify"));
    assert_eq!(c.get("host"), Some(fx.db.host.as_str()));
    assert_eq!(c.get("port"), Some(fx.db.port.as_str()));
    assert_eq!(c.get("database"), Some(fx.database.as_str()));
    assert_eq!(c.get("instance"), Some("inst-1"));
    assert_eq!(c.get("binding"), Some("bind-1"));
    assert_eq!(c.get("mysql_ip"), Some(fx.db.host.as_str()));
    assert_eq!(c.get("tricky"), fx.outputs()["tricky"].as_str());
    assert_eq!(c.get("echo"), fx.outputs()["tricky"].as_str());
    assert_eq!(
        c.get("not_listed"),
        None,
        "only allow-listed outputs are added"
    );
    let uri = c.get("uri").unwrap();
    assert!(
        uri.starts_with(&format!("mysql://{user}:"))
            && uri.ends_with(&format!("@{}:{}/{}", fx.db.host, fx.db.port, fx.database)),
        "uri has the expected shape"
    );

    let lease = lease_id(&record);
    assert!(
        lease.starts_with(&format!("{}/creds/{}/", fx.engine(), fx.name(&inst))),
        "{lease}"
    );
    assert!(fx.bao.lease_exists(&lease).await);
    let times = bound.lease.expect("lease times from lease_duration");
    let left = times.expires_at - OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::minutes(59) && left <= time::Duration::hours(1),
        "{left}"
    );
    assert!(times.renew_before < times.expires_at);

    let state = record.binder_state.to_string();
    assert!(
        !state.contains(c.get("password").unwrap()),
        "the binding state holds no password"
    );
    assert!(!state.contains(&fx.admin_password));
    fx.cleanup().await;
}

#[tokio::test]
async fn a_second_binding_gets_other_credentials_and_stored_credentials_return_the_same() {
    let fx = Fx::new().await;
    let inst = instance("inst-1");
    let (b1, r1) = fx.bind(&inst, "bind-1", &fx.outputs()).await.unwrap();
    let (b2, r2) = fx.bind(&inst, "bind-2", &fx.outputs()).await.unwrap();
    assert_ne!(
        b1.credentials.get("username"),
        b2.credentials.get("username")
    );
    assert_ne!(
        b1.credentials.get("password"),
        b2.credentials.get("password")
    );
    assert_ne!(lease_id(&r1), lease_id(&r2));
    assert!(fx.login(&b1.credentials).is_ok());
    assert!(fx.login(&b2.credentials).is_ok());

    assert_eq!(
        fx.binder.stored_credentials(&r1).await.unwrap(),
        b1.credentials
    );
    assert_eq!(
        fx.binder.stored_credentials(&r2).await.unwrap(),
        b2.credentials
    );
    fx.cleanup().await;
}

#[tokio::test]
async fn revoke_makes_the_login_fail_removes_the_lease_and_the_kept_credentials() {
    let fx = Fx::new().await;
    let inst = instance("inst-1");
    let (b1, r1) = fx.bind(&inst, "bind-1", &fx.outputs()).await.unwrap();
    let (b2, _r2) = fx.bind(&inst, "bind-2", &fx.outputs()).await.unwrap();
    let lease = lease_id(&r1);

    fx.binder.revoke(&r1).await.unwrap();

    let err = fx.login(&b1.credentials).unwrap_err();
    assert!(err.contains("Access denied"), "{err}");
    assert!(!fx.bao.lease_exists(&lease).await);
    assert_eq!(
        fx.bao
            .status(&format!("{}/metadata/bindings/inst-1/bind-1", fx.kv()))
            .await,
        404
    );
    assert!(matches!(
        fx.binder.stored_credentials(&r1).await,
        Err(BinderError::Unavailable(_))
    ));
    assert!(
        fx.login(&b2.credentials).is_ok(),
        "the other binding still works"
    );
    fx.binder.revoke(&r1).await.expect("revoke is idempotent");
    fx.cleanup().await;
}

#[tokio::test]
async fn remove_instance_leaves_no_lease_no_user_and_no_vault_path_of_the_instance() {
    let fx = Fx::new().await;
    let inst = instance("inst-1");
    // "inst-10" starts with "inst-1": removing inst-1 must not touch it.
    let other = instance("inst-10");
    let (_, r1) = fx.bind(&inst, "bind-1", &fx.outputs()).await.unwrap();
    let (_, r2) = fx.bind(&inst, "bind-2", &fx.outputs()).await.unwrap();
    // A binding the broker lost track of: remove_instance must still revoke it.
    let (b3, _) = fx.bind(&inst, "bind-3", &fx.outputs()).await.unwrap();
    let (bo, _) = fx.bind(&other, "bind-1", &fx.outputs()).await.unwrap();
    assert_eq!(fx.db.users_with_prefix(&fx.tag).len(), 4);

    // As deprovision does: revoke every known binding, then remove the instance.
    fx.binder.revoke(&r1).await.unwrap();
    fx.binder.revoke(&r2).await.unwrap();
    fx.binder
        .remove_instance(&inst, &fx.settings)
        .await
        .unwrap();

    let name = fx.name(&inst);
    assert!(
        fx.bao
            .leases_under(&format!("{}/creds/{name}/", fx.engine()))
            .await
            .is_empty()
    );
    assert!(fx.login(&b3.credentials).is_err());
    assert_eq!(
        fx.db.users_with_prefix(&fx.tag),
        vec![bo.credentials.get("username").unwrap().to_owned()],
        "only the other instance's user is left"
    );
    for path in [
        format!("{}/config/{name}", fx.engine()),
        format!("{}/roles/{name}", fx.engine()),
        format!("{}/metadata/instances/inst-1", fx.kv()),
        format!("{}/metadata/bindings/inst-1/bind-3", fx.kv()),
        format!("{}/metadata/bindings/inst-1?list=true", fx.kv()),
    ] {
        assert_eq!(fx.bao.status(&path).await, 404, "{path} is gone");
    }
    assert!(
        fx.login(&bo.credentials).is_ok(),
        "the other instance is untouched"
    );
    fx.binder
        .remove_instance(&inst, &fx.settings)
        .await
        .expect("remove_instance is idempotent");
    fx.cleanup().await;
}

#[tokio::test]
async fn moving_a_service_to_another_engine_mount_keeps_live_bindings_and_removes_both() {
    let fx = Fx::new().await;
    let inst = instance("inst-1");
    let (b1, _) = fx.bind(&inst, "bind-1", &fx.outputs()).await.unwrap();
    let moved = format!("{}-db2", fx.tag);
    fx.bao.mount(&moved, json!({"type": "database"})).await;
    let mut doc = config_doc(&fx.tag);
    doc["engine"]["mount"] = json!(moved);
    fx.bao.kv_put(&fx.kv(), "binders/mariadb", doc).await;

    let (b2, r2) = fx.bind(&inst, "bind-2", &fx.outputs()).await.unwrap();
    assert!(lease_id(&r2).starts_with(&format!("{moved}/creds/")));
    assert!(
        fx.login(&b1.credentials).is_ok(),
        "the earlier binding still works"
    );
    assert!(fx.login(&b2.credentials).is_ok());

    fx.binder
        .remove_instance(&inst, &fx.settings)
        .await
        .unwrap();
    assert!(fx.db.users_with_prefix(&fx.tag).is_empty());
    let name = fx.name(&inst);
    for engine in [fx.engine(), moved.clone()] {
        assert_eq!(fx.bao.status(&format!("{engine}/config/{name}")).await, 404);
        assert_eq!(fx.bao.status(&format!("{engine}/roles/{name}")).await, 404);
    }
    fx.bao
        .call("DELETE", &format!("sys/mounts/{moved}"), None)
        .await;
    fx.cleanup().await;
}

#[tokio::test]
async fn each_instance_gets_its_own_connection_and_role() {
    let fx = Fx::new().await;
    let (a, b) = (instance("inst-a"), instance("inst-b"));
    fx.bind(&a, "bind-1", &fx.outputs()).await.unwrap();
    fx.bind(&b, "bind-1", &fx.outputs()).await.unwrap();
    for inst in [&a, &b] {
        let name = fx.name(inst);
        let conn = fx
            .bao
            .ok("GET", &format!("{}/config/{name}", fx.engine()), None)
            .await;
        assert_eq!(conn["data"]["allowed_roles"], json!([name]));
        assert_eq!(conn["data"]["plugin_name"], json!("mysql-database-plugin"));
        assert!(
            !conn.to_string().contains(&fx.admin_password),
            "Vault does not echo the admin password"
        );
        let role = fx
            .bao
            .ok("GET", &format!("{}/roles/{name}", fx.engine()), None)
            .await;
        assert_eq!(role["data"]["db_name"], json!(name));
        assert_eq!(role["data"]["default_ttl"], json!(3600));
    }
    fx.cleanup().await;
}

#[tokio::test]
async fn a_missing_output_fails_the_bind_naming_it_and_creates_nothing() {
    let fx = Fx::new().await;
    let inst = instance("inst-1");
    let mut outputs = fx.outputs();
    outputs.remove("database");
    let err = fx.bind(&inst, "bind-1", &outputs).await.unwrap_err();
    assert!(
        matches!(&err, BinderError::MissingOutput(n) if n == "database"),
        "{err}"
    );
    assert!(err.to_string().contains("database"));
    let name = fx.name(&inst);
    assert_eq!(
        fx.bao
            .status(&format!("{}/config/{name}", fx.engine()))
            .await,
        404
    );
    assert_eq!(
        fx.bao
            .status(&format!("{}/metadata/instances/inst-1", fx.kv()))
            .await,
        404
    );
    fx.cleanup().await;
}

#[tokio::test]
async fn outputs_with_quotes_or_templates_cannot_reach_sql_or_the_connection_url() {
    let fx = Fx::new().await;
    let inst = instance("inst-1");
    for (output, value) in [
        ("database", "x`.* TO 'a'@'%'; DROP DATABASE mysql; --"),
        ("database", "{{password}}"),
        ("mysql_ip", "127.0.0.1:1)/?allowAllFiles=true#"),
        ("mysql_ip", "{{username}}"),
    ] {
        let mut outputs = fx.outputs();
        outputs.insert(output.into(), json!(value));
        let err = fx.bind(&inst, "bind-1", &outputs).await.unwrap_err();
        assert!(
            matches!(err, BinderError::Config(_)),
            "{output}={value}: {err}"
        );
        assert!(!err.to_string().contains(value), "{err}");
    }
    let name = fx.name(&inst);
    assert_eq!(
        fx.bao
            .status(&format!("{}/config/{name}", fx.engine()))
            .await,
        404
    );
    assert!(fx.db.users_with_prefix(&fx.tag).is_empty());
    fx.cleanup().await;
}

#[tokio::test]
async fn a_wrong_admin_password_is_rejected_and_leaves_nothing_half_created() {
    let fx = Fx::new().await;
    fx.bao
        .kv_put(
            &fx.kv(),
            "admin/mariadb",
            json!({"password": "wrong-password-1"}),
        )
        .await;
    let inst = instance("inst-1");
    let err = fx.bind(&inst, "bind-1", &fx.outputs()).await.unwrap_err();
    assert!(matches!(err, BinderError::Rejected(_)), "{err}");
    assert!(!err.to_string().contains("wrong-password-1"), "{err}");
    let name = fx.name(&inst);
    for path in [
        format!("{}/config/{name}", fx.engine()),
        format!("{}/roles/{name}", fx.engine()),
        format!("{}/metadata/instances/inst-1", fx.kv()),
    ] {
        assert_eq!(fx.bao.status(&path).await, 404, "{path}");
    }
    fx.cleanup().await;
}

#[tokio::test]
async fn renew_extends_the_lease_and_connect_checks_health_and_token() {
    let fx = Fx::new().await;
    fx.binder.connect().await.unwrap();
    let inst = instance("inst-1");
    let (bound, record) = fx.bind(&inst, "bind-1", &fx.outputs()).await.unwrap();
    let first = bound.lease.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = fx.binder.renew(&record).await.unwrap().unwrap();
    assert!(renewed.expires_at > first.expires_at);

    let mut settings = VaultSettings::new(
        need("VAULT_ADDR", "openbao"),
        SecretString::from("not-a-token".to_owned()),
    );
    settings.kv_mount = fx.kv();
    let bad = VaultBinder::new(settings).unwrap();
    let err = bad.connect().await.unwrap_err();
    assert!(matches!(err, BinderError::Rejected(_)), "{err}");
    assert!(!err.to_string().contains("not-a-token"));
    fx.cleanup().await;
}

/// Our own OpenBao dev server, killed on drop.
struct OwnBao {
    child: Child,
    addr: String,
    token: String,
    unseal_key: String,
    _dir: tempfile::TempDir,
}

impl Drop for OwnBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn own_bao() -> OwnBao {
    let bin = need("OPENBAO_BIN", "openbao");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = format!("root-{}", uuid::Uuid::new_v4().simple());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bao.log");
    let child = Command::new(&bin)
        .args(["server", "-dev", "-dev-no-store-token"])
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .arg(format!("-dev-root-token-id={token}"))
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let addr = format!("http://127.0.0.1:{port}");
    let mut own = OwnBao {
        child,
        addr: addr.clone(),
        token,
        unseal_key: String::new(),
        _dir: dir,
    };
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{addr}/v1/sys/health")).send().await
            && r.status().as_u16() == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The banner with the unseal key follows shortly after the listener.
    for _ in 0..100 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(key) = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Unseal Key: "))
        {
            own.unseal_key = key.trim().to_owned();
            return own;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the OpenBao dev server printed no unseal key")
}

impl OwnBao {
    fn cli(&self, args: &[&str]) {
        let out = Command::new(need("OPENBAO_BIN", "openbao"))
            .args(args)
            .env("BAO_ADDR", &self.addr)
            .env("VAULT_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.token)
            .env("VAULT_TOKEN", &self.token)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn a_sealed_openbao_makes_bind_unavailable_and_leaves_nothing_half_created() {
    let bao = own_bao().await;
    let fx = Fx::on(&bao.addr, &bao.token).await;
    let (a, b) = (instance("inst-a"), instance("inst-b"));
    let binding = BindingId::parse("bind-1").unwrap();
    let params = Map::new();
    let outputs = fx.outputs();
    let ctx = |instance| BindContext {
        instance,
        binding_id: &binding,
        parameters: &params,
        outputs: &outputs,
        settings: &fx.settings,
    };
    // Instance a is configured before the seal; instance b not at all.
    fx.binder.configure(&ctx(&a)).await.unwrap();

    bao.cli(&["operator", "seal"]);

    assert!(matches!(
        fx.binder.connect().await,
        Err(BinderError::Unavailable(_))
    ));
    let err = fx.binder.configure(&ctx(&b)).await.unwrap_err();
    assert!(matches!(err, BinderError::Unavailable(_)), "{err}");
    let err = fx.binder.credentials(&ctx(&a)).await.unwrap_err();
    assert!(matches!(err, BinderError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("sealed"), "{err}");

    bao.cli(&["operator", "unseal", &bao.unseal_key]);
    fx.binder.connect().await.unwrap();

    assert!(
        fx.bao
            .leases_under(&format!("{}/creds/", fx.engine()))
            .await
            .is_empty(),
        "no lease was issued"
    );
    assert!(
        fx.db.users_with_prefix(&fx.tag).is_empty(),
        "no user was made"
    );
    for path in [
        format!("{}/config/{}", fx.engine(), fx.name(&b)),
        format!("{}/metadata/instances/inst-b", fx.kv()),
        format!("{}/metadata/bindings/inst-a/bind-1", fx.kv()),
    ] {
        assert_eq!(fx.bao.status(&path).await, 404, "{path}");
    }
    // And the binder works again once unsealed.
    let bound = fx.binder.credentials(&ctx(&a)).await.unwrap();
    assert!(fx.login(&bound.credentials).is_ok());
    fx.cleanup().await;
}

mod through_the_broker {
    //! The binder inside the broker, with the SQLite store and the admin CLI: settings set by
    //! `cloudify-osb service set-binder` survive syncs, binds work, and neither the store's
    //! files nor the captured logs ever hold a generated password or the Vault token.

    use std::io::Write;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;
    use cloudify_osb::adapters::sqlite::SqliteStore;
    use cloudify_osb::domain::broker::{BindRequest, Broker, BrokerSettings, UnbindRequest};
    use cloudify_osb::domain::error::OrchestratorError;
    use cloudify_osb::domain::ids::DEFAULT_ID_NAMESPACE;
    use cloudify_osb::domain::ports::{
        BinderRegistry, Blueprint, DeploymentSpec, ExecutionState, Orchestrator, Store, Workflow,
    };
    use cloudify_osb::domain::sync::sync_catalog;

    use super::*;

    /// Cloudify as far as sync and bind need it: one blueprint, fixed outputs.
    pub(super) struct FakeCloudify {
        pub(super) outputs: Map<String, Value>,
    }

    fn not_here() -> OrchestratorError {
        OrchestratorError::Unavailable("not part of this test".into())
    }

    #[async_trait]
    impl Orchestrator for FakeCloudify {
        async fn ping(&self) -> Result<String, OrchestratorError> {
            Ok("7.0.0".into())
        }
        async fn blueprints(&self) -> Result<Vec<Blueprint>, OrchestratorError> {
            Ok(vec![Blueprint {
                id: "mariadb".into(),
                tenant: "default_tenant".into(),
                description: Some("MariaDB".into()),
                inputs: Map::new(),
                metadata: Map::new(),
                labels: Vec::new(),
                updated_at: Some("2026-01-01T00:00:00Z".into()),
            }])
        }
        async fn create_deployment(&self, _: &DeploymentSpec) -> Result<(), OrchestratorError> {
            Err(not_here())
        }
        async fn start_workflow(&self, _: &str, _: Workflow) -> Result<String, OrchestratorError> {
            Err(not_here())
        }
        async fn execution(&self, _: &str) -> Result<ExecutionState, OrchestratorError> {
            Err(not_here())
        }
        async fn running_execution(&self, _: &str) -> Result<Option<String>, OrchestratorError> {
            Ok(None)
        }
        async fn cancel_execution(&self, _: &str) -> Result<(), OrchestratorError> {
            Err(not_here())
        }
        async fn delete_deployment(&self, _: &str) -> Result<(), OrchestratorError> {
            Err(not_here())
        }
        async fn deployment_exists(&self, _: &str) -> Result<bool, OrchestratorError> {
            Ok(true)
        }
        async fn outputs(&self, _: &str) -> Result<Map<String, Value>, OrchestratorError> {
            Ok(self.outputs.clone())
        }
    }

    fn cli(args: &[&str]) -> String {
        // `$CLOUDIFY_OSB_BIN` wins, as in tests/e2e: checkouts sharing a target dir
        // overwrite each other's binaries.
        let bin = std::env::var("CLOUDIFY_OSB_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cloudify-osb").to_owned());
        let out = Command::new(bin)
            .args(args)
            .output()
            .expect("the cloudify-osb binary runs");
        assert!(
            out.status.success(),
            "cloudify-osb {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn store_bytes(db: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            if let Ok(bytes) = std::fs::read(Path::new(&p)) {
                all.extend(bytes);
            }
        }
        assert!(!all.is_empty(), "the SQLite store was written");
        all
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    #[tokio::test]
    async fn binds_through_the_broker_keep_passwords_out_of_the_store_and_the_logs() {
        let fx = Fx::new().await;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("broker.db");
        let store_arg = format!("sqlite:{}", db.display());
        let location = format!("{}/binders/mariadb", fx.kv());

        // Settings first (as an admin may, before the first sync), then two syncs.
        cli(&[
            "service",
            "set-binder",
            "mariadb",
            "--binder",
            "vault",
            "--config",
            &location,
            "--store",
            &store_arg,
        ]);
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());
        let cloudify = Arc::new(FakeCloudify {
            outputs: fx.outputs(),
        });
        for _ in 0..2 {
            sync_catalog(
                cloudify.as_ref(),
                store.as_ref(),
                &DEFAULT_ID_NAMESPACE,
                "default_tenant",
            )
            .await
            .unwrap();
        }
        let settings = store.service_settings("mariadb").await.unwrap().unwrap();
        assert_eq!(
            settings.binder_config, location,
            "settings survive the syncs"
        );
        let entry = store.catalog().await.unwrap().entries.remove(0);
        let plan_id = entry.service.plans[0].id.clone();

        let mut inst = instance("inst-1");
        inst.service_id = entry.service.id.clone();
        inst.plan_id = plan_id.clone();
        store.create_instance(&inst).await.unwrap();

        let mut binders = BinderRegistry::new();
        let mut vs = VaultSettings::new(
            need("VAULT_ADDR", "openbao"),
            SecretString::from(need("VAULT_TOKEN", "openbao")),
        );
        vs.kv_mount = fx.kv();
        vs.name_prefix = fx.tag.clone();
        binders.register(Arc::new(VaultBinder::new(vs).unwrap()));
        let broker = Broker::new(
            store.clone(),
            Some(cloudify.clone() as Arc<dyn Orchestrator>),
            binders,
            BrokerSettings::default(),
        );

        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let request = || BindRequest {
            service_id: Some(entry.service.id.clone()),
            plan_id: Some(plan_id.clone()),
            context: None,
            bind_resource: None,
            app_guid: None,
            parameters: None,
            predecessor_binding_id: None,
        };
        let mut passwords = Vec::new();
        for b in ["bind-1", "bind-2"] {
            let id = BindingId::parse(b).unwrap();
            let t0 = std::time::Instant::now();
            let created = broker.bind(&inst.id, &id, request()).await.unwrap();
            let t_bind = t0.elapsed();
            let creds = created.body.credentials.clone();
            assert!(fx.login(&creds).is_ok());
            let t0 = std::time::Instant::now();
            let again = broker.bind(&inst.id, &id, request()).await.unwrap();
            eprintln!(
                "timing: {b}: bind {t_bind:?}, identical re-PUT {:?}",
                t0.elapsed()
            );
            assert_eq!(
                again.body.credentials, creds,
                "an identical re-PUT returns the same"
            );
            let fetched = broker.get_binding(&inst.id, &id).await.unwrap();
            assert_eq!(fetched.credentials, creds);
            passwords.push(creds.get("password").unwrap().to_owned());
        }
        let t0 = std::time::Instant::now();
        broker
            .unbind(
                &inst.id,
                &BindingId::parse("bind-1").unwrap(),
                UnbindRequest {
                    service_id: entry.service.id.clone(),
                    plan_id: plan_id.clone(),
                },
            )
            .await
            .unwrap();
        eprintln!("timing: unbind {:?}", t0.elapsed());
        drop(_guard);

        let shown = cli(&["service", "show", "mariadb", "--store", &store_arg]);
        assert!(shown.contains(&location), "{shown}");

        let bytes = store_bytes(&db);
        let logged = logs.0.lock().unwrap().clone();
        assert!(!logged.is_empty(), "logs were captured");
        let token = need("VAULT_TOKEN", "openbao");
        for (what, secret) in passwords
            .iter()
            .map(|p| ("a generated password", p.as_str()))
            .chain([
                ("the admin password", fx.admin_password.as_str()),
                ("the Vault token", token.as_str()),
            ])
        {
            assert!(!contains(&bytes, secret), "the SQLite store holds {what}");
            assert!(!contains(&logged, secret), "the logs hold {what}");
        }
        fx.cleanup().await;
    }

    #[tokio::test]
    async fn a_sealed_vault_makes_the_brokers_bind_fail_as_vault_unavailable_and_keeps_no_record() {
        let bao = own_bao().await;
        let fx = Fx::on(&bao.addr, &bao.token).await;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let cloudify = Arc::new(FakeCloudify {
            outputs: fx.outputs(),
        });
        // Settings before the sync: the sync makes offerings with a binder bindable.
        store.put_service_settings(&fx.settings).await.unwrap();
        sync_catalog(
            cloudify.as_ref(),
            store.as_ref(),
            &DEFAULT_ID_NAMESPACE,
            "default_tenant",
        )
        .await
        .unwrap();
        let entry = store.catalog().await.unwrap().entries.remove(0);
        let plan_id = entry.service.plans[0].id.clone();
        let mut inst = instance("inst-1");
        inst.service_id = entry.service.id.clone();
        inst.plan_id = plan_id.clone();
        store.create_instance(&inst).await.unwrap();
        let mut binders = BinderRegistry::new();
        let mut vs = VaultSettings::new(bao.addr.clone(), SecretString::from(bao.token.clone()));
        vs.kv_mount = fx.kv();
        vs.name_prefix = fx.tag.clone();
        binders.register(Arc::new(VaultBinder::new(vs).unwrap()));
        let broker = Broker::new(
            store.clone(),
            Some(cloudify.clone() as Arc<dyn Orchestrator>),
            binders,
            BrokerSettings::default(),
        );

        bao.cli(&["operator", "seal"]);
        let id = BindingId::parse("bind-1").unwrap();
        let err = broker
            .bind(
                &inst.id,
                &id,
                BindRequest {
                    service_id: Some(entry.service.id.clone()),
                    plan_id: Some(plan_id.clone()),
                    context: None,
                    bind_resource: None,
                    app_guid: None,
                    parameters: None,
                    predecessor_binding_id: None,
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                cloudify_osb::domain::broker::BrokerError::DependencyUnavailable {
                    dependency: cloudify_osb::domain::error::Dependency::Vault,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            store.binding(&inst.id, &id).await.unwrap().is_none(),
            "the failed bind left no binding record"
        );
        bao.cli(&["operator", "unseal", &bao.unseal_key]);
        assert!(fx.db.users_with_prefix(&fx.tag).is_empty());
        assert_eq!(
            fx.bao
                .status(&format!("{}/metadata/instances/inst-1", fx.kv()))
                .await,
            404
        );
        fx.cleanup().await;
    }
}

/// `cloudify-osb reconcile` (issue 12) on OpenBao: a lease under the broker's role that no
/// binding records (here: the store is empty) is reported, and revoked with `--fix`.
#[tokio::test]
async fn reconcile_finds_an_orphan_lease_and_fix_revokes_it() {
    let fx = Fx::new().await;
    let inst = instance("inst-orphan");
    let (_bound, record) = fx.bind(&inst, "bind-orphan", &fx.outputs()).await.unwrap();
    let lease = lease_id(&record);
    assert!(fx.bao.lease_exists(&lease).await);
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("empty.db").display());
    let bin = std::env::var("CLOUDIFY_OSB_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cloudify-osb").to_owned());
    let run = |fix: bool| {
        let mut cmd = Command::new(&bin);
        cmd.args(["reconcile", "--json", "--store", &store])
            .args(["--vault-kv-mount", &fx.kv()])
            .env_remove("CLOUDIFY_URL");
        if fix {
            cmd.arg("--fix");
        }
        let out = cmd.output().expect("the cloudify-osb binary runs");
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.success(), report)
    };
    let (clean, report) = run(false);
    assert!(!clean, "drift exits non-zero: {report}");
    assert_eq!(report["orphan_leases"], json!([lease]), "{report}");
    assert!(
        fx.bao.lease_exists(&lease).await,
        "a report changes nothing"
    );
    let (clean, report) = run(true);
    assert!(clean, "{report}");
    assert_eq!(report["fixed"], json!([format!("revoked lease {lease}")]));
    assert!(
        !fx.bao.lease_exists(&lease).await,
        "the orphan lease is revoked"
    );
    let (clean, report) = run(false);
    assert!(clean && report["orphan_leases"] == json!([]), "{report}");
    fx.cleanup().await;
}
mod concurrent;
mod legacy;
mod renewal;
mod rotation;

mod auth;
