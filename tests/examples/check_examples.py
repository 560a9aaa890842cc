"""Checks every file under examples/ (run by tests/stages/50-examples.sh).

- examples/mariadb: the blueprint parses as Cloudify DSL, its metadata.osb block is sound,
  the simulator fixture stands for it (same inputs, outputs, description and metadata), the
  binder configs validate and name only outputs the blueprint has, the scripts parse.
- examples/k8s: every manifest parses, each document matches the schema of its kind
  (tests/examples/k8s-kinds.schema.json), and names cross-check: broker URL and platform
  credentials, class, plan and parameters against the blueprint, instance and secret names,
  the broker's UUIDv5 service and plan IDs, and the credential keys the binder returns for
  binder-config.json (schemas/binder-config.md; tests/stages/60-demo.sh compares the same
  set with a real bind).
- examples/k8s/serve: `cloudify-osb serve` in the cluster: probes on /healthz and /readyz,
  the Secret's settings are real setting names (DESIGN.md §3a) and point the store into the
  PersistentVolumeClaim's mount, TLS files into the TLS volume, the Service reaches the port.
- examples/events: one API Gateway event per OSB route and the scheduled sync event.
- Inventory: every file under examples/ is used by one of these checks or by
  examples/demo.sh (which tests/stages/60-demo.sh runs); an unused file fails the stage.

Usage: check_examples.py REPO_ROOT [--credential-keys] (the flag prints the expected
credential keys, one a line, for the demo stage).
"""

import base64
import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(sys.argv[1]).resolve()
EX = ROOT / "examples"
MARIADB = EX / "mariadb"
K8S = EX / "k8s"
ID_NAMESPACE = uuid.UUID("1bba79da-e930-497e-b343-ce940311597b")  # DESIGN.md §2 default
TENANT = "default_tenant"
ROUTES = {
    "catalog", "provision", "update", "deprovision", "get-instance", "last-operation",
    "bind", "unbind", "get-binding", "binding-last-operation", "sync-catalog",
}
# The original broker's example config document (reference/original-broker.md §8).
LEGACY = {
    "__credoutputs__": ["mysql_ip"],
    "__credpath__": "database/creds/my-role",
    "__path__": "database/config/vault_test",
    "plugin_name": "mysql-database-plugin",
    "connection_url": 'demo:new_password@tcp({{["mysql_ip"]}})/',
    "allowed_roles": "my-role",
    "username": "demo",
    "password": "new_password",
}

used: set[Path] = set()
failures: list[str] = []
checks = 0


def use(path: Path) -> Path:
    used.add(path.resolve())
    return path


def check(cond: bool, what: str) -> None:
    global checks
    checks += 1
    if not cond:
        failures.append(what)


def load_json(path: Path):
    return json.loads(use(path).read_text())


def load_yaml_docs(path: Path) -> list:
    return [d for d in yaml.safe_load_all(use(path).read_text()) if d is not None]


def rel(path: Path) -> str:
    return str(path.resolve().relative_to(ROOT))


# ---------------------------------------------------------------- examples/mariadb

def credential_keys(config: dict) -> set[str]:
    """The keys of the credentials map the Vault binder builds (schemas/binder-config.md)."""
    keys = set(config.get("outputs", []))
    keys |= set(config["credentials"].get("values", {}))
    keys |= {"type", "provider", "username", "password"}
    if config["credentials"].get("uri_scheme"):
        keys.add("uri")
    return keys


def output_refs(value) -> set[str]:
    """Names in {{ outputs.NAME... }} expressions anywhere in a JSON value."""
    found: set[str] = set()
    if isinstance(value, str):
        found |= set(re.findall(r"\{\{\s*outputs\.([A-Za-z0-9_-]+)", value))
    elif isinstance(value, list):
        for v in value:
            found |= output_refs(v)
    elif isinstance(value, dict):
        for v in value.values():
            found |= output_refs(v)
    return found


