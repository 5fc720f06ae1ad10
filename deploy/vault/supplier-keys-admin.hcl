# Policy for the Vault admins who store and rotate suppliers' own provider
# keys. They can write new versions, read metadata, and delete or destroy a
# supplier's key; they cannot touch WedSync's platform keys.
#
#   vault policy write wedsync-supplier-keys-admin deploy/vault/supplier-keys-admin.hcl

path "secret/data/wedsync/suppliers/*" {
  capabilities = ["create", "update", "read", "delete"]
}

path "secret/metadata/wedsync/suppliers/*" {
  capabilities = ["read", "list", "delete"]
}

path "secret/delete/wedsync/suppliers/*" {
  capabilities = ["update"]
}

path "secret/undelete/wedsync/suppliers/*" {
  capabilities = ["update"]
}

path "secret/destroy/wedsync/suppliers/*" {
  capabilities = ["update"]
}
