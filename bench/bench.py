"""The benchmark driver (bench/run starts the servers and calls this). Prints a Markdown
report: Lambda cold starts through a loopback runtime API beside a bare hello-world, binary
sizes and peak RSS, warm load on `cloudify-osb serve` (wrk) on SQLite and on DynamoDB
(moto), backend round trips per OSB operation (counting proxies), catalog sync at 1,000 and
10,000 blueprints. Standard library only; talks only to 127.0.0.1.

Env: BENCH_CLI (release cloudify-osb), BENCH_LAMBDA_DIR (cargo lambda's target/lambda),
BENCH_HELLO (the hello-world bootstrap), BENCH_REPS, BENCH_SECONDS, BENCH_SYNC_BIG, and the
service variables of tests/services (AWS_ENDPOINT_URL_DYNAMODB, CLOUDIFY_SIM_URL,
VAULT_ADDR, VAULT_TOKEN, MARIADB_URL).
"""

import base64
import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lambda"))
sys.path.insert(0, HERE)

import lifecycle  # noqa: E402  (tests/lambda/lifecycle.py: setup of Vault, MariaDB, sim)
from servers import CountingProxy, RuntimeApi  # noqa: E402

CLI = os.environ["BENCH_CLI"]
LAMBDA_DIR = os.environ["BENCH_LAMBDA_DIR"]
HELLO = os.environ["BENCH_HELLO"]
REPS = int(os.environ.get("BENCH_REPS", "5"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
SYNC_BIG = int(os.environ.get("BENCH_SYNC_BIG", "10000"))
TAG = "bench" + uuid.uuid4().hex[:6]
USER, PASSWORD = lifecycle.BROKER_USER, lifecycle.broker_password(TAG)
AUTH = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
HEADERS = {"Authorization": AUTH, "X-Broker-API-Version": "2.17"}
OUT = []


def say(line=""):
    print(line, flush=True)
    OUT.append(line)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def run(cmd, env=None, check=True):
    out = subprocess.run(cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                         timeout=1800)
    if check and out.returncode:
        sys.exit(f"bench: {' '.join(cmd)} failed: {out.stderr[-2000:]}")
    return out


def http(method, url, body=None, query=None, timeout=60):
    if query:
        url += "?" + urllib.parse.urlencode(query)
    return lifecycle.http(method, url, body, HEADERS, timeout)


# --- setup -----------------------------------------------------------------------------------

def blueprint(i):
    return {"id": f"{TAG}-svc-{i:05}", "description": f"bench service {i}", "state": "uploaded",
            "plan": {"inputs": {"size": {"type": "string", "default": "small",
                                         "description": "size of the thing"}},
                     "outputs": {"endpoint": {"value": "127.0.0.1"}}, "metadata": {}}}


def add_blueprints(start, end):
    sim = os.environ["CLOUDIFY_SIM_URL"]
    for i in range(start, end):
        status, reply = lifecycle.http("POST", f"{sim}/_sim/blueprints", blueprint(i))
        if status != 201:
            sys.exit(f"bench: add blueprint {i}: {status} {reply}")


def setup():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        lifecycle.setup(TAG)
    env = dict(re.findall(r"^export (\w+)=(.*)$", buf.getvalue(), re.M))
    for k in ("BROKER_CREDENTIALS_SECRET_ARN", "CLOUDIFY_CREDENTIALS_SECRET_ARN",
              "VAULT_CREDENTIALS_SECRET_ARN"):
        env.pop(k, None)
    return env


def broker_env(extra, store):
    return {**extra, "BROKER_STORE": store, "BROKER_USERNAME": USER,
            "BROKER_PASSWORD": PASSWORD, "CLOUDIFY_URL": os.environ["CLOUDIFY_SIM_URL"],
            "CLOUDIFY_USERNAME": "admin", "CLOUDIFY_PASSWORD": "admin",
            "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1", "BROKER_LOG_FORMAT": "json", "RUST_LOG": "info"}


def sync(env):
    t0 = time.perf_counter()
    out = run([CLI, "sync"], env)
    took = time.perf_counter() - t0
    m = re.search(r"catalog sync: (.*)", out.stdout)
    report = m.group(1) if m else out.stdout.strip()
    written = re.search(r"(\d+) written", report)
    return took, int(written.group(1)) if written else -1, report


# --- Lambda cold starts ----------------------------------------------------------------------

def apigw_event(method, path, query=None, body=None, route=""):
    qs = urllib.parse.urlencode(query or {})
    headers = {"authorization": AUTH, "x-broker-api-version": "2.17", "host": "localhost",
               "user-agent": "bench"}
    if body is not None:
        headers["content-type"] = "application/json"
    event = {
        "version": "2.0", "routeKey": route or f"{method} {path}", "rawPath": path,
        "rawQueryString": qs, "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "localhost",
            "domainPrefix": "bench",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": str(uuid.uuid4()), "routeKey": route or f"{method} {path}",
            "stage": "$default", "time": "29/Nov/2026:16:00:00 +0000",
            "timeEpoch": int(time.time() * 1000)},
        "isBase64Encoded": False,
    }
    if query:
        event["queryStringParameters"] = dict(query)
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def lambda_env(name, api):
    return {"AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api.port}",
            "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
            "_HANDLER": "bootstrap", "LAMBDA_TASK_ROOT": "/tmp"}


def cold_start(api, binary, env, events):
    """One process: time to the first GET /next, the first invocation, peak RSS."""
    inv = api.fresh()
    for e in events:
        inv.events.put(e)
    stderr = []
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary], env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    reader = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
    reader.start()
    results = []
    for _ in events:
        try:
            rid, kind, t_done, body = inv.done.get(timeout=120)
        except Exception:
            break
        if kind == "init-error":
            results.append((kind, None, body))
            break
        results.append((kind, (t_done - inv.delivered[rid]) * 1000, body))
    init_ms = (inv.next_calls[0] - t0) * 1000 if inv.next_calls else float("nan")
    # VmHWM, not wait4's ru_maxrss: Linux keeps ru_maxrss across exec, so it would report
    # the forking Python process's size.
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            hwm_kb = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        hwm_kb = 0
    proc.kill()
    proc.wait()
    reader.join(timeout=2)
    text = "".join(stderr)

    def phase(name):
        m = re.search(r'"?' + name + r'"?\D{1,3}(\d+)', text)
        return int(m.group(1)) / 1000 if m else 0.0
    return {"init": init_ms, "warm": phase("warm_up_us"), "config": phase("config_us"),
            "clients": phase("clients_us"), "results": results, "rss_kb": hwm_kb,
            "stderr": text}


