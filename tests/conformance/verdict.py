#!/usr/bin/env python3
"""Verdict of the conformance stage, from schemathesis's own reports: no failure and no error
in the JSON run report; from the NDJSON event stream, independently of schemathesis's checks:
no 5xx, no error answer that is not a JSON object with `error` and `description`, and more
than zero stateful steps, some of them reached through a link. The broker password must not
appear in the broker's log. Prints the counts. Usage: verdict.py REPORT_JSON EVENTS_NDJSON
SERVE_LOG BROKER_PASSWORD"""
import base64
import collections
import json
import sys


def body_of(response):
    content = response.get("content") or {}
    if "$base64" in content:
        return base64.b64decode(content["$base64"])
    return (content.get("string") or "").encode()


def main(report_path, events_path, log_path, password):
    problems = []
    with open(report_path) as f:
        report = json.load(f)
    for failure in report.get("failures", []):
        problems.append(f"schemathesis failure {failure['code']} {failure['title']}: "
                        f"{', '.join(failure['operations'])}")
    for error in report.get("errors", []):
        problems.append(f"schemathesis error: {error['title']} x{error['count']}")

    cases = collections.Counter()
    statuses = collections.Counter()
    steps = linked = 0
    with open(events_path) as f:
        for line in f:
            event = json.loads(line)
            done = event.get("ScenarioFinished")
            if not done:
                continue
            phase = done["phase"]
            recorder = done.get("recorder") or {}
            for case_id, case in (recorder.get("cases") or {}).items():
                cases[phase] += 1
                if phase == "stateful":
                    steps += 1
                    linked += bool(case.get("is_transition_applied"))
            for case_id, interaction in (recorder.get("interactions") or {}).items():
                response = interaction.get("response")
                if not response:
                    continue
                status = response["status_code"]
                statuses[status] += 1
                where = f"{interaction['request']['method']} {interaction['request']['uri']}"
                if status >= 500:
                    problems.append(f"server error {status} on {where}")
                if status >= 400 and status != 304:
                    ctype = (response.get("headers", {}).get("content-type") or [""])[0]
                    try:
                        body = json.loads(body_of(response))
                        ok = isinstance(body, dict) and body.get("error") and body.get("description")
                    except ValueError:
                        ok = False
                    if not ctype.startswith("application/json") or not ok:
                        problems.append(f"non-JSON or incomplete error body {status} on {where}")
    total = sum(cases.values())
    print(f"conformance: {total} test cases "
          f"({', '.join(f'{k} {v}' for k, v in sorted(cases.items()))}); "
          f"stateful steps {steps}, of which {linked} followed a link")
    print(f"conformance: responses by status {dict(sorted(statuses.items()))}")
    if steps == 0:
        problems.append("no stateful step ran")
    if linked == 0:
        problems.append("no stateful step followed a link (the links do not chain)")
    with open(log_path, errors="replace") as f:
        if password in f.read():
            problems.append("the broker password appears in the broker's log")
    for p in problems[:50]:
        print(f"conformance: FAIL {p}")
    if problems:
        print(f"conformance: {len(problems)} problem(s)")
        return 1
    print("conformance: no server error, no non-JSON error body, no schema violation")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
