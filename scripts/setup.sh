#!/usr/bin/env bash
# Installs what veil's tests need on a fresh machine. Idempotent: every step
# checks first and skips what is already there.
#   - Go modules
#   - the Vault server (built once from the Go module proxy, cached in
#     ~/.cache/veil-tools; see scripts/install-vault.sh)
#   - golangci-lint (built once from the Go module proxy into
#     ~/.cache/veil-tools/bin; scripts/static-checks.sh runs it)
#   - redis-server (Debian package, its service left stopped)
#   - Node.js (Debian package, only when there is none) and the openai npm
#     package in test/node/node_modules (npm ci)
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

# golangci-lint v2, for scripts/static-checks.sh: built from the Go module
# proxy into $cache/bin, unless the binary there reports this version.
echo "setup: golangci-lint"
golangci_version=2.15.0
golangci_bin=$cache/bin/golangci-lint
if [ -x "$golangci_bin" ] && "$golangci_bin" version 2>/dev/null | grep -q "has version $golangci_version "; then
  golangci_status=present
else
  echo "setup: building golangci-lint v$golangci_version from the Go module proxy (a few minutes, once)"
  if ! GOBIN=$cache/bin go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$golangci_version" >"$cache/install-golangci-lint.log" 2>&1; then
    echo "setup: building golangci-lint failed; the end of $cache/install-golangci-lint.log:" >&2
    tail -30 "$cache/install-golangci-lint.log" >&2
    exit 1
  fi
  golangci_status=installed
fi
echo "setup: golangci-lint v$golangci_version at $golangci_bin ($golangci_status)"

# Runs a command as root: directly when we are root (as in CI), else via sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs Debian packages quietly, logging to $cache/apt.log. When no
# policy-rc.d is in place, one is put there for the install so that the
# packages' services (such as redis-server on port 6379) are not started:
# tests run their own servers.
apt_install() {
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod 755 "$policy"
    added=1
  fi
  local rc=0
  { as_root apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >"$cache/apt.log" 2>&1 || rc=$?
  if [ -n "$added" ]; then as_root rm -f "$policy"; fi
  if [ "$rc" -ne 0 ]; then
    echo "setup: apt-get install $* failed; the end of $cache/apt.log:" >&2
    tail -30 "$cache/apt.log" >&2
    exit 1
  fi
}

# redis-server, for the usage Redis sink's tests (internal/redistest). The
# tests start their own server on a free port; the package's system service
# is kept from starting and disabled.
redis_status=present
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  apt_install redis-server
  if command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now --quiet redis-server >/dev/null 2>&1 || true
  fi
  redis_status=installed
fi
redis_bin=$(command -v redis-server 2>/dev/null || echo /usr/bin/redis-server)
redis_version=$("$redis_bin" --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')
echo "setup: redis-server $redis_version at $redis_bin ($redis_status)"

# Node.js, to drive the official openai npm SDK (internal/nodetest). Node 20
# or later is expected; Debian's package is only a fallback when there is no
# node at all.
node_status=present
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
  node_status=installed
fi
echo "setup: node $(node --version) at $(command -v node) ($node_status)"

# The openai npm package and its lock, in test/node/node_modules: installed
# when missing or when package-lock.json changed since the last install.
node_dir=test/node
if [ ! -d "$node_dir/node_modules/openai" ] || [ ! -d "$node_dir/node_modules/openai-v5" ] ||
  [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules" ]; then
  if ! npm ci --no-audit --no-fund --prefix "$node_dir" >"$cache/npm-ci.log" 2>&1; then
    echo "setup: npm ci in $node_dir failed; the end of $cache/npm-ci.log:" >&2
    tail -30 "$cache/npm-ci.log" >&2
    exit 1
  fi
  touch "$node_dir/node_modules" # npm ci may leave it older than the lock
  npm_status=installed
else
  npm_status=present
fi
openai_version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$node_dir/node_modules/openai/package.json")
openai_v5_version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$node_dir/node_modules/openai-v5/package.json")
echo "setup: node sdk deps: openai $openai_version and $openai_v5_version in $node_dir/node_modules ($npm_status)"