def status_of(result):
    kind, _, body = result
    if kind != "response":
        return kind
    try:
        return json.loads(body).get("statusCode", "ok")
    except ValueError:
        return "?"


def cold_starts(fn_env, ids, host, port):
    api = RuntimeApi()
    inst, bind = f"{TAG}-cold", f"{TAG}-coldb"
    ip = f"/v2/service_instances/{inst}"
    bp = f"{ip}/service_bindings/{bind}"
    params = {"mysql_host": host, "mysql_port": int(port), "database": f"{TAG}_app"}
    ctx = {"platform": "kubernetes", "namespace": "bench"}
    plan = [
        ("osb-catalog", apigw_event("GET", "/v2/catalog")),
        # The catalog and bind functions again with the CA store reduced to the bundle file
        # (SSL_CERT_FILE, and SSL_CERT_DIR naming an empty directory): each HTTPS client (the
        # SDK's, Cloudify's, Vault's) reads and parses the system's CA store itself when it is
        # built, by default the bundle and every file of the certificate directory the OpenSSL
        # probe finds (/usr/lib/ssl/certs here: one file per CA).
        ("osb-catalog [CA bundle only]", apigw_event("GET", "/v2/catalog")),
        ("osb-provision", apigw_event("PUT", ip, {"accepts_incomplete": "true"},
                                      {**ids, "organization_guid": "o", "space_guid": "s",
                                       "context": ctx, "parameters": params})),
        ("osb-last-operation", apigw_event("GET", f"{ip}/last_operation", ids)),
        ("osb-get-instance", apigw_event("GET", ip)),
        ("osb-update", apigw_event("PATCH", ip, {"accepts_incomplete": "true"},
                                   {"service_id": ids["service_id"],
                                    "context": {**ctx, "namespace": "bench2"}})),
        ("osb-bind", apigw_event("PUT", bp, None, {**ids, "context": ctx})),
        ("osb-bind [CA bundle only]", apigw_event("PUT", bp + "ca", None, {**ids, "context": ctx})),
        ("osb-get-binding", apigw_event("GET", bp)),
        ("osb-binding-last-operation", apigw_event("GET", f"{bp}/last_operation", ids)),
        ("osb-unbind", apigw_event("DELETE", bp, ids)),
        ("osb-deprovision", apigw_event("DELETE", ip, {**ids, "accepts_incomplete": "true"})),
    ]
    bundle = next((f for f in ("/etc/ssl/certs/ca-certificates.crt",
                               "/etc/pki/tls/certs/ca-bundle.crt") if os.path.exists(f)), None)
    rows = []
    hello = [cold_start(api, HELLO, lambda_env("hello", api), [{}]) for _ in range(REPS)]
    h_init = med([r["init"] for r in hello])
    rows.append(("hello-world (bare lambda_runtime)", HELLO, hello, h_init))
    for name, event in plan:
        function = name.split(" ")[0]
        binary = os.path.join(LAMBDA_DIR, function, "bootstrap")
        if not os.path.exists(binary):
            log(f"{name}: not built, skipped")
            continue
        env = {**fn_env, **lambda_env(function, api)}
        if "[CA bundle only]" in name:
            if not bundle:
                log(f"{name}: no CA bundle file found, skipped")
                continue
            env["SSL_CERT_FILE"] = bundle
            env["SSL_CERT_DIR"] = tempfile.mkdtemp(prefix="bench-no-certs-")
        runs = []
        for rep in range(REPS):
            runs.append(cold_start(api, binary, env, [event]))
            if name == "osb-last-operation" and rep == 0:
                wait_lambda_succeeded(api, binary, env, event)
        rows.append((name, binary, runs, h_init))
        log(f"{name}: init {med([r['init'] for r in runs]):.1f} ms, "
            f"status {status_of(runs[0]['results'][0]) if runs[0]['results'] else 'none'}")
    return rows


