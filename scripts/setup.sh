#!/usr/bin/env bash
# Installs what veil's tests need on a fresh machine. Idempotent: every step
# checks first and skips what is already there.
#   - Go modules
#   - the Vault server (built once from the Go module proxy, cached in
#     ~/.cache/veil-tools; see scripts/install-vault.sh)
#   - golangci-lint (built once from the Go module proxy into
#     ~/.cache/veil-tools/bin; scripts/static-checks.sh runs it)
#   - redis-server (Debian package, its service left stopped)
#   - chromium (Debian package), for the console's headless browser test
#   - zsh and fish (Debian packages), to try veil's completion scripts
#   - Node.js (Debian package, only when there is none) and the openai npm
#     package in test/node/node_modules (npm ci)
#
# Each run writes what the installers print to a log of its own,
# $cache/logs/setup-<time>-<pid>.log (the last 20 are kept), says every 30
# seconds that a long build is still going or waiting for another run's,
# and ends with the time each step took.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/progress.sh
. scripts/progress.sh

cache=${VEIL_TOOLS_DIR:-${HOME:-/root}/.cache/veil-tools}
mkdir -p "$cache/logs"
log=$cache/logs/setup-$(date -u +%Y%m%dT%H%M%SZ)-$$.log
: >"$log"
# Keep the last 20 logs of each kind.
for kind in setup test; do
  { ls -1t "$cache/logs/$kind-"*.log 2>/dev/null || true; } | tail -n +21 | xargs -r rm -f
done
echo "setup: log in $log"

# Step timings, printed at the end.
steps=()
step_start=$(date +%s)
setup_start=$step_start
step_done() {
  local now
  now=$(date +%s)
  steps+=("$(printf '%-16s %4ds' "$1" $((now - step_start)))")
  step_start=$now
}

# log_tail prints the end of this run's log after a failure.
log_tail() {
  echo "setup: $1 failed; the end of $log:" >&2
  tail -30 "$log" >&2
  exit 1
}

echo "setup: go modules"
go mod download >>"$log" 2>&1 || log_tail "go mod download"
step_done "go modules"

echo "setup: vault"
# install-vault.sh's progress lines are shown as they come; everything it
# prints goes to the log.
if ! vault_bin=$(bash scripts/install-vault.sh 2> >(tee -a "$log" | grep --line-buffered '^install-vault:' >&2)); then
  log_tail "building Vault"
fi
echo "setup: vault at $vault_bin ($("$vault_bin" version))"
step_done "vault"

# golangci-lint v2, for scripts/static-checks.sh: built from the Go module
# proxy into $cache/bin, unless the binary there reports this version.
echo "setup: golangci-lint"
golangci_version=2.15.0
golangci_bin=$cache/bin/golangci-lint
if [ -x "$golangci_bin" ] && "$golangci_bin" version 2>/dev/null | grep -q "has version $golangci_version "; then
  golangci_status=present
else
  echo "setup: building golangci-lint v$golangci_version from the Go module proxy (a few minutes, once)"
  GOBIN=$cache/bin go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$golangci_version" >>"$log" 2>&1 &
  progress_wait $! setup "building golangci-lint" || log_tail "building golangci-lint"
  golangci_status=installed
fi
echo "setup: golangci-lint v$golangci_version at $golangci_bin ($golangci_status)"
step_done "golangci-lint"

# Runs a command as root: directly when we are root (as in CI), else via sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs Debian packages quietly, logging to this run's log. When no
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
  echo "setup: installing $* (Debian packages)"
  { as_root apt-get update -qq &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"; } >>"$log" 2>&1 &
  progress_wait $! setup "installing $*" || rc=$?
  if [ -n "$added" ]; then as_root rm -f "$policy"; fi
  if [ "$rc" -ne 0 ]; then
    log_tail "apt-get install $*"
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
step_done "redis-server"

# chromium, for the console's browser test (internal/browsertest drives it
# headless over the DevTools pipe). VEIL_CHROMIUM may name another build.
chromium_status=present
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
  chromium_status=installed
fi
chromium_bin=$(command -v chromium 2>/dev/null || echo /usr/bin/chromium)
chromium_version=$("$chromium_bin" --version 2>/dev/null | sed -n 's/^Chromium \([^ ]*\).*/\1/p')
echo "setup: chromium $chromium_version at $chromium_bin ($chromium_status)"
step_done "chromium"

# zsh and fish, whose completion functions the CLI's tests run on the
# scripts `veil completion` prints (bash is there already).
shells_missing=()
for sh in zsh fish; do
  command -v "$sh" >/dev/null 2>&1 || shells_missing+=("$sh")
done
shells_status=present
if [ ${#shells_missing[@]} -gt 0 ]; then
  apt_install "${shells_missing[@]}"
  shells_status="installed ${shells_missing[*]}"
fi
echo "setup: zsh and fish ($shells_status)"
step_done "shells"

# Node.js, to drive the official openai npm SDK (internal/nodetest). Node 20
# or later is expected; Debian's package is only a fallback when there is no
# node at all.
node_status=present
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
  node_status=installed
fi
echo "setup: node $(node --version) at $(command -v node) ($node_status)"
step_done "node"

# The openai npm package and its lock, in test/node/node_modules: installed
# when missing or when package-lock.json changed since the last install.
node_dir=test/node
if [ ! -d "$node_dir/node_modules/openai" ] || [ ! -d "$node_dir/node_modules/openai-v5" ] ||
  [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules" ]; then
  npm ci --no-audit --no-fund --prefix "$node_dir" >>"$log" 2>&1 || log_tail "npm ci in $node_dir"
  touch "$node_dir/node_modules" # npm ci may leave it older than the lock
  npm_status=installed
else
  npm_status=present
fi
openai_version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$node_dir/node_modules/openai/package.json")
openai_v5_version=$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$node_dir/node_modules/openai-v5/package.json")
echo "setup: node sdk deps: openai $openai_version and $openai_v5_version in $node_dir/node_modules ($npm_status)"
step_done "node sdk deps"

echo "setup: done in $(($(date +%s) - setup_start))s"
printf 'setup:   %s\n' "${steps[@]}"
