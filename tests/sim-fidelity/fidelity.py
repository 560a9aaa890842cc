#!/usr/bin/env python3
"""Drive cloudify-sim with Cloudify's official Python REST client (PyPI cloudify-common,
module cloudify_rest_client) on each emulated manager version, and check that the client
parses every answer and that the version differences show.

Usage: fidelity.py [SIM_BIN] [VERSION...]   (SIM_BIN defaults to $CLOUDIFY_SIM_BIN)
Prints one line per failed check and a final count; exits 1 on any failure.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

from cloudify_rest_client import CloudifyClient
from cloudify_rest_client import exceptions as cfy_exc

VERSIONS = ["4.3", "5.1", "6.4", "7.0"]
EXECUTION_SECONDS = "0.3"
POLL_LIMIT_S = 20

checks = 0
failures = []


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print(f"  FAIL: {what}", flush=True)
    return cond


def expect_error(fn, what, status=None, code=None, cls=None, contains=None):
    """Run fn; check it raises CloudifyClientError with the given attributes."""
    try:
        fn()
    except cfy_exc.CloudifyClientError as e:
        ok = True
        if status is not None and e.status_code != status:
            ok = False
        if code is not None and e.error_code != code:
            ok = False
        if cls is not None and not isinstance(e, cls):
            ok = False
        if contains is not None and contains not in str(e):
            ok = False
        check(ok, f"{what}: got {type(e).__name__} status={e.status_code} "
                  f"code={e.error_code} message={e}")
        return e
    check(False, f"{what}: no error raised")
    return None


class Sim:
    def __init__(self, binary, version, extra=()):
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--manager-version", version,
             "--execution-seconds", EXECUTION_SECONDS, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline().strip()
        prefix = "cloudify-sim listening on http://"
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"cloudify-sim did not start: {line!r}")
        self.addr = line[len(prefix):]
        self.host, port = self.addr.rsplit(":", 1)
        self.port = int(port)

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{self.addr}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def client(self, **kw):
        args = dict(host=self.host, port=self.port, protocol="http", username="admin",
                    password="admin", tenant="default_tenant")
        args.update(kw)
        return CloudifyClient(**args)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def wait_execution(client, execution_id, seen=None):
    deadline = time.time() + POLL_LIMIT_S
    while time.time() < deadline:
        ex = client.executions.get(execution_id, _include=["id", "status", "error"])
        if seen is not None:
            seen.append(ex.status)
        if ex.status in ("terminated", "failed", "cancelled"):
            return ex
        time.sleep(0.05)
    raise RuntimeError(f"execution {execution_id} did not end")


def start_when_environment_ready(client, dep_id, workflow, seen_errors, **kw):
    """The CLI's way: catch the pending/in-progress errors, wait for the create execution."""
    deadline = time.time() + POLL_LIMIT_S
    while time.time() < deadline:
        try:
            return client.executions.start(dep_id, workflow, **kw)
        except (cfy_exc.DeploymentEnvironmentCreationPendingError,
                cfy_exc.DeploymentEnvironmentCreationInProgressError) as e:
            seen_errors.append(e.error_code)
            creates = client.executions.list(
                deployment_id=dep_id, workflow_id="create_deployment_environment",
                _sort="-created_at", _size=1)
            check(len(creates) == 1, f"{dep_id}: create_deployment_environment is listed")
            if creates:
                wait_execution(client, creates[0].id)
    raise RuntimeError(f"{workflow} on {dep_id} never started")


def wait_environment(client, dep_id):
    creates = client.executions.list(deployment_id=dep_id,
                                     workflow_id="create_deployment_environment")
    check(len(creates) == 1, f"{dep_id}: one create_deployment_environment execution")
    return wait_execution(client, creates[0].id)


def wait_gone(client, dep_id):
    deadline = time.time() + POLL_LIMIT_S
    while time.time() < deadline:
        try:
            client.deployments.get(dep_id, _include=["id"])
        except cfy_exc.CloudifyClientError as e:
            return e.status_code == 404 and e.error_code == "not_found_error"
        time.sleep(0.05)
    return False