def sync_cold_starts(fn_env):
    """osb-sync-catalog, cold: init, then one scheduled event (a catalog sync with nothing
    changed plus the lease renewal pass). Run while the DynamoDB catalog is current."""
    binary = os.path.join(LAMBDA_DIR, "osb-sync-catalog", "bootstrap")
    if not os.path.exists(binary):
        log("osb-sync-catalog: not built, skipped")
        return []
    api = RuntimeApi()
    with open(os.path.join(HERE, "..", "examples", "events", "sync-catalog.json")) as f:
        event = json.load(f)
    env = {**fn_env, **lambda_env("osb-sync-catalog", api)}
    runs = [cold_start(api, binary, env, [event]) for _ in range(REPS)]
    log(f"osb-sync-catalog: init {med([r['init'] for r in runs]):.1f} ms")
    return [("osb-sync-catalog", binary, runs)]


def wait_lambda_succeeded(api, binary, env, event):
    deadline = time.time() + 120
    while time.time() < deadline:
        r = cold_start(api, binary, env, [event] * 3)
        for res in r["results"]:
            if res[0] == "response" and '\\"succeeded\\"' in res[2].decode():
                return
        time.sleep(0.5)


def report_cold(rows):
    say("### Lambda functions: cold start, size, memory")
    say()
    say(f"Each function is started {REPS} times as a fresh process against the loopback "
        "runtime API; medians. *init* = process start → first `GET /invocation/next`; "
        "*warm-up* = the connection warm-up inside init (logged by the function); "
        "*first request* = event handed out → response posted.")
    say()
    say("*rest* = init − (config + clients + warm-up): exec, loading and relocating "
        "the binary, the tokio runtime, and the router set-up after the warm-up; *config* = settings (clap over the environment), "
        "logging, the AWS SDK configuration (and secrets, none here); *clients* = the store, "
        "Cloudify and Vault clients and the router state.")
    say()
    say("| function | stripped size | init (ms) | rest | config | clients | "
        "warm-up (ms) | init − warm-up (ms) | × hello | first request (ms) | status | "
        "peak RSS (MB) |")
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, binary, runs, h_init in rows:
        size = os.path.getsize(binary) / 1e6
        init = med([r["init"] for r in runs])
        warm = med([r["warm"] for r in runs])
        bare = med([r["init"] - r["warm"] for r in runs])
        first = med([r["results"][0][1] for r in runs if r["results"] and r["results"][0][1]])
        status = status_of(runs[0]["results"][0]) if runs[0]["results"] else "none"
        rss = max(r["rss_kb"] for r in runs) / 1024
        config = med([r["config"] for r in runs])
        clients = med([r["clients"] for r in runs])
        before = med([r["init"] - r["warm"] - r["config"] - r["clients"] for r in runs])
        say(f"| {name} | {size:.2f} MB | {init:.1f} | {before:.1f} | {config:.1f} | "
            f"{clients:.1f} | {warm:.1f} | {bare:.1f} | {bare / h_init:.2f} | {first:.1f} | "
            f"{status} | {rss:.1f} |")
    say()


