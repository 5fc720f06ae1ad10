#!/usr/bin/env bash
# Gives the pods of deploy/kubernetes read access to the keys veil needs:
# writes the policy "veil" (deploy/vault/veil.hcl) and the Kubernetes auth
# role "veil", bound to the service account wedsync-app in the namespace
# wedsync and to tokens whose audience is "vault" (the projected token in
# deployment.yaml). Run it as a Vault admin, with VAULT_ADDR and a token
# that may write policies and auth roles.
#
#   deploy/kubernetes/vault-role.sh
#   NAMESPACE=wedsync-staging deploy/kubernetes/vault-role.sh
#
# The Kubernetes auth method itself must be enabled and configured once per
# cluster (see README.md beside this file).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
namespace="${NAMESPACE:-wedsync}"
service_account="${SERVICE_ACCOUNT:-wedsync-app}"
mount="${AUTH_MOUNT:-kubernetes}"

vault policy write veil "$here/../vault/veil.hcl"

# veil logs in again before token_max_ttl, and the LifetimeWatcher renews
# the token in between.
vault write "auth/$mount/role/veil" \
  bound_service_account_names="$service_account" \
  bound_service_account_namespaces="$namespace" \
  audience=vault \
  token_policies=veil \
  token_ttl=1h \
  token_max_ttl=24h

vault read "auth/$mount/role/veil"
