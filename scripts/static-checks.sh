#!/usr/bin/env bash
# The static checks that `make test` runs before the tests (docs/adr/0014):
#   lint  golangci-lint with .golangci.yml on the whole module, and on
#         cmd/veil as the image builds it (-tags sidecar)
#   mod   go.mod and go.sum tidy (go mod tidy -diff) and verified against
#         their hashes (go mod verify)
#   fuzz  a short run of every fuzz target (STATIC_FUZZTIME each, default
#         3s), through scripts/fuzz.sh
# With no argument it runs all three, each even when an earlier one failed,
# and fails if any did. golangci-lint is the one scripts/setup.sh builds
# into ~/.cache/veil-tools/bin ($GOLANGCI_LINT overrides it).
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${VEIL_TOOLS_DIR:-${HOME:-/root}/.cache/veil-tools}
golangci=${GOLANGCI_LINT:-$cache/bin/golangci-lint}
fuzztime=${STATIC_FUZZTIME:-3s}

lint() {
  if [ ! -x "$golangci" ]; then
    echo "static: no golangci-lint at $golangci: run make setup" >&2
    return 1
  fi
  "$golangci" run ./... &&
    # The image's build (-tags sidecar) has files of its own in cmd/veil.
    "$golangci" run --build-tags sidecar ./cmd/veil/...
}

mod() {
  go mod tidy -diff && go mod verify
}

fuzz() {
  bash scripts/fuzz.sh "$fuzztime"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(lint mod fuzz)
failed=()
for step in "${steps[@]}"; do
  case $step in
    lint | mod | fuzz) ;;
    *) echo "static: unknown step $step (want lint, mod or fuzz)" >&2; exit 2 ;;
  esac
  echo "static: $step"
  start=$(date +%s)
  if "$step"; then
    echo "static: $step passed in $(( $(date +%s) - start ))s"
  else
    echo "static: $step FAILED in $(( $(date +%s) - start ))s" >&2
    failed+=("$step")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "static: failed: ${failed[*]}" >&2
  exit 1
fi
