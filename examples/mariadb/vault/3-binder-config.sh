#!/usr/bin/env bash
# Step 3 (an operator, once per service): store the binder config of the MariaDB service.
# Usage: 3-binder-config.sh [FILE]   (default: ../binder-config.json, the new format)
# It lands at <kv mount>/binders/mariadb, the path `cloudify-osb service set-binder` names.
# Run it again after editing the file: the next configure of an instance reads it.
. "$(dirname "$0")/_vault.sh"
kv_mount=${VAULT_KV_MOUNT:-cloudify-osb}
file=${1:-$here/../binder-config.json}
doc=$(python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$file") \
  || { echo "$file is not JSON" >&2; exit 1; }
vault_api POST "$kv_mount/data/binders/mariadb" "{\"data\": $doc}" >/dev/null
echo "binder config: $(basename "$file") stored at $kv_mount/binders/mariadb"