def lifecycle(sim, client, version):
    """list (paged) → create → wait for environment → install → outputs → uninstall → delete
    → poll until 404."""
    # Paged blueprint listing: four more blueprints beside the built-in sample.
    for i in range(4):
        sim.control("POST", "/_sim/blueprints", {
            "id": f"fid-bp-{i}", "description": f"fidelity {i}",
            "labels": [{"key": "tier", "value": "gold" if i % 2 else "silver"}],
            "plan": {"inputs": {"x": {"type": "string", "default": "y"}},
                     "outputs": {"o": {"value": {"get_input": "x"}}}}})
    include = ["id", "description", "plan", "created_at", "updated_at"]
    ids, offset, pages = [], 0, 0
    while True:
        page = client.blueprints.list(_include=include, _offset=offset, _size=2)
        pages += 1
        check(page.metadata.pagination.size == 2, f"{version}: page size echoed")
        check(page.metadata.pagination.offset == offset, f"{version}: page offset echoed")
        check(all(set(b.keys()) == set(include) for b in page),
              f"{version}: _include projects blueprint fields")
        ids += [b.id for b in page]
        total = page.metadata.pagination.total
        offset += len(page)
        if offset >= total or not page:
            break
    check(total == 5 and pages == 3 and len(set(ids)) == 5,
          f"{version}: 5 blueprints over 3 pages (total={total}, pages={pages}, ids={ids})")
    sample = client.blueprints.get("sample-mysql")
    check(sample.plan["inputs"]["mysql_host"]["default"] == "127.0.0.1:3306",
          f"{version}: sample blueprint plan inputs")
    has_state = version not in ("4.3", "5.1")
    has_labels = version in ("6.4", "7.0")
    check(("state" in sample) == has_state, f"{version}: blueprint state field per version")
    check(("labels" in sample) == has_labels, f"{version}: blueprint labels per version")
    sorted_desc = client.blueprints.list(sort="id", is_descending=True, _include=["id"])
    check([b.id for b in sorted_desc] == sorted(ids, reverse=True), f"{version}: _sort=-id")
    if has_state:
        check(len(client.blueprints.list(state="uploaded", _include=["id"])) == 5,
              f"{version}: state=uploaded filter")
    if has_labels:
        gold = client.blueprints.list(
            filter_rules=[{"key": "tier", "values": ["gold"], "operator": "any_of",
                           "type": "label"}], _include=["id"])
        check(sorted(b.id for b in gold) == ["fid-bp-1", "fid-bp-3"],
              f"{version}: label search (POST /searches/blueprints)")
    expect_error(lambda: client.blueprints.get("no-such-blueprint"),
                 f"{version}: missing blueprint", status=404, code="not_found_error")
    expect_error(lambda: client.blueprints.list(_include=["nope"]),
                 f"{version}: bad _include", status=400, cls=cfy_exc.NoSuchIncludeFieldError)

    dep_id = f"fid-{version.replace('.', '')}-{uuid.uuid4().hex[:8]}"
    dep = client.deployments.create("sample-mysql", dep_id,
                                    inputs={"mysql_host": "192.0.2.7:3306"},
                                    async_create=True)
    check(dep.id == dep_id and dep.blueprint_id == "sample-mysql",
          f"{version}: create returns the deployment")
    check(dep.inputs.get("mysql_host") == "192.0.2.7:3306", f"{version}: deployment inputs")
    expect_error(lambda: client.deployments.create("sample-mysql", dep_id, async_create=True),
                 f"{version}: duplicate deployment", status=409, code="conflict_error")

    env_errors = []
    install = start_when_environment_ready(client, dep_id, "install", env_errors)
    check(len(env_errors) >= 1, f"{version}: environment errors before it is ready")
    check(install.workflow_id == "install" and install.deployment_id == dep_id,
          f"{version}: install execution fields")
    statuses = []
    install = wait_execution(client, install.id, statuses)
    check(install.status == "terminated", f"{version}: install terminated ({install.status})")
    check(set(statuses) <= {"pending", "started", "terminated"},
          f"{version}: install statuses {statuses}")
    latest = client.executions.list(deployment_id=dep_id, workflow_id="install",
                                    _sort="-created_at", _size=1)
    check(len(latest) == 1 and latest[0].id == install.id, f"{version}: latest install listed")

    outputs = client.deployments.outputs.get(dep_id)
    check(outputs.deployment_id == dep_id, f"{version}: outputs deployment_id")
    check(outputs.outputs.get("mysql_ip") == "192.0.2.7:3306",
          f"{version}: outputs mysql_ip ({outputs.outputs})")
    if version != "4.3":
        caps = client.deployments.capabilities.get(dep_id)
        check(caps.capabilities.get("endpoint") == "192.0.2.7:3306", f"{version}: capabilities")

    # A deployment update with the same blueprint and a new input, polled to success.
    upd = client.deployment_updates.update_with_existing_blueprint(
        dep_id, inputs={"mysql_host": "192.0.2.9:3306"})
    check(upd.deployment_id == dep_id and upd.execution_id,
          f"{version}: deployment update fields ({upd.state})")
    check(wait_execution(client, upd.execution_id).status == "terminated",
          f"{version}: update workflow terminated")
    got = client.deployment_updates.get(upd.id)
    check(got.state == "successful" and got.new_inputs.get("mysql_host") == "192.0.2.9:3306",
          f"{version}: deployment update successful ({got.state})")
    check(any(u.id == upd.id for u in client.deployment_updates.list(deployment_id=dep_id)),
          f"{version}: deployment update listed")
    outputs = client.deployments.outputs.get(dep_id)
    check(outputs.outputs.get("mysql_ip") == "192.0.2.9:3306",
          f"{version}: outputs after the update ({outputs.outputs})")

    expect_error(lambda: client.deployments.delete(dep_id),
                 f"{version}: delete with live nodes", status=400,
                 code="dependent_exists_error")

    uninstall = start_when_environment_ready(client, dep_id, "uninstall", [],
                                             parameters={"ignore_failure": True})
    uninstall = wait_execution(client, uninstall.id)
    check(uninstall.status == "terminated", f"{version}: uninstall terminated")

    # The DELETE status code, through the client's own HTTP layer.
    expected = 200 if version == "4.3" else 204
    body = client.deployments.api.delete(f"/deployments/{dep_id}",
                                         params={"delete_logs": True},
                                         expected_status_code=expected)
    if expected == 200:
        check(isinstance(body, dict) and body.get("id") == dep_id,
              f"{version}: DELETE 200 returns the deployment")
    else:
        check(body is None, f"{version}: DELETE 204 has no body")
    check(wait_gone(client, dep_id), f"{version}: deployment polls to 404")
    expect_error(lambda: client.executions.get(install.id), f"{version}: execution gone",
                 status=404)


