"""The OSB lifecycle through the Lambda functions under `cargo lambda watch`
(tests/stages/40-lambda-e2e.sh starts everything and calls the phases of this script).

Phases (argv[1]):
  setup    TAG   MariaDB database and admin user, OpenBao mounts, admin password and binder
                 config, the simulator blueprint, and the Secrets Manager secrets on moto;
                 prints `export K=V` lines for the functions' environment.
  run      TAG URL  catalog → provision → poll → get instance → update (context) → bind →
                 log in with the credentials → binding last_operation → get binding →
                 unbind → the login fails → deprovision → poll: every route's function.
  cleanup  TAG   removes what setup made (best effort).

Talks only to the loopback servers named by the harness env (MARIADB_URL, VAULT_ADDR,
VAULT_TOKEN, CLOUDIFY_SIM_URL, AWS_ENDPOINT_URL_DYNAMODB); every name carries TAG.
Standard library only; every request has a timeout.
"""

import base64
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

BROKER_USER = "platform"
REGION = "us-east-1"
API_VERSION = "2.17"
# The first request to each function starts it (`cargo run` of an already built binary).
FIRST_CALL_TIMEOUT = 300
CALL_TIMEOUT = 60


def need(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"lambda e2e: {name} is not set (tests/run starts the servers and sets it)")
    return value


def broker_password(tag):
    return f"pw-{tag}-broker"


def admin_password(tag):
    return f"A{tag}-adm-9z"


def http(method, url, body=None, headers=None, timeout=CALL_TIMEOUT):
    """(status, parsed JSON or text). Raises only on transport errors."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def expect(status, body, wanted, what):
    if status not in (wanted if isinstance(wanted, tuple) else (wanted,)):
        sys.exit(f"lambda e2e: {what}: expected {wanted}, got {status}: {body}")


# --- MariaDB -------------------------------------------------------------------------------


def mariadb_target():
    url = need("MARIADB_URL")
    rest = url.removeprefix("mysql://").rstrip("/")
    userinfo, _, hostport = rest.rpartition("@")
    user, _, password = (userinfo or "root").partition(":")
    host, _, port = hostport.partition(":")
    return host, port or "3306", user, password


def sql(user, password, statement, check=True):
    host, port, _, _ = mariadb_target()
    out = subprocess.run(
        ["mariadb", "--no-defaults", "--protocol=TCP", "-N", "-B", "--connect-timeout=5",
         f"-h{host}", f"-P{port}", f"-u{user}", "-e", statement],
        env={**os.environ, "MYSQL_PWD": password},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
    )
    if check and out.returncode != 0:
        sys.exit(f"lambda e2e: SQL as {user} failed: {out.stderr.strip()}")
    return out


def root_sql(statement, check=True):
    _, _, user, password = mariadb_target()
    return sql(user, password, statement, check)


# --- OpenBao ---------------------------------------------------------------------------------


def vault(method, path, body=None, ok=(200, 204)):
    status, reply = http(method, f"{need('VAULT_ADDR')}/v1/{path}", body,
                         {"X-Vault-Token": need("VAULT_TOKEN")})
    expect(status, reply, ok, f"Vault {method} {path}")
    return reply


def binder_config(tag):
    return {
        "version": 1,
        "engine": {"mount": f"{tag}-db", "plugin": "mysql-database-plugin"},
        "connection": {
            "url": "{{username}}:{{password}}@tcp({{ outputs.mysql_ip }})/",
            "username": f"{tag}_adm",
            "password_ref": {"path": f"{tag}-kv/admin/mariadb", "key": "password"},
            "username_template": f'{{{{ printf "{tag}_%s" (random 12) }}}}',
        },
        "role": {
            "creation_statements": [
                "CREATE USER '{{name}}'@'%' IDENTIFIED BY '{{password}}'",
                "GRANT SELECT ON `{{ outputs.database }}`.* TO '{{name}}'@'%'",
            ],
            "revocation_statements": ["DROP USER IF EXISTS '{{name}}'@'%'"],
            "default_ttl": "1h",
            "max_ttl": "2h",
        },
        "credentials": {
            "type": "mysql",
            "uri_scheme": "mysql",
            "values": {
                "host": "{{ outputs.mysql_host }}",
                "port": "{{ outputs.mysql_port }}",
                "database": "{{ outputs.database }}",
            },
        },
        "outputs": ["mysql_ip"],
    }


# --- cloudify-sim ----------------------------------------------------------------------------


def blueprint(tag):
    return {
        "id": f"{tag}-mariadb",
        "description": "lambda e2e: a database on the test MariaDB",
        "state": "uploaded",
        "plan": {
            "inputs": {
                "mysql_host": {"type": "string", "default": "127.0.0.1"},
                "mysql_port": {"type": "integer"},
                "database": {"type": "string"},
            },
            "outputs": {
                "mysql_ip": {"value": {"concat": [{"get_input": "mysql_host"}, ":",
                                                  {"get_input": "mysql_port"}]}},
                "mysql_host": {"value": {"get_input": "mysql_host"}},
                "mysql_port": {"value": {"get_input": "mysql_port"}},
                "database": {"value": {"get_input": "database"}},
            },
            "metadata": {},
        },
    }


# --- Secrets Manager on moto -----------------------------------------------------------------


def create_secret(name, value):
    """CreateSecret through moto's one endpoint; returns the ARN."""
    endpoint = need("AWS_ENDPOINT_URL_DYNAMODB")
    day = time.strftime("%Y%m%d", time.gmtime())
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "secretsmanager.CreateSecret",
        # moto routes by the credential scope's service; it does not check signatures.
        "Authorization": f"AWS4-HMAC-SHA256 Credential=test/{day}/{REGION}/secretsmanager/"
                         "aws4_request, SignedHeaders=host, Signature=0",
    }
    body = json.dumps({"Name": name, "SecretString": json.dumps(value)}).encode()
    status, reply = http("POST", endpoint, body, headers)
    expect(status, reply, 200, f"CreateSecret {name}")
    return reply["ARN"]


