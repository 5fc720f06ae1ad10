# Policy for veil itself: read suppliers' own provider keys and WedSync's
# platform keys, and check their versions. Nothing else, and never write.
#
#   vault policy write veil deploy/vault/veil.hcl
#
# Paths assume the KV v2 engine mounted at "secret" and veil's default
# supplier_path "wedsync/suppliers/{supplier}/{provider}".

path "secret/data/wedsync/suppliers/*" {
  capabilities = ["read"]
}

path "secret/metadata/wedsync/suppliers/*" {
  capabilities = ["read"]
}

path "secret/data/wedsync/platform/*" {
  capabilities = ["read"]
}

path "secret/metadata/wedsync/platform/*" {
  capabilities = ["read"]
}

# Keep its own token alive (also in Vault's default policy).
path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}
