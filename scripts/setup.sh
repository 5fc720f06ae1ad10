#!/usr/bin/env bash
# Installs what veil's tests need on a fresh machine. Idempotent: every step
# checks first and skips what is already there.
#   - Go modules
#   - the Vault server (built once from the Go module proxy, cached in
#     ~/.cache/veil-tools; see scripts/install-vault.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${VEIL_TOOLS_DIR:-${HOME:-/root}/.cache/veil-tools}
mkdir -p "$cache"

echo "setup: go modules"
go mod download

echo "setup: vault"
if ! vault_bin=$(bash scripts/install-vault.sh 2>"$cache/install-vault.log"); then
  echo "setup: building Vault failed; the end of $cache/install-vault.log:" >&2
  tail -30 "$cache/install-vault.log" >&2
  exit 1
fi
grep '^install-vault:' "$cache/install-vault.log" || true
echo "setup: vault at $vault_bin ($("$vault_bin" version))"