def check_blueprint() -> dict:
    bp = yaml.safe_load(use(MARIADB / "blueprint.yaml").read_text())
    check(str(bp.get("tosca_definitions_version", "")).startswith("cloudify_dsl_1_"),
          "blueprint.yaml: tosca_definitions_version must be cloudify_dsl_1_x")
    check(bool(str(bp.get("description", "")).strip()), "blueprint.yaml: a top-level description")
    inputs = bp.get("inputs", {})
    for name, spec in inputs.items():
        check("default" in spec, f"blueprint.yaml: input {name} has a default")
        check(spec.get("type") in {"string", "integer", "float", "boolean", "list", "dict"},
              f"blueprint.yaml: input {name} has a plain type")
    outputs = bp.get("outputs", {})
    check("mysql_ip" in outputs, "blueprint.yaml: output mysql_ip")
    for name, out in outputs.items():
        check("value" in out and "description" in out, f"blueprint.yaml: output {name} has value and description")
    # Every get_input names an input; every get_attribute a node.
    nodes = bp.get("node_templates", {})
    text = json.dumps(bp)
    for name in re.findall(r'"get_input": "([^"]+)"', text):
        check(name in inputs, f"blueprint.yaml: get_input {name} names an input")
    for node in re.findall(r'"get_attribute": \["([^"]+)"', text):
        check(node in nodes, f"blueprint.yaml: get_attribute names node {node}")
    # Scripts the lifecycle operations run exist and parse.
    scripts = set(re.findall(r'"(scripts/[^"]+)"', text))
    check(bool(scripts), "blueprint.yaml: lifecycle scripts")
    for s in sorted(scripts):
        path = MARIADB / s
        check(path.is_file(), f"blueprint.yaml: {s} exists")
        if path.is_file():
            r = subprocess.run(["bash", "-n", str(use(path))], capture_output=True, text=True)
            check(r.returncode == 0, f"{s}: bash -n: {r.stderr.strip()}")
    for name, node in nodes.items():
        for rel_ in node.get("relationships", []):
            check(rel_.get("target") in nodes, f"blueprint.yaml: node {name} targets a node")
    check_metadata(bp, inputs)
    return bp


def check_metadata(bp: dict, inputs: dict) -> None:
    osb = bp.get("metadata", {}).get("osb")
    check(isinstance(osb, dict), "blueprint.yaml: a metadata.osb block")
    if not isinstance(osb, dict):
        return
    schema_path = ROOT / "schemas" / "blueprint-metadata.schema.json"
    if schema_path.is_file():
        schema = json.loads(schema_path.read_text())
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(osb), key=str)
        check(not errors, "blueprint.yaml: metadata.osb against schemas/blueprint-metadata.schema.json: "
              + "; ".join(e.message for e in errors[:3]))
    plans = osb.get("plans", [])
    check(isinstance(plans, list) and plans, "metadata.osb: plans")
    for plan in plans:
        pname = plan.get("name", "")
        check(re.fullmatch(r"[a-z0-9-]{1,63}", pname) is not None, f"metadata.osb: plan name {pname}")
        check(bool(plan.get("description")), f"metadata.osb: plan {pname} has a description")
        for i in plan.get("inputs", {}):
            check(i in inputs, f"metadata.osb: plan {pname} presets input {i} the blueprint has")
    for name, spec in inputs.items():
        if spec.get("hidden"):
            check("default" in spec, f"blueprint.yaml: hidden input {name} has a default")
    # The binder is the admin's choice (set-binder.sh), not the blueprint's.
    check("binder" not in osb, "metadata.osb: no binder key (set-binder.sh chooses the binder)")
    check(isinstance(osb.get("tags"), list) and osb["tags"], "metadata.osb: tags")