def version_differences(sim, client, version):
    # Deployment IDs starting with a digit: refused on 4.4-5.2 only.
    digit_id = f"1fid{uuid.uuid4().hex[:8]}"
    if version == "5.1":
        expect_error(lambda: client.deployments.create("sample-mysql", digit_id),
                     f"{version}: digit-first deployment ID refused", status=400,
                     code="bad_parameters_error", contains="must begin with a letter")
    else:
        # Blocking create on 6.0+ (no async_create): the PUT returns after the environment.
        dep = client.deployments.create("sample-mysql", digit_id)
        check(dep.id == digit_id, f"{version}: digit-first deployment ID accepted")
        if version in ("6.4", "7.0"):
            check(dep.get("latest_execution_status") == "completed",
                  f"{version}: blocking PUT returns after environment creation")
        else:
            wait_environment(client, digit_id)
        client.deployments.delete(digit_id)
        check(wait_gone(client, digit_id), f"{version}: digit-first deployment deleted")

    # Input validation: in the PUT on 4.x/5.x, in the create execution on 6.0+.
    bad_id = f"fid-badin-{uuid.uuid4().hex[:6]}"
    if version in ("4.3", "5.1"):
        expect_error(lambda: client.deployments.create("sample-mysql", bad_id,
                                                       inputs={"nope": 1}),
                     f"{version}: unknown input refused in PUT", status=400,
                     cls=cfy_exc.UnknownDeploymentInputError)
    else:
        client.deployments.create("sample-mysql", bad_id, inputs={"nope": 1},
                                  async_create=True)
        ex = wait_environment(client, bad_id)
        check(ex.status == "failed" and "nope" in ex.error,
              f"{version}: unknown input fails the create execution ({ex.error})")
        expect_error(lambda: client.executions.start(bad_id, "install"),
                     f"{version}: install after failed environment", status=400,
                     code="deployment_creation_error")
        expect_error(lambda: client.deployments.create("sample-mysql", f"{bad_id}-b",
                                                       inputs={"nope": 1}),
                     f"{version}: blocking PUT reports the failed environment", status=400,
                     code="deployment_creation_error")

    # Queueing (4.5+) versus the running-execution error.
    q_id = f"fid-q-{uuid.uuid4().hex[:6]}"
    client.deployments.create("sample-mysql", q_id, async_create=True)
    first = start_when_environment_ready(client, q_id, "install", [])
    if version == "4.3":
        expect_error(lambda: client.executions.start(q_id, "uninstall", queue=True),
                     f"{version}: no queue before 4.5", status=400,
                     code="existing_running_execution_error")
    else:
        queued = client.executions.start(q_id, "uninstall", queue=True)
        check(queued.status == "queued", f"{version}: queued execution ({queued.status})")
        wait_execution(client, first.id)
        check(wait_execution(client, queued.id).status == "terminated",
              f"{version}: queued execution runs after the first")
    # Cancel.
    running = start_when_environment_ready(client, q_id, "install", [], force=True)
    cancelled = client.executions.cancel(running.id)
    check(cancelled.status in ("cancelling", "cancelled"), f"{version}: cancel accepted")
    check(wait_execution(client, running.id).status == "cancelled", f"{version}: cancelled")
    expect_error(lambda: client.executions.cancel(running.id), f"{version}: cancel ended",
                 status=400, code="illegal_action_error")
    expect_error(lambda: client.executions.start(q_id, "no_such_workflow"),
                 f"{version}: unknown workflow", status=400,
                 code="nonexistent_workflow_error")

    # Auth and tenant.
    expect_error(lambda: sim.client(password="wrong").blueprints.list(),
                 f"{version}: wrong password", status=401, cls=cfy_exc.UserUnauthorizedError)
    expect_error(lambda: sim.client(tenant="nobody").blueprints.list(),
                 f"{version}: unknown tenant", status=403, cls=cfy_exc.ForbiddenError)
    if version in ("6.4", "7.0"):
        value = client.tokens.create(description="fidelity").value
        check(value.startswith("ctok-"), f"{version}: POST /tokens returns a ctok- token")
    else:
        session = client.tokens.api.get("/tokens")
        check(session.get("role") is not None, f"{version}: GET /tokens session token")
        value = session["value"]
    tclient = CloudifyClient(host=sim.host, port=sim.port, protocol="http", token=value,
                             tenant="default_tenant")
    check(len(tclient.blueprints.list(_include=["id"])) == 5, f"{version}: token auth")
    expect_error(lambda: CloudifyClient(host=sim.host, port=sim.port, protocol="http",
                                        token="bogus").blueprints.list(),
                 f"{version}: unknown token", status=401, code="unauthorized_error")
    err = expect_error(lambda: client.deployments.get("no-such-deployment"),
                       f"{version}: missing deployment", status=404, code="not_found_error")
    if err is not None:
        check(bool(err.server_traceback) == (version == "4.3"),
              f"{version}: server_traceback filled on 4.x only")