# --- serve under load ------------------------------------------------------------------------

WRK_LUA = r"""
local method = os.getenv("WRK_METHOD") or "GET"
local fmt = os.getenv("WRK_PATH")
local body = os.getenv("WRK_BODY")
local counter = 0
local threads = 0
local tid = 0
setup = function(thread) thread:set("tid", threads); threads = threads + 1 end
init = function(args) counter = 0 end
request = function()
  counter = counter + 1
  local path = string.format(fmt, tid .. "x" .. counter)
  local headers = {}
  headers["Authorization"] = os.getenv("WRK_AUTH")
  headers["X-Broker-API-Version"] = "2.17"
  if body then headers["Content-Type"] = "application/json" end
  return wrk.format(method, path, headers, body)
end
done = function(summary, latency, requests)
  io.write(string.format(
    "WRKJSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p99_us\": %d, " ..
    "\"status_errors\": %d, \"socket_errors\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
"""


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_serve(env):
    port = free_port()
    log_file = tempfile.NamedTemporaryFile(prefix="bench-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([CLI, "serve", "--listen", f"127.0.0.1:{port}"],
                            env={**os.environ, **env, "RUST_LOG": "warn"},
                            stdout=log_file, stderr=log_file)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if lifecycle.http("GET", url + "/healthz", timeout=2)[0] == 200:
                return proc, url
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit(f"bench: serve did not start; log {log_file.name}")


def provision_and_wait(url, inst, ids, params):
    status, reply = http("PUT", f"{url}/v2/service_instances/{inst}",
                         {**ids, "organization_guid": "o", "space_guid": "s",
                          "parameters": params}, {"accepts_incomplete": "true"})
    if status != 202:
        sys.exit(f"bench: provision {inst}: {status} {reply}")
    for _ in range(600):
        status, reply = http("GET", f"{url}/v2/service_instances/{inst}/last_operation", None,
                             ids)
        if status == 200 and reply.get("state") != "in progress":
            return reply
        time.sleep(0.2)
    sys.exit(f"bench: {inst} did not finish provisioning")


def idle_cpu_per_second(pid, seconds=3):
    """The serve process's CPU while nobody calls it (timers, background tasks): subtracted
    from each load row, so that CPU/req counts the requests only."""
    cpu0 = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu0) / seconds


def wrk(url, pid, method, path, body, connections, seconds, idle=0.0):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(WRK_LUA)
    script.close()
    env = {"WRK_METHOD": method, "WRK_PATH": path, "WRK_AUTH": AUTH}
    if body is not None:
        env["WRK_BODY"] = json.dumps(body)
    cpu0 = cpu_seconds(pid)
    out = run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s",
               "-s", script.name, url], env)
    cpu = cpu_seconds(pid) - cpu0
    m = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if not m:
        sys.exit(f"bench: wrk gave no summary: {out.stdout} {out.stderr}")
    r = json.loads(m.group(1))
    idle_cpu = idle * r["duration_us"] / 1e6
    r["cpu_ms_per_req"] = max(cpu - idle_cpu, 0.0) * 1000 / max(r["requests"], 1)
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def load(store_name, env, ids, params):
    proc, url = start_serve(env)
    try:
        inst = f"{TAG}-{store_name}-load"
        provision_and_wait(url, inst, ids, params)
        ip = f"/v2/service_instances/{inst}"
        q = urllib.parse.urlencode(ids)
        # The operation ID of a succeeded provision is not needed for last_operation.
        services = 1002 if store_name == "sqlite" else MOTO_SERVICES
        cases = [
            (f"catalog ({services:,} services)", "GET", "/v2/catalog%.0s", None, 2),
            ("provision", "PUT", f"/v2/service_instances/{TAG}-{store_name}-%s"
             "?accepts_incomplete=true",
             {**ids, "organization_guid": "o", "space_guid": "s", "parameters": params}, 2),
            ("last_operation", "GET", f"{ip}/last_operation?{q}&x=%s", None, 2),
            # One connection: concurrent binds on one instance rewrite the same Vault
            # engine config, and OpenBao answers some of them 500 (BENCHMARKS.md).
            ("bind", "PUT", f"{ip}/service_bindings/{TAG}-b-%s",
             {**ids, "context": {"platform": "kubernetes"}}, 1),
        ]
        rows = []
        idle = idle_cpu_per_second(proc.pid)
        log(f"{store_name}: idle serve CPU {idle * 1000:.2f} ms/s")
        for label, method, path, body, conns in cases:
            r = wrk(url, proc.pid, method, path, body, conns, SECONDS, idle)
            rows.append((label, r))
            log(f"{store_name} {label}: {r['rps']:.0f} req/s, p50 {r['p50_us'] / 1000:.1f} ms, "
                f"CPU {r['cpu_ms_per_req']:.3f} ms/req, errors {r['status_errors']}")
        return rows
    finally:
        proc.terminate()
        proc.wait()


