#!/usr/bin/env bash
# Step 5 (an operator, once per service): tell the broker that blueprint `mariadb` binds
# through the Vault binder with the config that vault/3-binder-config.sh stored. The
# setting is kept in the broker's store (the same --store/BROKER_STORE as `serve`) and
# survives every sync; the next sync marks the offering bindable. Extra arguments go to
# the CLI.
set -euo pipefail
exec "${CLOUDIFY_OSB:-cloudify-osb}" service set-binder mariadb \
  --binder vault --config "${VAULT_KV_MOUNT:-cloudify-osb}/binders/mariadb" "$@"
