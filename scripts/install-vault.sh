#!/usr/bin/env bash
# Builds the HashiCorp Vault server that veil's tests run in dev mode, from
# the Go module proxy, and caches the binary outside the repository.
# Idempotent: when the cached binary is there and reports the right
# version, nothing is built. Prints the binary's path on stdout.
#
# Only Vault v1.21.0 is known to compile against published modules: its
# go.mod replaces api, api/auth/{approle,kubernetes,userpass} and sdk with
# folders the module zip lacks, so those replace lines are dropped and the
# published versions it requires are used instead.
#
# While it builds, and while it waits for another run's build of the same
# version (one build at a time, under a lock), it says so on stderr every
# 30 seconds, with lines that start with "install-vault:".
set -euo pipefail
# shellcheck source=scripts/progress.sh
. "$(dirname "$0")/progress.sh"

version=1.21.0
cache=${VEIL_TOOLS_DIR:-${HOME:-/root}/.cache/veil-tools}
bin=$cache/vault-$version/vault

have() { [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "v$version"; }

if have; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache/vault-$version"
lock=$cache/vault-$version.lock
exec 9>"$lock"
# One build at a time; a second caller waits and then finds the binary.
if ! flock -n 9; then
  echo "install-vault: another run is building Vault v$version; waiting for it (lock $lock)" >&2
  flock 9 &
  progress_wait $! install-vault "waiting for the other build of Vault v$version"
  echo "install-vault: the other build is done" >&2
fi
if have; then
  echo "$bin"
  exit 0
fi

echo "install-vault: building Vault v$version from the Go module proxy (several minutes, once)" >&2
start=$(date +%s)
dir=$(go mod download -json "github.com/hashicorp/vault@v$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$dir" ] || { echo "install-vault: module download failed" >&2; exit 1; }
src=$cache/src-vault-$version
rm -rf "$src"
cp -r "$dir" "$src"
chmod -R u+w "$src"
sed -i '/^replace github\.com\/hashicorp\/vault\/.* => \.\//d' "$src/go.mod"
(cd "$src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -o "$bin.tmp" .) &
progress_wait $! install-vault "building Vault v$version"
mv "$bin.tmp" "$bin"
rm -rf "$src"
echo "install-vault: built $("$bin" version) in $(( $(date +%s) - start ))s" >&2
echo "$bin"