def check_fixture(bp: dict) -> None:
    fx = load_json(MARIADB / "fixtures" / "mariadb.json")
    schema = json.loads(use(ROOT / "sim" / "fixture.schema.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(fx))
    check(not errors, "fixtures/mariadb.json against sim/fixture.schema.json: "
          + "; ".join(e.message for e in errors[:3]))
    check(fx["id"] == "mariadb", "fixture: blueprint id mariadb")
    check(" ".join(fx.get("description", "").split()) == " ".join(bp["description"].split()),
          "fixture: same description as blueprint.yaml")
    check(fx["plan"]["inputs"] == bp["inputs"], "fixture: plan.inputs equal blueprint.yaml's inputs")
    check(fx["plan"]["outputs"] == bp["outputs"], "fixture: plan.outputs equal blueprint.yaml's outputs")
    check(fx["plan"].get("metadata") == bp.get("metadata"), "fixture: plan.metadata equals blueprint.yaml's")
    check(set(fx.get("output_values", {})) == set(bp["outputs"]),
          "fixture: output_values for every output")
    mysql_ip = fx["output_values"].get("mysql_ip", "")
    check("${inputs.host_ip}" in mysql_ip and "${inputs.mysql_port}" in mysql_ip,
          "fixture: mysql_ip resolves to host:port from the deployment's inputs")


def check_binder_configs(bp: dict) -> set[str]:
    outputs = set(bp["outputs"])
    cfg = load_json(MARIADB / "binder-config.json")
    schema = json.loads((ROOT / "schemas" / "binder-config.schema.json").read_text())
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    check(not errors, "binder-config.json against schemas/binder-config.schema.json: "
          + "; ".join(e.message for e in errors[:3]))
    for name in output_refs(cfg):
        check(name in outputs, f"binder-config.json: outputs.{name} is a blueprint output")
    for name in cfg.get("outputs", []):
        check(name in outputs, f"binder-config.json: allow-listed output {name} is a blueprint output")
    check(cfg["connection"]["username"] == bp["inputs"]["vault_admin_user"]["default"],
          "binder-config.json: connection.username is the blueprint's vault_admin_user")
    ref = cfg["connection"].get("password_ref", {})
    setup = (MARIADB / "vault" / "2-admin-password.sh").read_text()
    check(ref.get("path", "").endswith("/admin/mariadb") and "admin/mariadb" in setup,
          "binder-config.json: password_ref is where vault/2-admin-password.sh stores it")
    check(ref.get("path", "").split("/")[0] == "cloudify-osb", "binder-config.json: password_ref in the broker's KV mount")

    legacy = load_json(MARIADB / "binder-config.legacy.json")
    check(legacy == LEGACY, "binder-config.legacy.json: the original broker's document, unchanged")
    for name in re.findall(r'\{\{\["([^"]+)"\]\}\}', json.dumps(legacy).replace('\\"', '"')):
        check(name in outputs, f"binder-config.legacy.json: output {name} is a blueprint output")
    for name in legacy["__credoutputs__"]:
        check(name in outputs, f"binder-config.legacy.json: __credoutputs__ {name} is a blueprint output")
    return credential_keys(cfg)


def check_vault_setup() -> None:
    vault = MARIADB / "vault"
    for path in sorted(vault.glob("*.sh")) + [MARIADB / "set-binder.sh"]:
        r = subprocess.run(["bash", "-n", str(use(path))], capture_output=True, text=True)
        check(r.returncode == 0, f"{rel(path)}: bash -n: {r.stderr.strip()}")
    binder_path = "binders/mariadb"
    check(binder_path in (vault / "3-binder-config.sh").read_text()
          and binder_path in (MARIADB / "set-binder.sh").read_text(),
          "vault/3-binder-config.sh stores the config where set-binder.sh points the broker")
    set_binder = (MARIADB / "set-binder.sh").read_text()
    check("set-binder mariadb" in set_binder and "--binder vault" in set_binder,
          "set-binder.sh sets the vault binder on blueprint mariadb")
    policy = use(vault / "broker-policy.hcl").read_text()
    for path in ["cloudify-osb/data/binders/*", "cloudify-osb/data/admin/*", "cloudify-osb/data/instances/*",
                 "cloudify-osb/data/bindings/*", "cloudify-osb/metadata/bindings/*",
                 "database/config/osb-*", "database/roles/osb-*", "database/creds/osb-*",
                 "sys/leases/revoke", "sys/leases/renew"]:
        check(f'path "{path}"' in policy, f"broker-policy.hcl grants {path}")
    check('path "sys/mounts' not in policy and '"*"' not in policy,
          "broker-policy.hcl: the broker may not mount engines or touch everything")


# ---------------------------------------------------------------- examples/k8s

def check_k8s(bp: dict, cred_keys: set[str]) -> None:
    kinds_schema = json.loads(use(ROOT / "tests" / "examples" / "k8s-kinds.schema.json").read_text())
    docs: list[tuple[str, dict]] = []
    files = sorted(K8S.rglob("*.yaml"))
    check(bool(files), "examples/k8s: manifests")
    for f in files:
        try:
            for d in load_yaml_docs(f):
                docs.append((rel(f), d))
        except yaml.YAMLError as e:
            check(False, f"{rel(f)}: YAML: {e}")
    for where, d in docs:
        key = f"{d.get('apiVersion')} {d.get('kind')}"
        schema = kinds_schema["kinds"].get(key)
        check(schema is not None, f"{where}: a schema for {key}")
        if schema is None:
            continue
        full = {"$defs": kinds_schema["$defs"], **schema}
        errors = list(jsonschema.Draft202012Validator(full).iter_errors(d))
        check(not errors, f"{where}: {key} {d.get('metadata', {}).get('name')}: "
              + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:3]))

    def find(api: str, kind: str) -> list[dict]:
        return [d for _, d in docs if d.get("apiVersion") == api and d.get("kind") == kind]

    def one(api: str, kind: str) -> dict:
        found = find(api, kind)
        check(len(found) == 1, f"examples/k8s: exactly one {api} {kind}")
        return found[0] if found else {}

    def secret(namespace: str, name: str) -> dict:
        for s in find("v1", "Secret"):
            if s["metadata"]["name"] == name and s["metadata"]["namespace"] == namespace:
                return s
        check(False, f"examples/k8s: a Secret {namespace}/{name}")
        return {"stringData": {}}

    osb = bp["metadata"]["osb"]
    presets = {i for p in osb["plans"] for i in p.get("inputs", {})}
    hidden = {n for n, spec in bp["inputs"].items() if spec.get("hidden")}
    allowed_params = set(bp["inputs"]) - hidden - presets

    # Service Catalog.
    broker = one("servicecatalog.k8s.io/v1beta1", "ClusterServiceBroker")
    si = one("servicecatalog.k8s.io/v1beta1", "ServiceInstance")
    sb = one("servicecatalog.k8s.io/v1beta1", "ServiceBinding")
    ref = broker["spec"]["authInfo"]["basic"]["secretRef"]
    auth = secret(ref["namespace"], ref["name"])["stringData"]
    check({"username", "password"} <= set(auth), "broker auth Secret has username and password")
    check(si["spec"]["clusterServiceClassExternalName"] == osb["name"],
          "ServiceInstance class is the offering name from metadata.osb")
    plan = si["spec"]["clusterServicePlanExternalName"]
    check(plan in [p["name"] for p in osb["plans"]], f"ServiceInstance plan {plan} is a plan of metadata.osb")
    sc_params = si["spec"].get("parameters", {})
    check(set(sc_params) <= allowed_params, f"ServiceInstance parameters {sorted(sc_params)} are inputs the user may set")
    check(sb["spec"]["instanceRef"]["name"] == si["metadata"]["name"]
          and sb["metadata"]["namespace"] == si["metadata"]["namespace"],
          "Service Catalog binding names its instance in the same namespace")

    # Crossplane provider-osb.
    pc = one("osb.m.crossplane.io/v1alpha1", "ProviderConfig")
    xi = one("instance.osb.m.crossplane.io/v1alpha1", "ServiceInstance")
    xb = one("binding.osb.m.crossplane.io/v1alpha1", "ServiceBinding")
    check(pc["spec"]["brokerUrl"] == broker["spec"]["url"], "the same broker URL for Service Catalog and Crossplane")
    cref = pc["spec"]["credentials"]["secretRef"]
    encoded = secret(cref["namespace"], cref["name"])["stringData"].get(cref["key"], "")
    try:
        creds = json.loads(base64.b64decode(encoded, validate=True))
    except ValueError:
        creds = {}
    check(set(creds) == {"user", "password"} and creds.get("user") == auth.get("username"),
          "provider-osb creds are base64 JSON {user, password} with the same platform user")
    service_id = str(uuid.uuid5(ID_NAMESPACE, f"{TENANT}/{bp_id()}"))
    plan_id = str(uuid.uuid5(ID_NAMESPACE, f"{TENANT}/{bp_id()}/{plan}"))
    for what, res in [("ServiceInstance", xi), ("ServiceBinding", xb)]:
        fp = res["spec"]["forProvider"]
        check(fp["serviceId"] == service_id, f"Crossplane {what}: serviceId is UUIDv5 of {TENANT}/{bp_id()}")
        check(fp["planId"] == plan_id, f"Crossplane {what}: planId is UUIDv5 of plan {plan}")
        check(res["spec"]["providerConfigRef"] == {"kind": "ProviderConfig", "name": pc["metadata"]["name"]}
              and res["metadata"]["namespace"] == pc["metadata"]["namespace"],
              f"Crossplane {what}: names the ProviderConfig in its namespace")
        ctx = fp.get("context", {})
        check(ctx.get("namespace") == res["metadata"]["namespace"]
              and ctx.get("instanceName") == xi["metadata"]["name"],
              f"Crossplane {what}: context namespace and instanceName match the instance")
    check(xb["spec"]["forProvider"]["instanceId"] == xi["spec"]["forProvider"]["instanceId"],
          "Crossplane binding names the instance's instanceId")
    x_params = json.loads(xi["spec"]["forProvider"].get("parameters", "{}"))
    check(x_params == sc_params, "Crossplane and Service Catalog instances ask for the same parameters")

    # servicebinding.io and the workload.
    sbio = one("servicebinding.io/v1beta1", "ServiceBinding")
    secret_name = sbio["spec"]["service"]["name"]
    check(sbio["spec"]["service"]["kind"] == "Secret" and sbio["spec"]["service"]["apiVersion"] == "v1",
          "servicebinding.io binds the Secret directly")
    check(sb["spec"]["secretName"] == secret_name, "Service Catalog writes the Secret servicebinding.io projects")
    check(xb["spec"]["writeConnectionSecretToRef"]["name"] == secret_name,
          "Crossplane writes the Secret servicebinding.io projects")
    check(sbio["metadata"]["namespace"] == sb["metadata"]["namespace"] == xb["metadata"]["namespace"],
          "bindings and the projection live in one namespace")
    wl = sbio["spec"]["workload"]
    apps = [d for d in find(wl["apiVersion"], wl["kind"]) if d["metadata"]["name"] == wl.get("name")]
    check(len(apps) == 1 and apps[0]["metadata"]["namespace"] == sbio["metadata"]["namespace"],
          "servicebinding.io workload is the Deployment in examples/k8s")
    for e in sbio["spec"].get("env", []):
        check(e["key"] in cred_keys, f"servicebinding.io env {e['name']} reads key {e['key']} the binder returns")
    if apps:
        script = json.dumps(apps[0]["spec"]["template"]["spec"]["containers"])
        dir_name = sbio["spec"].get("name", sbio["metadata"]["name"])
        check(f"$SERVICE_BINDING_ROOT/{dir_name}" in script, "the workload reads the binding's directory")
        read = set(re.findall(r'\$b/([a-z_]+)', script))
        check(bool(read) and read <= cred_keys, f"the workload reads keys {sorted(read - cred_keys)} the binder does not return")
    # Comments that list the Secret's keys tell the truth.
    for f in files:
        comments = re.sub(r"\n\s*#\s*", " ", f.read_text())
        for m in re.finditer(r"\(keys?: ([a-z_, ]+)\)|\(([a-z_]+(?:, [a-z_]+){3,})\)", comments):
            listed = {k.strip() for k in (m.group(1) or m.group(2)).split(",")}
            check(listed == cred_keys, f"{rel(f)}: the keys its comment lists are the binder's {sorted(cred_keys)}")