# --- phases ----------------------------------------------------------------------------------


def setup(tag):
    host, port, _, _ = mariadb_target()
    database = f"{tag}_app"
    root_sql(
        f"CREATE DATABASE `{database}`; "
        f"CREATE TABLE `{database}`.items (name VARCHAR(40)); "
        f"INSERT INTO `{database}`.items VALUES ('{tag}-row'); "
        f"CREATE USER '{tag}_adm'@'%' IDENTIFIED BY '{admin_password(tag)}'; "
        f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{tag}_adm'@'%' WITH GRANT OPTION; "
        f"GRANT CREATE USER ON *.* TO '{tag}_adm'@'%';"
    )
    vault("POST", f"sys/mounts/{tag}-db", {"type": "database"})
    vault("POST", f"sys/mounts/{tag}-kv", {"type": "kv", "options": {"version": "2"}})
    vault("POST", f"{tag}-kv/data/admin/mariadb", {"data": {"password": admin_password(tag)}},
          ok=(200,))
    vault("POST", f"{tag}-kv/data/binders/mariadb", {"data": binder_config(tag)}, ok=(200,))
    status, reply = http("POST", f"{need('CLOUDIFY_SIM_URL')}/_sim/blueprints", blueprint(tag))
    expect(status, reply, 201, "add the simulator blueprint")
    broker = create_secret(f"{tag}/broker", {"BROKER_USERNAME": BROKER_USER,
                                             "BROKER_PASSWORD": broker_password(tag)})
    cloudify = create_secret(f"{tag}/cloudify", {"CLOUDIFY_USERNAME": "admin",
                                                 "CLOUDIFY_PASSWORD": "admin"})
    vault_secret = create_secret(f"{tag}/vault", {"VAULT_TOKEN": need("VAULT_TOKEN")})
    for k, v in [("BROKER_CREDENTIALS_SECRET_ARN", broker),
                 ("CLOUDIFY_CREDENTIALS_SECRET_ARN", cloudify),
                 ("VAULT_CREDENTIALS_SECRET_ARN", vault_secret),
                 ("VAULT_KV_MOUNT", f"{tag}-kv"),
                 ("E2E_BLUEPRINT", f"{tag}-mariadb")]:
        print(f"export {k}={v}")


class Broker:
    def __init__(self, tag, url):
        self.url = url.rstrip("/")
        token = base64.b64encode(f"{BROKER_USER}:{broker_password(tag)}".encode()).decode()
        self.headers = {"Authorization": f"Basic {token}", "X-Broker-API-Version": API_VERSION}
        self.started = set()

    def call(self, function, method, path, body=None, query=None):
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        timeout = CALL_TIMEOUT if function in self.started else FIRST_CALL_TIMEOUT
        t0 = time.monotonic()
        try:
            status, reply = http(method, url, body, self.headers, timeout)
        except OSError as e:
            sys.exit(f"lambda e2e: {function} ({method} {path}) gave no answer: {e}")
        self.started.add(function)
        print(f"  {function:<24} {method:<6} {status} in {time.monotonic() - t0:.2f}s", flush=True)
        return status, reply

    def wait(self, instance, ids, operation, deprovision=False):
        query = dict(ids)
        if operation:
            query["operation"] = operation
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            status, reply = self.call("last-operation", "GET",
                                      f"/v2/service_instances/{instance}/last_operation",
                                      query=query)
            if deprovision and status == 410:
                return "gone"
            expect(status, reply, 200, "last_operation")
            if reply["state"] != "in progress":
                return reply["state"], reply.get("description")
            time.sleep(1)
        sys.exit(f"lambda e2e: {instance}: the operation did not finish in 180 s")


