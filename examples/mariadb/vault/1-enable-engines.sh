#!/usr/bin/env bash
# Step 1 (an operator, once per Vault): the database secrets engine at `database/` and the
# broker's own KV v2 mount at `cloudify-osb/` (VAULT_KV_MOUNT). Nothing per service or per
# instance is created here: the broker writes each instance's connection and role itself.
# Safe to run again.
. "$(dirname "$0")/_vault.sh"
kv_mount=${VAULT_KV_MOUNT:-cloudify-osb}

if mounted database; then
  echo "database secrets engine: already enabled at database/"
else
  vault_api POST sys/mounts/database '{"type": "database"}' >/dev/null
  echo "database secrets engine: enabled at database/"
fi
if mounted "$kv_mount"; then
  echo "KV v2: already enabled at $kv_mount/"
else
  vault_api POST "sys/mounts/$kv_mount" '{"type": "kv", "options": {"version": "2"}}' >/dev/null
  echo "KV v2: enabled at $kv_mount/"
fi
