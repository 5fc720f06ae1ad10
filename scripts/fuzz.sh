#!/usr/bin/env bash
# Runs every fuzz target in the module for the given time each (default 15s).
#
# Go 1.26's fuzzing coordinator can fail a target with a bare "context
# deadline exceeded" when -fuzztime ends while a worker is mid-call on a
# busy machine (go.dev/issue/75804, fixed in Go 1.27): nothing was found and
# no failing input was written. Such a run is tried once more; a run that
# wrote a failing input, or failed any other way, fails at once.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-15s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# fuzz_one runs one target, printing its output; it fails as go test does.
fuzz_one() {
  go test -run '^$' -fuzz "^${2}\$" -fuzztime "$fuzztime" "$1" 2>&1 | tee "$log"
  return "${PIPESTATUS[0]}"
}

# deadline_flake reports whether the last run failed only by the
# coordinator's deadline race.
deadline_flake() {
  grep -q 'context deadline exceeded' "$log" && ! grep -q -e 'Failing input written' -e 'panic:' "$log"
}

for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz: $pkg $target ($fuzztime)"
    if fuzz_one "$pkg" "$target"; then
      continue
    fi
    if deadline_flake; then
      echo "fuzz: $target ended on Go's -fuzztime deadline race with nothing found; running it once more"
      fuzz_one "$pkg" "$target"
      continue
    fi
    exit 1
  done
done
