#!/usr/bin/env bash
# `make run`: migrate and seed the embedded SQLite database on first run, then start the
# worker, the agent API and the console; stopping the console stops the others.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export DATABASE_URL="${DATABASE_URL:-sqlite:///var/agentops.db}"
mkdir -p var
$BIN/python -m core db setup
if [ ! -f var/.seeded ]; then
  $BIN/python -m core seed --test-data demo | tee var/seed.log
  $BIN/python -m core activate --mode full --reason "make run: demo system switched on" >/dev/null
  touch var/.seeded
fi
echo
echo "Demo sign-ins (development only):"
for u in po support engineer admin; do echo "  $u / $u-demo-pass"; done
echo
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
if $BIN/python -m core --help | grep -q " worker "; then
  $BIN/python -m core worker >var/worker.log 2>&1 & pids+=($!)
  $BIN/python -m core conversations enqueue --count 3 --every 10 >var/traffic.log 2>&1 & pids+=($!)
  (sleep 5; exec $BIN/python -m core probe --every 30) >var/probe.log 2>&1 & pids+=($!)
fi
if $BIN/python -m core --help | grep -q " api "; then
  $BIN/python -m core api --host 127.0.0.1 --port "${API_PORT:-8000}" >var/api.log 2>&1 & pids+=($!)
fi
$BIN/python -m streamlit run dashboard/app.py --server.address 127.0.0.1 --server.port "${PORT:-8501}" \
  --server.headless true --browser.gatherUsageStats false