def report_load(results):
    say("### `cloudify-osb serve` under load (wrk, 1 thread, 2 connections (bind: 1), "
        f"{SECONDS} s per row)")
    say()
    say("*broker CPU/req* = the serve process's user+system CPU during the run, less its idle "
        "CPU over the same time (measured for 3 s before the rows), ÷ requests "
        "(the backends run in other processes; SQLite runs inside the broker and is "
        "included).")
    say()
    say("| store | operation | req/s | p50 (ms) | p99 (ms) | non-2xx | broker CPU/req (ms) |")
    say("|---|---|---:|---:|---:|---:|---:|")
    for store, rows in results:
        for label, r in rows:
            say(f"| {store} | {label} | {r['rps']:.0f} | {r['p50_us'] / 1000:.2f} | "
                f"{r['p99_us'] / 1000:.2f} | {r['status_errors']} | "
                f"{r['cpu_ms_per_req']:.3f} |")
    say()


# --- round trips -----------------------------------------------------------------------------

MOTO_SERVICES = 1002

MINIMUM = {
    "catalog (first)": "store 1 (the catalog query; the staged catalog reads its version "
                       "item before and after it: 3)",
    "catalog (again, unchanged)": "store 1 (the version check); 0 within the max age",
    "provision": "store 2 (conditional create, record the execution) + the catalog version "
                 "check (0 within the max age); Cloudify 2 (create deployment, start install; "
                 "the version probe once per process)",
    "last_operation (in progress)": "store 1 (read) + 1 write when the state moves; "
                                    "Cloudify 1 (the execution)",
    "last_operation (succeeded)": "store 1 (read); Cloudify 0 (the outcome is recorded)",
    "get-instance": "store 1",
    "update (context only)": "store 2 (read, conditional write)",
    "bind": "the first bind of an instance also configures Vault: claim, connection, role "
            "and fingerprint writes (+4), and the process's first Vault call looks up its "
            "token (+1); otherwise as below",
    "bind (a second binding)": "store 6: instance, catalog version (0 within the max age), "
            "service settings, binding create, instance hold (the exclusion with deprovision), "
            "binding finish; Cloudify 1 (outputs); Vault 5 (4 with a literal admin password): "
            "binder config, instance record, admin password, creds, KV write",
    "get-binding": "store 1; Vault 1 (KV read)",
    "unbind": "store 2+; Vault 2 (revoke, KV delete)",
    "deprovision": "store 2+; Cloudify 1 (uninstall)",
}