def bp_id() -> str:
    return json.loads((MARIADB / "fixtures" / "mariadb.json").read_text())["id"]


# ---------------------------------------------------------------- examples/events

def check_events() -> None:
    events = EX / "events"
    if not events.is_dir():
        return
    names = set()
    for f in sorted(events.glob("*.json")):
        names.add(f.stem)
        try:
            ev = load_json(f)
        except ValueError as e:
            check(False, f"{rel(f)}: JSON: {e}")
            continue
        if f.stem == "sync-catalog":
            check(ev.get("source") == "aws.events" and "detail-type" in ev, f"{rel(f)}: a scheduled event")
        else:
            check(ev.get("version") == "2.0" and "routeKey" in ev and "requestContext" in ev,
                  f"{rel(f)}: an API Gateway HTTP API (v2) event")
    check(names == ROUTES, f"examples/events: one event per route, missing {sorted(ROUTES - names)}, extra {sorted(names - ROUTES)}")


# ---------------------------------------------------------------- inventory

# Setting names `serve` reads (DESIGN.md §3a).
SERVE_SETTINGS = {
    "BROKER_LISTEN", "BROKER_STORE", "BROKER_USERNAME", "BROKER_PASSWORD", "CLOUDIFY_URL",
    "CLOUDIFY_UI_URL", "CLOUDIFY_TENANT", "CLOUDIFY_USERNAME", "CLOUDIFY_PASSWORD",
    "CLOUDIFY_TOKEN", "CLOUDIFY_CA_CERT", "CLOUDIFY_INSECURE", "VAULT_ADDR", "VAULT_TOKEN",
    "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_KV_MOUNT", "BROKER_ID_NAMESPACE", "BROKER_CATALOG",
    "BROKER_SYNC_INTERVAL", "BROKER_RENEW_INTERVAL", "BROKER_USERNAME_NEXT", "BROKER_PASSWORD_NEXT",
    "BROKER_TLS_CERT", "BROKER_TLS_KEY", "BROKER_LOG_FORMAT",
}


