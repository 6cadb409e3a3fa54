#!/usr/bin/env bash
# `make run`: migrate and seed the embedded SQLite database on first run, then start the worker, the demo
# traffic, the prober, the alert evaluator, the agent API and the console; stopping the console stops the others.
# PORT (console, 8501) and API_PORT (agent API, 8000) choose the ports; each process logs to $RUN_DIR/<name>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
RUN_DIR="${RUN_DIR:-var}"
PORT="${PORT:-8501}"
API_PORT="${API_PORT:-8000}"
if [ -z "${DATABASE_URL:-}" ]; then mkdir -p var; export DATABASE_URL=sqlite:///var/agentops.db; fi
# The prober checks the API started here and nothing else, whatever else listens on 8000 or .env says.
export API_BASE_URL="http://127.0.0.1:$API_PORT"
export HEALTH_PROBE_URLS="$API_BASE_URL/health,$API_BASE_URL/api/v2/agents/health"
mkdir -p "$RUN_DIR"
$BIN/python -m core db setup
if [ ! -f "$RUN_DIR/.seeded" ]; then
  $BIN/python -m core seed --test-data demo | tee "$RUN_DIR/seed.log"
  # The workers fill the review queues from the last REVIEW_FILL_DAYS; the demo's history is older than that.
  $BIN/python -m core review fill --days 30 | tee -a "$RUN_DIR/seed.log"
  $BIN/python -m core activate --mode full --reason "make run: demo system switched on" >/dev/null
  touch "$RUN_DIR/.seeded"
fi
echo
echo "Demo sign-ins (development only):"
for u in po support engineer admin; do echo "  $u / $u-demo-pass"; done
echo "Console: http://127.0.0.1:$PORT   agent API: $API_BASE_URL   logs: $RUN_DIR/{worker,traffic,probe,api,alerts}.log"
echo
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
$BIN/python -m core worker >"$RUN_DIR/worker.log" 2>&1 & pids+=($!)
$BIN/python -m core conversations enqueue --count 3 --every 10 >"$RUN_DIR/traffic.log" 2>&1 & pids+=($!)
$BIN/python -m core api --host 127.0.0.1 --port "$API_PORT" >"$RUN_DIR/api.log" 2>&1 & pids+=($!)
# The first probe waits until the API listens, so a slow start is not recorded as an outage.
(for _ in $(seq 120); do (exec 3<>"/dev/tcp/127.0.0.1/$API_PORT") 2>/dev/null && break; sleep 0.5; done
 exec $BIN/python -m core probe --every 30) >"$RUN_DIR/probe.log" 2>&1 & pids+=($!)
# The alert evaluator (every ALERT_EVAL_SECONDS, 15); it installs the default rules on its first run.
$BIN/python -m core alerts run >"$RUN_DIR/alerts.log" 2>&1 & pids+=($!)
$BIN/python -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port "$PORT" \
  --server.headless true --browser.gatherUsageStats false
