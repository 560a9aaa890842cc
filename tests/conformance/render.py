#!/usr/bin/env python3
"""Renders the OpenAPI document the conformance stage tests: openapi/cloudify-osb.yaml with
the live catalog's service and plan IDs as enums (so generated requests name real offerings
and stateful chains get past validation) and, when the catalog has a single plan, that plan's
parameter schemas for provision and update. Usage: render.py TEMPLATE CATALOG_JSON OUT_JSON"""
import copy
import json
import sys

import yaml


def schema_of(plan, *path):
    node = plan.get("schemas", {})
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    if not node:
        return None
    node = copy.deepcopy(node)
    node.pop("$schema", None)  # JSON Schema draft-04 keyword; not part of OpenAPI 3.0 schemas
    node["nullable"] = True  # the broker reads a null `parameters` as absent
    return node


def main(template, catalog_path, out):
    with open(template) as f:
        doc = yaml.safe_load(f)
    with open(catalog_path) as f:
        catalog = json.load(f)
    services = catalog["services"]
    if not services:
        sys.exit("render.py: the live catalog is empty; nothing to test against")
    service_ids = [s["id"] for s in services]
    plans = [p for s in services for p in s["plans"]]
    schemas = doc["components"]["schemas"]
    schemas["ServiceId"] = {"type": "string", "enum": service_ids}
    schemas["PlanId"] = {"type": "string", "enum": [p["id"] for p in plans]}
    if len(plans) == 1:
        create = schema_of(plans[0], "service_instance", "create", "parameters")
        update = schema_of(plans[0], "service_instance", "update", "parameters")
        if create:
            schemas["ProvisionRequest"]["properties"]["parameters"] = create
        if update:
            schemas["UpdateRequest"]["properties"]["parameters"] = update
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"render.py: {len(service_ids)} service(s), {len(plans)} plan(s) -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
