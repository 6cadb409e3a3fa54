#!/bin/sh
# The image's one entrypoint; the first argument picks the process this container runs:
#   console (default)  the Streamlit console on $PORT (8501)
#   api                the agent API on $API_PORT (8000)
#   worker             holds conversations; run as many as you like
#   probe              probes the health endpoints every $PROBE_EVERY_SECONDS (30)
#   alerts             evaluates the alert rules (`python -m core alerts run`)
#   migrate            one-shot: migrates DATABASE_URL to the newest revision; no other role migrates on start
#   health             the image's HEALTHCHECK: checks whichever role above this container runs
#   anything else      runs as given, e.g. `python -m core audit verify`
set -eu
cd "$(dirname "$0")/.."
role_file="${AGENTOPS_RUN_DIR:-/tmp}/agentops-role"
role="${1:-console}"
if [ "$#" -gt 0 ]; then shift; fi

# The HEALTHCHECK runs as a separate command in the same container: this file tells it which check applies.
remember() { printf '%s\n' "$1" >"$role_file"; }

case "$role" in
  console) remember console
    exec python -m streamlit run dashboard/app.py --server.address 0.0.0.0 --server.port "${PORT:-8501}" "$@" ;;
  api) remember api
    exec python -m core api --host 0.0.0.0 --port "${API_PORT:-8000}" "$@" ;;
  worker) remember worker; exec python -m core worker "$@" ;;
  probe) remember probe; exec python -m core probe --every "${PROBE_EVERY_SECONDS:-30}" "$@" ;;
  alerts) remember alerts; exec python -m core alerts run "$@" ;;
  migrate) exec python -m core db setup "$@" ;;
  health) exec python scripts/healthcheck.py "$(cat "$role_file" 2>/dev/null || echo none)" ;;
  *) exec "$role" "$@" ;;
esac