def round_trips(env, ids, params, max_age=None):
    """One request per OSB operation behind counting proxies; with `max_age`, serve runs
    with BROKER_CATALOG_MAX_AGE (catalog copies used without a version read)."""
    dyn = CountingProxy(os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    cfy = CountingProxy(os.environ["CLOUDIFY_SIM_URL"])
    vlt = CountingProxy(os.environ["VAULT_ADDR"])
    penv = {**env, "AWS_ENDPOINT_URL_DYNAMODB": dyn.url, "CLOUDIFY_URL": cfy.url,
            "VAULT_ADDR": vlt.url}
    if max_age:
        penv["BROKER_CATALOG_MAX_AGE"] = max_age
    proc, url = start_serve(penv)
    rows = []
    suffix = f" [max-age {max_age}]" if max_age else ""

    def step(label, method, path, body=None, query=None):
        for p in (dyn, cfy, vlt):
            p.take()
        status, reply = http(method, url + path, body, query)
        rows.append((label, suffix, status, dyn.take(), cfy.take(), vlt.take()))
        return status, reply

    try:
        tag = "m" if max_age else ""
        inst, bind = f"{TAG}-rt{tag}", f"{TAG}-rtb{tag}"
        ip = f"/v2/service_instances/{inst}"
        bp = f"{ip}/service_bindings/{bind}"
        step("catalog (first)", "GET", "/v2/catalog")
        step("catalog (again, unchanged)", "GET", "/v2/catalog")
        step("provision", "PUT", ip, {**ids, "organization_guid": "o", "space_guid": "s",
                                      "parameters": params}, {"accepts_incomplete": "true"})
        step("last_operation (in progress)", "GET", f"{ip}/last_operation", None, ids)
        for _ in range(300):
            status, reply = http("GET", f"{url}{ip}/last_operation", None, ids)
            if reply.get("state") != "in progress":
                break
            time.sleep(0.2)
        step("last_operation (succeeded)", "GET", f"{ip}/last_operation", None, ids)
        step("get-instance", "GET", ip)
        step("update (context only)", "PATCH", ip,
             {"service_id": ids["service_id"], "context": {"platform": "kubernetes",
                                                            "namespace": "moved"}},
             {"accepts_incomplete": "true"})
        step("bind", "PUT", bp, {**ids, "context": {"platform": "kubernetes"}})
        step("bind (a second binding)", "PUT", bp + "2", {**ids, "context": {"platform": "kubernetes"}})
        step("get-binding", "GET", bp)
        step("unbind", "DELETE", bp, None, ids)
        http("DELETE", url + bp + "2", None, ids)
        step("deprovision", "DELETE", ip, None, {**ids, "accepts_incomplete": "true"})
    finally:
        proc.terminate()
        proc.wait()
    return rows


def report_round_trips(rows):
    say("### Backend round trips per OSB operation (serve on DynamoDB/moto, counted by "
        "loopback proxies)")
    say()
    say("Rows marked *[max-age 60s]*: serve with `BROKER_CATALOG_MAX_AGE=60s`, which uses a "
        "catalog copy confirmed less than 60 s ago without the catalog version read.")
    say()
    say("| operation | status | DynamoDB | Cloudify | Vault | minimum needed |")
    say("|---|---:|---|---|---|---|")

    def fmt(c):
        total = sum(c.values())
        return f"**{total}**" + (": " + ", ".join(f"{k} ×{v}" for k, v in sorted(c.items()))
                                 if c else "")
    for label, suffix, status, d, c, v in rows:
        say(f"| {label}{suffix} | {status} | {fmt(d)} | {fmt(c)} | {fmt(v)} | "
            f"{MINIMUM[label]} |")
    say()


# --- catalog sync ----------------------------------------------------------------------------

def sync_rows(label, env, count_proxy=None):
    out = []
    for run_name in ("first", "repeated"):
        if count_proxy:
            count_proxy.take()
        took, written, report = sync(env)
        writes = ""
        if count_proxy:
            c = count_proxy.take()
            writes = sum(v for k, v in c.items() if k in (
                "PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems", "DeleteItem"))
        out.append((label, run_name, took, written, writes, report))
        log(f"sync {label} {run_name}: {took:.1f} s, {report}")
    return out


def report_sync(rows):
    say("### Catalog sync (`cloudify-osb sync`, release build)")
    say()
    say("| store, blueprints | run | time (s) | entries written | DynamoDB write requests | "
        "report |")
    say("|---|---|---:|---:|---:|---|")
    for label, run_name, took, written, writes, report in rows:
        say(f"| {label} | {run_name} | {took:.2f} | {written} | {writes} | {report} |")
    say()


# --- main ------------------------------------------------------------------------------------

def main():
    started = time.time()
    log(f"tag {TAG}")
    fn_env = setup()
    host, port, _, _ = lifecycle.mariadb_target()
    params = {"mysql_host": host, "mysql_port": int(port), "database": f"{TAG}_app"}
    tmp = tempfile.mkdtemp(prefix="bench-")
    sqlite_env = broker_env(fn_env, f"sqlite:{tmp}/broker.db")
    dyn_env = broker_env(fn_env, f"dynamodb:{TAG}")
    for k in ("VAULT_ADDR", "VAULT_TOKEN", "AWS_ENDPOINT_URL_DYNAMODB"):
        sqlite_env[k] = dyn_env[k] = os.environ[k]
    run([CLI, "store", "create-table", f"dynamodb:{TAG}"], dyn_env)
    dproxy = CountingProxy(os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    sync_results = []
    sync_cold = []
    # moto needs minutes for a 1,000-entry catalog write (BENCHMARKS.md): unless
    # BENCH_MOTO_1000=1, the DynamoDB table gets the small catalog, synced before the 1,000
    # generated blueprints are added.
    moto_1000 = os.environ.get("BENCH_MOTO_1000", "0") == "1"
    stores = [("SQLite", sqlite_env, None),
              ("DynamoDB (moto)", {**dyn_env, "AWS_ENDPOINT_URL_DYNAMODB": dproxy.url}, dproxy)]
    if not moto_1000:
        stores.reverse()
    for label, env, proxy in stores:
        if label == "SQLite" or moto_1000:
            if not getattr(main, "added", False):
                add_blueprints(0, 1000)
                main.added = True
                log("1,000 blueprints added to the simulator")
        run([CLI, "service", "set-binder", f"{TAG}-mariadb", "--binder", "vault", "--config",
             f"{fn_env['VAULT_KV_MOUNT']}/binders/mariadb"], env)
        count = "1,002" if getattr(main, "added", False) else "2"
        sync_results += sync_rows(f"{label}, {count}", env, proxy)
        if label != "SQLite" and not sync_cold:
            # The scheduled function on the current DynamoDB catalog (before the 1,000
            # generated blueprints exist, unless BENCH_MOTO_1000=1).
            sync_cold = sync_cold_starts({**dyn_env, "RUST_LOG": "info"})
    if not moto_1000:
        global MOTO_SERVICES
        MOTO_SERVICES = 2
    status, catalog = lifecycle.http("GET", os.environ["CLOUDIFY_SIM_URL"] + "/_sim/blueprints")
    service = None
    proc, url = start_serve(sqlite_env)
    try:
        status, cat = http("GET", url + "/v2/catalog")
        service = next(s for s in cat["services"] if s["name"] == f"{TAG}-mariadb")
        services = len(cat["services"])
    finally:
        proc.terminate()
        proc.wait()
    ids = {"service_id": service["id"], "plan_id": service["plans"][0]["id"]}
    log(f"catalog has {services} services")

    say(f"## Run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    say()
    cold = cold_starts({**dyn_env, "RUST_LOG": "info"}, ids, host, port)
    report_cold(cold + [(name, binary, runs, cold[0][3]) for name, binary, runs in sync_cold])
    if os.environ.get("BENCH_LOAD", "1") == "1":
        load_results = [("SQLite", load("sqlite", sqlite_env, ids, params)),
                        ("DynamoDB (moto)", load("dynamodb", dyn_env, ids, params))]
        report_load(load_results)
    report_round_trips(round_trips(dyn_env, ids, params)
                       + round_trips(dyn_env, ids, params, max_age="60s"))
    if SYNC_BIG:
        add_blueprints(1000, SYNC_BIG)
        log(f"{SYNC_BIG} blueprints in the simulator")
        big = sqlite_env.copy()
        big["BROKER_STORE"] = f"sqlite:{tmp}/big.db"
        sync_results += sync_rows(f"SQLite (fresh), {SYNC_BIG:,}", big)
        if os.environ.get("BENCH_SYNC_BIG_DYNAMODB", "0") == "1":
            table = f"{TAG}big"
            run([CLI, "store", "create-table", f"dynamodb:{table}"], dyn_env)
            sync_results += sync_rows(f"DynamoDB (moto, fresh), {SYNC_BIG:,}",
                                      {**dyn_env, "BROKER_STORE": f"dynamodb:{table}",
                                       "AWS_ENDPOINT_URL_DYNAMODB": dproxy.url}, dproxy)
    report_sync(sync_results)
    say(f"(services in the served catalog: {services}; whole run {time.time() - started:.0f} s)")
    with open(os.environ.get("BENCH_REPORT", os.path.join(tempfile.gettempdir(),
                                                          "bench-report.md")), "w") as f:
        f.write("\n".join(OUT) + "\n")
    try:
        lifecycle.cleanup(TAG)
    except SystemExit:
        pass


if __name__ == "__main__":
    main()