def run_version(binary, version):
    print(f"== cloudify-sim --manager-version {version}", flush=True)
    sim = Sim(binary, version)
    try:
        client = sim.client()
        got = client.manager.get_version()
        check(got["version"].startswith(version), f"{version}: /version reports {got}")
        lifecycle(sim, client, version)
        version_differences(sim, client, version)
    except Exception as e:  # any unexpected exception is a failed check, then go on
        check(False, f"{version}: unexpected {type(e).__name__}: {e}")
    finally:
        sim.stop()


def fixtures_and_faults(binary):
    """The example fixture through the client: required inputs, outputs from inputs once
    installed; injected 500s and dropped connections as the client sees them."""
    print("== cloudify-sim --fixtures sim/fixtures (7.0)", flush=True)
    here = os.path.dirname(os.path.abspath(__file__))
    fixtures = os.path.join(here, "..", "..", "sim", "fixtures")
    sim = Sim(binary, "7.0", ["--fixtures", fixtures])
    try:
        client = sim.client()
        bps = client.blueprints.list(_include=["id", "labels"])
        check([b.id for b in bps] == ["mysql-external"], "fixtures: only the fixture blueprints")
        expect_error(lambda: client.deployments.create("mysql-external", "fx-missing"),
                     "fixtures: missing required input", status=400,
                     code="deployment_creation_error", contains="db_name")
        dep = "fx-maria"
        client.deployments.create("mysql-external", dep,
                                  inputs={"db_name": "app1", "mysql_port": 3307})
        check(client.deployments.outputs.get(dep).outputs.get("mysql_ip") is None,
              "fixtures: runtime output is null before install")
        ex = wait_execution(client, client.executions.start(dep, "install").id)
        check(ex.status == "terminated", "fixtures: install terminated")
        outs = client.deployments.outputs.get(dep).outputs
        check(outs == {"mysql_ip": "127.0.0.1:3307", "db_name": "app1"},
              f"fixtures: outputs follow the inputs once installed ({outs})")

        sim.control("POST", "/_sim/faults", {"http_500": 1})
        expect_error(lambda: client.blueprints.list(), "faults: injected 500", status=500,
                     code="internal_server_error")
        sim.control("POST", "/_sim/faults", {"drop_connections": 1})
        try:
            client.blueprints.list()
            check(False, "faults: dropped connection raised nothing")
        except cfy_exc.CloudifyClientError as e:
            check(False, f"faults: dropped connection answered {e.status_code}")
        except Exception as e:  # requests' ConnectionError family
            check("Connection" in type(e).__name__ or "Disconnected" in str(e),
                  f"faults: dropped connection surfaces as {type(e).__name__}")
        check(len(client.blueprints.list()) == 1, "faults: next request served again")
        sim.control("POST", "/_sim/fail-next",
                    {"workflow_id": "uninstall", "message": "boom\nlast line"})
        ex = wait_execution(client, client.executions.start(dep, "uninstall").id)
        check(ex.status == "failed" and ex.error.endswith("last line"),
              f"faults: injected workflow failure ({ex.status}: {ex.error!r})")
    except Exception as e:
        check(False, f"fixtures: unexpected {type(e).__name__}: {e}")
    finally:
        sim.stop()


def main():
    args = sys.argv[1:]
    binary = args.pop(0) if args else os.environ.get("CLOUDIFY_SIM_BIN")
    if not binary or not os.access(binary, os.X_OK):
        print(f"fidelity: no simulator binary (argument or CLOUDIFY_SIM_BIN): {binary!r}")
        return 2
    versions = args or VERSIONS
    t0 = time.time()
    for v in versions:
        before = len(failures)
        run_version(binary, v)
        print(f"   {v}: {'ok' if len(failures) == before else 'FAILED'}", flush=True)
    if not args:
        fixtures_and_faults(binary)
    extra = "" if args else " + fixtures/faults run"
    print(f"fidelity: {checks} checks, {len(failures)} failed, versions {', '.join(versions)}"
          f"{extra}, {time.time() - t0:.1f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
