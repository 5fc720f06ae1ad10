#!/usr/bin/env bash
# Installs what veil's tests need on a fresh machine. Idempotent: every step
# checks first and skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "setup: go modules"
go mod download