def check_serve() -> None:
    docs = {}
    for f in sorted((K8S / "serve").glob("*.yaml")):
        for d in load_yaml_docs(f):
            docs[d.get("kind")] = d
    check(set(docs) == {"Deployment", "Service", "PersistentVolumeClaim", "Secret"},
          f"examples/k8s/serve: a Deployment, Service, PersistentVolumeClaim and Secret, not {sorted(docs)}")
    dep, svc, pvc, sec = (docs.get(k, {}) for k in ("Deployment", "Service", "PersistentVolumeClaim", "Secret"))
    if not (dep and svc and pvc and sec):
        return
    ns = dep["metadata"]["namespace"]
    check(all(d["metadata"]["namespace"] == ns for d in (svc, pvc, sec)), "serve: one namespace")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    check(c.get("args") == ["serve"], "serve: the container runs `cloudify-osb serve`")
    check(dep["spec"].get("replicas") == 1 and dep["spec"].get("strategy", {}).get("type") == "Recreate",
          "serve: one replica, Recreate (SQLite has one writer)")
    settings = sec["stringData"]
    check(set(settings) <= SERVE_SETTINGS, f"serve: unknown settings {sorted(set(settings) - SERVE_SETTINGS)}")
    check({"BROKER_USERNAME", "BROKER_PASSWORD", "BROKER_STORE", "BROKER_LISTEN"} <= set(settings),
          "serve: the Secret has the required settings")
    check([e["secretRef"]["name"] for e in c.get("envFrom", [])] == [sec["metadata"]["name"]],
          "serve: the container takes its settings from the Secret")
    tls = "BROKER_TLS_CERT" in settings
    scheme = "HTTPS" if tls else "HTTP"
    probes = {p: c.get(p, {}).get("httpGet", {}) for p in ("livenessProbe", "readinessProbe")}
    check(probes["livenessProbe"].get("path") == "/healthz", "serve: liveness probe on /healthz")
    check(probes["readinessProbe"].get("path") == "/readyz", "serve: readiness probe on /readyz")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    port = int(settings.get("BROKER_LISTEN", ":0").rsplit(":", 1)[1])
    check(settings.get("BROKER_LISTEN", "").startswith("0.0.0.0:"), "serve: listens on every interface in the pod")
    check(list(ports.values()) == [port], "serve: the container port is BROKER_LISTEN's")
    for name, probe in probes.items():
        check(probe.get("scheme", "HTTP") == scheme and ports.get(probe.get("port")) == port,
              f"serve: {name} uses the broker's port and scheme")
    target = svc["spec"]["ports"][0].get("targetPort")
    check(target == port or ports.get(target) == port, "serve: the Service targets the broker's port")
    check(svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items(),
          "serve: the Service selects the Deployment's pods")
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    data = [n for n, v in volumes.items()
            if v.get("persistentVolumeClaim", {}).get("claimName") == pvc["metadata"]["name"]]
    check(len(data) == 1 and data[0] in mounts, "serve: the PersistentVolumeClaim is mounted")
    store = settings.get("BROKER_STORE", "")
    check(bool(data) and store.startswith(f"sqlite:{mounts.get(data[0], '?')}/"),
          "serve: the SQLite file lives on the PersistentVolumeClaim")
    if tls:
        secret_mounts = [mounts[n] for n, v in volumes.items() if "secret" in v and n in mounts]
        for k in ("BROKER_TLS_CERT", "BROKER_TLS_KEY"):
            check(any(settings.get(k, "").startswith(m + "/") for m in secret_mounts),
                  f"serve: {k} is a file of a mounted Secret")


def check_inventory() -> None:
    demo = EX / "demo.sh"
    demo_text = ""
    if demo.is_file():
        use(demo)
        r = subprocess.run(["bash", "-n", str(demo)], capture_output=True, text=True)
        check(r.returncode == 0, f"examples/demo.sh: bash -n: {r.stderr.strip()}")
        demo_text = demo.read_text()
    for f in sorted(p for p in EX.rglob("*") if p.is_file()):
        r = f.resolve()
        if r in used:
            continue
        # Files examples/demo.sh runs or reads (tests/stages/60-demo.sh runs the demo).
        if demo_text and str(f.relative_to(EX)) in demo_text:
            continue
        check(False, f"{rel(f)} is used by no test: check it in tests/examples/check_examples.py "
                     "or use it in examples/demo.sh")


def main() -> int:
    bp = check_blueprint()
    check_fixture(bp)
    keys = check_binder_configs(bp)
    if "--credential-keys" in sys.argv:
        print("\n".join(sorted(keys)))
        return 0
    check_vault_setup()
    check_k8s(bp, keys)
    check_serve()
    check_events()
    check_inventory()
    for f in failures:
        print(f"FAIL {f}")
    print(f"examples: {checks - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
