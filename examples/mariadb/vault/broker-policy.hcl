# What the broker's Vault token may do (4-broker-token.sh writes it as policy `cloudify-osb`).
# Per-instance objects are named osb-<instance> (the binder's default prefix), so the broker
# can touch no connection or role it did not create. Mounts as in 1-enable-engines.sh.

# Binder configs and the MariaDB admin password: read only.
path "cloudify-osb/data/binders/*" {
  capabilities = ["read"]
}
path "cloudify-osb/data/admin/*" {
  capabilities = ["read"]
}

# What the broker keeps per instance and per binding (non-secret records, handed-out credentials).
path "cloudify-osb/data/instances/*" {
  capabilities = ["create", "read", "update"]
}
path "cloudify-osb/data/bindings/*" {
  capabilities = ["create", "read", "update"]
}
path "cloudify-osb/metadata/instances/*" {
  capabilities = ["list", "delete"]
}
path "cloudify-osb/metadata/bindings/*" {
  capabilities = ["list", "delete"]
}

# Per-instance connection and role; credentials per binding.
path "database/config/osb-*" {
  capabilities = ["create", "update", "read", "delete"]
}
path "database/roles/osb-*" {
  capabilities = ["create", "update", "read", "delete"]
}
path "database/creds/osb-*" {
  capabilities = ["read"]
}

# Leases of those credentials: renew, look up, revoke; revoke-prefix for deprovision.
path "sys/leases/renew" {
  capabilities = ["update"]
}
path "sys/leases/lookup" {
  capabilities = ["update"]
}
path "sys/leases/revoke" {
  capabilities = ["update"]
}
path "sys/leases/revoke-prefix/database/creds/osb-*" {
  capabilities = ["update", "sudo"]
}