def run(tag, url):
    b = Broker(tag, url)
    status, catalog = b.call("catalog", "GET", "/v2/catalog")
    expect(status, catalog, 200, "catalog")
    wanted = f"{tag}-mariadb"
    service = next((s for s in catalog["services"] if s["name"] == wanted), None)
    if service is None:
        sys.exit(f"lambda e2e: {wanted} is not in the catalog: "
                 f"{[s['name'] for s in catalog['services']]}")
    ids = {"service_id": service["id"], "plan_id": service["plans"][0]["id"]}
    host, port, _, _ = mariadb_target()
    instance, binding = f"{tag}-i1", f"{tag}-b1"

    status, reply = b.call("provision", "PUT", f"/v2/service_instances/{instance}", {
        **ids,
        "organization_guid": f"{tag}-org",
        "space_guid": f"{tag}-space",
        "context": {"platform": "kubernetes", "namespace": "e2e"},
        "parameters": {"mysql_host": host, "mysql_port": int(port), "database": f"{tag}_app"},
    }, {"accepts_incomplete": "true"})
    expect(status, reply, 202, "provision")
    state = b.wait(instance, ids, reply.get("operation"))
    if state[0] != "succeeded":
        sys.exit(f"lambda e2e: provision ended {state}")

    status, reply = b.call("get-instance", "GET", f"/v2/service_instances/{instance}")
    expect(status, reply, 200, "get instance")
    if reply.get("service_id") != ids["service_id"]:
        sys.exit(f"lambda e2e: get instance answered {reply}")

    status, reply = b.call("update", "PATCH", f"/v2/service_instances/{instance}", {
        "service_id": ids["service_id"],
        "context": {"platform": "kubernetes", "namespace": "e2e-moved"},
    }, {"accepts_incomplete": "true"})
    expect(status, reply, 200, "update (context only)")

    status, reply = b.call("bind", "PUT",
                           f"/v2/service_instances/{instance}/service_bindings/{binding}",
                           {**ids, "context": {"platform": "kubernetes", "namespace": "e2e"}})
    expect(status, reply, 201, "bind")
    creds = reply["credentials"]
    login = sql(creds["username"], creds["password"],
                f"SELECT name FROM `{tag}_app`.items", check=False)
    if login.returncode != 0 or login.stdout.strip() != f"{tag}-row":
        sys.exit(f"lambda e2e: the bound credentials do not log in: {login.stderr.strip()}")
    print("  credentials log in to MariaDB and read the instance's database")

    status, reply = b.call("binding-last-operation", "GET",
                           f"/v2/service_instances/{instance}/service_bindings/{binding}"
                           "/last_operation", query=ids)
    expect(status, reply, 200, "binding last_operation")
    if reply.get("state") != "succeeded":
        sys.exit(f"lambda e2e: binding last_operation answered {reply}")

    status, reply = b.call("get-binding", "GET",
                           f"/v2/service_instances/{instance}/service_bindings/{binding}")
    expect(status, reply, 200, "get binding")
    if reply.get("credentials", {}).get("username") != creds["username"]:
        sys.exit("lambda e2e: get binding returned other credentials")

    status, reply = b.call("unbind", "DELETE",
                           f"/v2/service_instances/{instance}/service_bindings/{binding}",
                           query=ids)
    expect(status, reply, 200, "unbind")
    login = sql(creds["username"], creds["password"], "SELECT 1", check=False)
    if login.returncode == 0:
        sys.exit("lambda e2e: the credentials still log in after unbind")
    print("  after unbind the credentials no longer log in")

    status, reply = b.call("deprovision", "DELETE", f"/v2/service_instances/{instance}",
                           query={**ids, "accepts_incomplete": "true"})
    expect(status, reply, (200, 202), "deprovision")
    if status == 202:
        state = b.wait(instance, ids, reply.get("operation"), deprovision=True)
        if state != "gone" and state[0] != "succeeded":
            sys.exit(f"lambda e2e: deprovision ended {state}")
    status, reply = b.call("get-instance", "GET", f"/v2/service_instances/{instance}")
    expect(status, reply, 404, "get instance after deprovision")
    if len(b.started) != 10:
        sys.exit(f"lambda e2e: only {sorted(b.started)} were called")
    print(f"lambda e2e: lifecycle passed through all {len(b.started)} route functions")


def cleanup(tag):
    for mount in (f"{tag}-db", f"{tag}-kv"):
        try:
            vault("DELETE", f"sys/mounts/{mount}")
        except SystemExit as e:
            print(e, file=sys.stderr)
    try:
        http("DELETE", f"{need('CLOUDIFY_SIM_URL')}/_sim/blueprints/{tag}-mariadb")
    except OSError as e:
        print(f"cleanup: simulator: {e}", file=sys.stderr)
    root_sql(f"DROP DATABASE IF EXISTS `{tag}_app`; DROP USER IF EXISTS '{tag}_adm'@'%';",
             check=False)


if __name__ == "__main__":
    phase = sys.argv[1] if len(sys.argv) > 1 else ""
    if phase == "setup" and len(sys.argv) == 3:
        setup(sys.argv[2])
    elif phase == "run" and len(sys.argv) == 4:
        run(sys.argv[2], sys.argv[3])
    elif phase == "cleanup" and len(sys.argv) == 3:
        cleanup(sys.argv[2])
    else:
        sys.exit("usage: lifecycle.py setup TAG | run TAG URL | cleanup TAG")
