# Shell helpers for scripts that run long steps; sourced, not run.
#
# progress_wait PID PREFIX WHAT: waits for PID, printing "PREFIX: still WHAT
# (Ns)" on stderr every PROGRESS_EVERY seconds (default 30) meanwhile, and
# returns PID's exit status.
progress_wait() {
  local pid=$1 prefix=$2 what=$3 every=${PROGRESS_EVERY:-30}
  local start now last
  start=$(date +%s)
  last=$start
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    now=$(date +%s)
    if [ $((now - last)) -ge "$every" ] && kill -0 "$pid" 2>/dev/null; then
      echo "$prefix: still $what ($((now - start))s)" >&2
      last=$now
    fi
  done
  wait "$pid"
}
