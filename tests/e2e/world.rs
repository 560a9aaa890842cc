//! A private world for the race and fault tests (issue 13): the built `cloudify-osb serve`
//! with the Vault binder, a private `cloudify-sim`, OpenBao (the shared dev server, or one
//! the test starts with raft storage so that it can be sealed, stopped and started again),
//! the shared MariaDB, and a SQLite store or a DynamoDB table on moto (the shared one, or one
//! the test starts so that it can stop it). Every name carries the test's tag: MariaDB
//! database `<tag>_app`, admin `<tag>_adm`, generated users `<tag>_…`, Vault mounts
//! `<tag>-db` and `<tag>-kv`, blueprint `<tag>-mariadb`, table `<tag>`; assertions look
//! only at what carries it (DESIGN.md §8).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::lifecycle::sim::Sim;

pub const USER: &str = "platform";
pub const PASSWORD: &str = "broker-pw-3e7a90c1";

pub fn need(var: &str, from: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set: this test needs {from}. Run tests/run, or \
             `TEST_STATE=/tmp/s bash tests/services/{from}.sh start` and source /tmp/s/*.env"
        ),
    }
}

pub fn broker_bin() -> String {
    std::env::var("CLOUDIFY_OSB_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_cloudify-osb").to_owned())
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn tag(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}{}", &id[..7])
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(64)
        .build()
        .expect("client")
}

// --- MariaDB ---------------------------------------------------------------------------------

/// The MariaDB server of `MARIADB_URL` (`mysql://root[:password]@127.0.0.1:PORT`).
pub struct MariaDb {
    pub host: String,
    pub port: String,
    root: String,
    root_password: String,
}

impl MariaDb {
    pub fn from_env() -> Self {
        let url = need("MARIADB_URL", "mariadb");
        let rest = url
            .strip_prefix("mysql://")
            .expect("MARIADB_URL is mysql://…");
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

    /// Runs SQL as `user` with the `mariadb` client; stdout or the client's error.
    pub fn run(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "--protocol=TCP", "-N", "-B"])
            .arg("--connect-timeout=5")
            .arg(format!("-h{}", self.host))
            .arg(format!("-P{}", self.port))
            .arg(format!("-u{user}"))
            .args(["-e", sql])
            .env("MYSQL_PWD", password)
            .stdin(Stdio::null())
            .output()
            .expect("the `mariadb` client runs");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    pub fn root_sql(&self, sql: &str) -> String {
        self.run(&self.root, &self.root_password, sql)
            .unwrap_or_else(|e| panic!("root SQL failed: {e}\n{sql}"))
    }

    /// Generated users of `tag` (the admin `<tag>_adm` excluded).
    pub fn users(&self, tag: &str) -> Vec<String> {
        self.root_sql(&format!(
            "SELECT User FROM mysql.user WHERE User LIKE '{tag}\\_%' AND User <> '{tag}_adm'"
        ))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
    }
}

// --- OpenBao ---------------------------------------------------------------------------------

/// Raw calls to OpenBao for setup and checks.
#[derive(Clone)]
pub struct Bao {
    http: reqwest::Client,
    pub addr: String,
    pub token: String,
}

impl Bao {
    pub fn new(addr: &str, token: &str) -> Self {
        Self {
            http: client(Duration::from_secs(30)),
            addr: addr.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    pub fn shared() -> Self {
        Self::new(
            &need("VAULT_ADDR", "openbao"),
            &need("VAULT_TOKEN", "openbao"),
        )
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = Method::from_bytes(method.as_bytes()).expect("method");
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

    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, reply) = self.call(method, path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {reply}"
        );
        reply
    }

    /// KV v2 write, retried while a fresh mount upgrades.
    pub async fn kv_put(&self, mount: &str, path: &str, data: Value) {
        for _ in 0..100 {
            let (status, reply) = self
                .call(
                    "POST",
                    &format!("{mount}/data/{path}"),
                    Some(json!({ "data": data })),
                )
                .await;
            if (200..300).contains(&status) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = reply;
        }
        panic!("KV mount {mount} never became writable");
    }

    /// Every lease under `prefix` (e.g. `<tag>-db/creds/`), listed recursively through
    /// `sys/leases/lookup`.
    pub async fn leases_under(&self, prefix: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut todo = vec![prefix.to_owned()];
        while let Some(p) = todo.pop() {
            let (status, body) = self
                .call("LIST", &format!("sys/leases/lookup/{p}"), None)
                .await;
            match status {
                404 => {}
                200 => {
                    for k in body["data"]["keys"].as_array().into_iter().flatten() {
                        let k = k.as_str().unwrap_or_default();
                        if k.ends_with('/') {
                            todo.push(format!("{p}{k}"));
                        } else {
                            out.push(format!("{p}{k}"));
                        }
                    }
                }
                other => panic!("lease list {p} answered {other}: {body}"),
            }
        }
        out.sort();
        out
    }

    /// Whether `path` answers 200 (KV metadata, engine config…).
    pub async fn exists(&self, path: &str) -> bool {
        let (status, body) = self.call("GET", path, None).await;
        match status {
            200 => true,
            404 => false,
            other => panic!("GET {path} answered {other}: {body}"),
        }
    }

    /// KV v2 keys under `path` of `mount` (empty when none).
    pub async fn kv_list(&self, mount: &str, path: &str) -> Vec<String> {
        let (status, body) = self
            .call("LIST", &format!("{mount}/metadata/{path}"), None)
            .await;
        match status {
            404 => Vec::new(),
            200 => body["data"]["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
            other => panic!("KV list {mount}/{path} answered {other}: {body}"),
        }
    }
}

/// An OpenBao server of the test's own, with integrated (raft) storage in a temp dir (so it
/// keeps its state across a stop and start) on a fixed loopback port; initialised with one unseal key. Killed on drop.
pub struct OwnBao {
    child: Option<Child>,
    pub addr: String,
    pub token: String,
    unseal_key: String,
    config: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for OwnBao {
    fn drop(&mut self) {
        self.stop();
    }
}

impl OwnBao {
    pub async fn start() -> OwnBao {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let cluster = free_port();
        let config = dir.path().join("bao.hcl");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("data dir");
        std::fs::write(
            &config,
            format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n1\"\n}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  \
                 cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"http://127.0.0.1:{port}\"\n\
                 cluster_addr = \"http://127.0.0.1:{cluster}\"\n",
                data.display()
            ),
        )
        .expect("write the OpenBao config");
        let mut own = OwnBao {
            child: None,
            addr: format!("http://127.0.0.1:{port}"),
            token: String::new(),
            unseal_key: String::new(),
            config,
            dir,
        };
        own.spawn().await;
        let http = client(Duration::from_secs(30));
        let init: Value = http
            .put(format!("{}/v1/sys/init", own.addr))
            .json(&json!({"secret_shares": 1, "secret_threshold": 1}))
            .send()
            .await
            .expect("sys/init answers")
            .json()
            .await
            .expect("sys/init JSON");
        own.unseal_key = init["keys"][0].as_str().expect("an unseal key").to_owned();
        own.token = init["root_token"]
            .as_str()
            .expect("a root token")
            .to_owned();
        own.unseal().await;
        own
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("bao.log"))
            .expect("log file");
        let child = Command::new(need("OPENBAO_BIN", "openbao"))
            .arg("server")
            .arg(format!("-config={}", self.config.display()))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start bao server");
        self.child = Some(child);
        let http = client(Duration::from_secs(5));
        for _ in 0..300 {
            // Any answer (501 uninitialised, 503 sealed, 200) means it listens.
            if http
                .get(format!("{}/v1/sys/health", self.addr))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("OpenBao did not listen on {} within 30 s", self.addr);
    }

    pub async fn unseal(&self) {
        let http = client(Duration::from_secs(30));
        let reply: Value = http
            .put(format!("{}/v1/sys/unseal", self.addr))
            .json(&json!({"key": self.unseal_key}))
            .send()
            .await
            .expect("sys/unseal answers")
            .json()
            .await
            .expect("sys/unseal JSON");
        assert_eq!(reply["sealed"], false, "{reply}");
        for _ in 0..300 {
            if let Ok(r) = http
                .get(format!("{}/v1/sys/health", self.addr))
                .send()
                .await
                && r.status().as_u16() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("OpenBao not active after unseal");
    }

    /// `bao operator seal`.
    pub fn seal(&self) {
        let out = Command::new(need("OPENBAO_BIN", "openbao"))
            .args(["operator", "seal"])
            .env("BAO_ADDR", &self.addr)
            .env("VAULT_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.token)
            .env("VAULT_TOKEN", &self.token)
            .output()
            .expect("bao runs");
        assert!(
            out.status.success(),
            "bao operator seal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Kills the server (its storage stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and storage, and unseals it.
    pub async fn restart(&mut self) {
        self.spawn().await;
        self.unseal().await;
    }
}

// --- moto ------------------------------------------------------------------------------------

/// A moto server of the test's own (tests/services/moto_serial.py), on a fixed loopback
/// port. It keeps its state in memory only: `pause` (SIGSTOP) and `resume` (SIGCONT) stop
/// it without losing the table; `kill` loses it. Killed on drop.
pub struct OwnMoto {
    child: Child,
    pub endpoint: String,
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OwnMoto {
    pub async fn start() -> OwnMoto {
        let python = need("MOTO_PYTHON", "moto");
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/services/moto_serial.py");
        let child = Command::new(python)
            .args([script, "127.0.0.1", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("start moto");
        // Owned at once: a failed start below kills it on drop.
        let moto = OwnMoto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let http = client(Duration::from_secs(5));
        for _ in 0..300 {
            if http
                .get(format!("{}/moto-api/", moto.endpoint))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto did not answer on {} within 30 s", moto.endpoint);
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    /// SIGSTOP: connections are accepted by the kernel, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

// --- the world -------------------------------------------------------------------------------

/// Where the broker keeps its state.
pub enum StoreKind<'a> {
    Sqlite,
    /// A table on the shared moto (`AWS_ENDPOINT_URL_DYNAMODB`).
    SharedMoto,
    /// A table on this moto.
    Moto(&'a OwnMoto),
}

/// One test's servers and names.
pub struct World {
    pub tag: String,
    pub sim: Sim,
    pub db: MariaDb,
    pub bao: Bao,
    /// `--store` of the broker.
    pub store: String,
    /// The DynamoDB endpoint, for a `dynamodb:` store.
    pub endpoint: Option<String>,
    pub database: String,
    pub admin_password: String,
    pub dir: tempfile::TempDir,
    pub service: (String, String),
}

fn blueprint(tag: &str) -> Value {
    json!({
        "id": format!("{tag}-mariadb"),
        "description": "races and faults: a database on the test MariaDB",
        "state": "uploaded",
        "plan": {
            "inputs": {
                "mysql_host": {"type": "string", "default": "127.0.0.1"},
                "mysql_port": {"type": "integer"},
                "database": {"type": "string"}
            },
            "outputs": {
                "mysql_ip": {"value": {"concat": [{"get_input": "mysql_host"}, ":",
                                                  {"get_input": "mysql_port"}]}},
                "mysql_host": {"value": {"get_input": "mysql_host"}},
                "mysql_port": {"value": {"get_input": "mysql_port"}},
                "database": {"value": {"get_input": "database"}}
            },
            "metadata": {}
        }
    })
}

fn binder_config(tag: &str) -> Value {
    json!({
        "version": 1,
        "engine": {"mount": format!("{tag}-db"), "plugin": "mysql-database-plugin"},
        "connection": {
            "url": "{{username}}:{{password}}@tcp({{ outputs.mysql_ip }})/",
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
                "host": "{{ outputs.mysql_host }}",
                "port": "{{ outputs.mysql_port }}",
                "database": "{{ outputs.database }}"
            }
        },
        "outputs": ["mysql_ip"]
    })
}

impl World {
    /// Sets everything up on the shared OpenBao.
    pub async fn new(prefix: &str, store: StoreKind<'_>) -> World {
        Self::on(prefix, store, Bao::shared()).await
    }

    /// Sets everything up on OpenBao `bao`: MariaDB database and admin, Vault mounts,
    /// admin password and binder config, the simulator blueprint, the store, the binder
    /// settings and one catalog sync.
    pub async fn on(prefix: &str, store: StoreKind<'_>, bao: Bao) -> World {
        let tag = tag(prefix);
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
        bao.ok(
            "POST",
            &format!("sys/mounts/{tag}-db"),
            Some(json!({"type": "database"})),
        )
        .await;
        bao.ok(
            "POST",
            &format!("sys/mounts/{tag}-kv"),
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        )
        .await;
        let kv = format!("{tag}-kv");
        bao.kv_put(&kv, "admin/mariadb", json!({"password": admin_password}))
            .await;
        bao.kv_put(&kv, "binders/mariadb", binder_config(&tag))
            .await;

        let sim = Sim::start("7.0", 0.2);
        sim.add_blueprint(blueprint(&tag)).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, endpoint) = match store {
            StoreKind::Sqlite => (
                format!("sqlite:{}", dir.path().join("broker.db").display()),
                None,
            ),
            StoreKind::SharedMoto => (
                format!("dynamodb:{tag}"),
                Some(need("AWS_ENDPOINT_URL_DYNAMODB", "moto")),
            ),
            StoreKind::Moto(m) => (format!("dynamodb:{tag}"), Some(m.endpoint.clone())),
        };
        let world = World {
            tag: tag.clone(),
            sim,
            db,
            bao,
            store,
            endpoint,
            database,
            admin_password,
            dir,
            service: (String::new(), String::new()),
        };
        if world.endpoint.is_some() {
            world.cli(&["store", "create-table", &world.store.clone()]);
        }
        world.cli(&[
            "service",
            "set-binder",
            &format!("{tag}-mariadb"),
            "--binder",
            "vault",
            "--config",
            &format!("{kv}/binders/mariadb"),
            "--store",
            &world.store.clone(),
        ]);
        let mut sync = vec!["sync".to_owned()];
        sync.extend(world.cloudify_args());
        let sync: Vec<&str> = sync.iter().map(String::as_str).collect();
        world.cli(&sync);
        world
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .env_remove("CLOUDIFY_URL");
        if let Some(e) = &self.endpoint {
            cmd.env("AWS_ENDPOINT_URL_DYNAMODB", e)
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env_remove("AWS_SESSION_TOKEN")
                .env_remove("AWS_PROFILE");
        }
    }

    /// Runs `cloudify-osb ARGS`; asserts success; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut cmd = Command::new(broker_bin());
        cmd.args(args);
        self.env(&mut cmd);
        let out = cmd.output().expect("cloudify-osb runs");
        assert!(
            out.status.success(),
            "cloudify-osb {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn cloudify_args(&self) -> Vec<String> {
        [
            "--store",
            &self.store,
            "--cloudify-url",
            &self.sim.url,
            "--cloudify-username",
            "admin",
            "--cloudify-password",
            "admin",
            "--log-format",
            "json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// `cloudify-osb serve` on this world, with the Vault binder; `extra` flags appended.
    pub async fn serve(&mut self, extra: &[&str]) -> Serve {
        let port = free_port();
        let log = self.dir.path().join(format!("serve-{port}.log"));
        let mut cmd = Command::new(broker_bin());
        cmd.arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--username", USER, "--password", PASSWORD])
            .args(self.cloudify_args())
            .args([
                "--vault-addr",
                &self.bao.addr,
                "--vault-token",
                &self.bao.token,
            ])
            .args(["--vault-kv-mount", &format!("{}-kv", self.tag)])
            .args(["--renew-interval", "1h"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        self.env(&mut cmd);
        let child = cmd.spawn().expect("start cloudify-osb serve");
        let serve = Serve {
            url: format!("http://127.0.0.1:{port}"),
            child,
            http: client(Duration::from_secs(90)),
            log,
        };
        wait_healthy(&serve.http, &serve.url, &serve.log).await;
        if self.service.0.is_empty() {
            let (status, body) = serve.call(Method::GET, "/v2/catalog", None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let name = format!("{}-mariadb", self.tag);
            let s = body["services"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|s| s["name"] == name.as_str())
                .unwrap_or_else(|| panic!("{name} is not in the catalog: {body}"));
            assert_eq!(s["bindable"], true, "{s}");
            self.service = (
                s["id"].as_str().expect("service id").to_owned(),
                s["plans"][0]["id"].as_str().expect("plan id").to_owned(),
            );
        }
        serve
    }

    /// The provision body: the instance's database is this world's.
    pub fn provision_body(&self) -> Value {
        json!({
            "service_id": self.service.0,
            "plan_id": self.service.1,
            "organization_guid": "org",
            "space_guid": "space",
            "parameters": {
                "mysql_host": self.db.host,
                "mysql_port": self.db.port.parse::<u16>().expect("port"),
                "database": self.database,
            }
        })
    }

    pub fn bind_body(&self) -> Value {
        json!({"service_id": self.service.0, "plan_id": self.service.1})
    }

    pub fn ids_query(&self) -> String {
        format!("service_id={}&plan_id={}", self.service.0, self.service.1)
    }

    /// Provisions `id` through `serve` and waits for it to succeed.
    pub async fn provisioned(&self, serve: &Serve, id: &str) {
        let (status, body) = serve
            .call(
                Method::PUT,
                &format!("/v2/service_instances/{id}?accepts_incomplete=true"),
                Some(self.provision_body()),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "provision {id}: {body}");
        let (status, last) = serve.settle(id).await;
        assert_eq!(
            (status, last["state"].clone()),
            (StatusCode::OK, json!("succeeded")),
            "provision {id}: {last}"
        );
    }

    /// Every lease under this world's database engine.
    pub async fn leases(&self) -> Vec<String> {
        self.bao
            .leases_under(&format!("{}-db/creds/", self.tag))
            .await
    }

    pub fn users(&self) -> Vec<String> {
        self.db.users(&self.tag)
    }

    /// Vault paths the broker keeps for `instance`: the KV records and the engine's
    /// connection and role (all must be gone after deprovision).
    pub async fn vault_paths_of(&self, instance: &str) -> Vec<String> {
        let kv = format!("{}-kv", self.tag);
        let mut left = Vec::new();
        for k in self.bao.kv_list(&kv, "instances/").await {
            if k.trim_end_matches('/') == instance {
                left.push(format!("{kv}/instances/{k}"));
            }
        }
        for k in self
            .bao
            .kv_list(&kv, &format!("bindings/{instance}/"))
            .await
        {
            left.push(format!("{kv}/bindings/{instance}/{k}"));
        }
        let name = format!("osb-{instance}");
        for path in [
            format!("{}-db/config/{name}", self.tag),
            format!("{}-db/roles/{name}", self.tag),
        ] {
            if self.bao.exists(&path).await {
                left.push(path);
            }
        }
        left
    }

    /// Logs in with bound credentials and reads the instance's database.
    pub fn login(&self, credentials: &Value) -> Result<String, String> {
        self.db.run(
            credentials["username"].as_str().unwrap_or_default(),
            credentials["password"].as_str().unwrap_or_default(),
            &format!("SELECT name FROM `{}`.items", self.database),
        )
    }

    /// Removes what setup made (best effort; the servers are shared).
    pub async fn cleanup(self) {
        for m in [format!("{}-db", self.tag), format!("{}-kv", self.tag)] {
            self.bao
                .call("DELETE", &format!("sys/mounts/{m}"), None)
                .await;
        }
        let mut sql = format!(
            "DROP DATABASE IF EXISTS `{}`; DROP USER IF EXISTS '{}_adm'@'%';",
            self.database, self.tag
        );
        for u in self.users() {
            sql.push_str(&format!("DROP USER IF EXISTS '{u}'@'%';"));
        }
        self.db.root_sql(&sql);
    }
}

// --- the broker --------------------------------------------------------------------------------

/// A running `cloudify-osb serve`, killed on drop; stderr captured in its log file.
pub struct Serve {
    pub url: String,
    child: Child,
    pub http: reqwest::Client,
    pub log: PathBuf,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the `cloudify-osb serve` at `url` answers `/healthz` (30 s at most); otherwise
/// fails the test, showing the log it writes to `log`. Every e2e module starting a serve uses it.
pub async fn wait_healthy(http: &reqwest::Client, url: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{url}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "cloudify-osb serve at {url} did not answer /healthz; log: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Serve {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A call with the platform's credentials; the answer must be JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .basic_auth(USER, Some(PASSWORD))
            .header("X-Broker-API-Version", "2.17");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("the broker gave no answer to {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON answer {status} to {path}: {text}"));
        (status, value)
    }

    pub async fn bind(&self, world: &World, instance: &str, binding: &str) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/v2/service_instances/{instance}/service_bindings/{binding}"),
            Some(world.bind_body()),
        )
        .await
    }

    pub async fn unbind(
        &self,
        world: &World,
        instance: &str,
        binding: &str,
    ) -> (StatusCode, Value) {
        self.call(
            Method::DELETE,
            &format!(
                "/v2/service_instances/{instance}/service_bindings/{binding}?{}",
                world.ids_query()
            ),
            None,
        )
        .await
    }

    pub async fn deprovision(&self, world: &World, id: &str) -> (StatusCode, Value) {
        self.call(
            Method::DELETE,
            &format!(
                "/v2/service_instances/{id}?accepts_incomplete=true&{}",
                world.ids_query()
            ),
            None,
        )
        .await
    }

    /// Polls last_operation until it leaves `in progress` (or 410 after a delete).
    pub async fn settle(&self, id: &str) -> (StatusCode, Value) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let (status, body) = self
                .call(
                    Method::GET,
                    &format!("/v2/service_instances/{id}/last_operation"),
                    None,
                )
                .await;
            if status != StatusCode::OK || body["state"] != "in progress" {
                return (status, body);
            }
            assert!(Instant::now() < deadline, "{id} still in progress: {body}");
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The platform's deprovision: DELETE and poll, again, until the broker says 410.
    pub async fn deprovision_until_gone(&self, world: &World, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, body) = self.deprovision(world, id).await;
            match status {
                StatusCode::GONE => return,
                StatusCode::OK | StatusCode::ACCEPTED | StatusCode::UNPROCESSABLE_ENTITY => {
                    self.settle(id).await;
                }
                other => panic!("deprovision {id}: {other} {body}; log: {}", self.log_text()),
            }
            assert!(Instant::now() < deadline, "{id} never went away");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Runs futures concurrently on the current task.
pub async fn join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set: Vec<_> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}

/// Whether `haystack` contains `needle` (bytes).
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

/// The SQLite store's files (database, WAL, journal) as one byte string.
pub fn sqlite_bytes(db: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        if let Ok(bytes) = std::fs::read(Path::new(&p)) {
            all.extend(bytes);
        }
    }
    all
}
