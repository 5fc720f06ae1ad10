#!/usr/bin/env bash
# Runs every test, as `make test` and CI do: setup (scripts/setup.sh), the
# static checks (scripts/static-checks.sh), the gofmt check, go vet, and go
# test with the race detector. Everything printed also goes to a log of this
# run, $cache/logs/test-<time>-<pid>.log, and it ends with the time each
# phase took, so a slow phase is seen at once. PKGS selects packages
# (default ./...).
set -uo pipefail
cd "$(dirname "$0")/.."

cache=${VEIL_TOOLS_DIR:-${HOME:-/root}/.cache/veil-tools}
mkdir -p "$cache/logs"
log=$cache/logs/test-$(date -u +%Y%m%dT%H%M%SZ)-$$.log
pkgs=${PKGS:-./...}
start_all=$(date +%s)
phases=()

# summary prints each phase's time, the total and the log.
summary() {
  echo "test: $1 in $(($(date +%s) - start_all))s (log: $log)"
  printf 'test:   %s\n' "${phases[@]}"
}

# phase NAME COMMAND...: runs a phase, its output shown and logged; a
# failed phase ends the run with the summary.
phase() {
  local name=$1 start rc
  shift
  echo "test: $name" | tee -a "$log"
  start=$(date +%s)
  "$@" 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  phases+=("$(printf '%-8s %5ds' "$name" $(($(date +%s) - start)))")
  if [ "$rc" -ne 0 ]; then
    phases[-1]+=" FAILED"
    summary "FAILED at $name" >&2
    exit "$rc"
  fi
}

phase setup bash scripts/setup.sh
phase static bash scripts/static-checks.sh
phase format bash scripts/check-format.sh
# shellcheck disable=SC2086 # PKGS is a list of patterns
phase vet go vet $pkgs
# shellcheck disable=SC2086
phase test go test -race -count=1 -timeout 20m $pkgs
summary "passed"
