#!/usr/bin/env bash
# Step 4 (an operator, once per broker): the broker's own least-privilege policy
# (broker-policy.hcl) and a renewable token with it, for `cloudify-osb serve --vault-token`
# (or VAULT_TOKEN in the broker's environment). Usage: 4-broker-token.sh OUTFILE
# The token is written to OUTFILE (mode 600), never printed.
. "$(dirname "$0")/_vault.sh"
out=${1:?usage: $0 OUTFILE (where the broker token is written)}
policy=$(cat "$here/broker-policy.hcl")
vault_api PUT sys/policies/acl/cloudify-osb "{\"policy\": $(json_string "$policy")}" >/dev/null
echo "policy cloudify-osb: written"
(umask 077
 vault_api POST auth/token/create \
   '{"policies": ["cloudify-osb"], "no_default_policy": false, "renewable": true, "ttl": "24h", "display_name": "cloudify-osb"}' \
   | python3 -c 'import json, sys; print(json.load(sys.stdin)["auth"]["client_token"])' >"$out")
echo "broker token: written to $out"
