#!/usr/bin/env bash
# scripts/demo.sh: what `make demo` runs after installing packages and building.
# Starts ateld with embedded defaults (data under ./var/, the default segment
# "atel", the one libatel's atel_init(NULL) attaches: the README's agent reaches it),
# runs a short synthetic agent swarm, prints where to look. ateld is LEFT
# RUNNING (pid in var/ateld.pid); the last lines say how to stop it.
# Running it twice works: a previous demo ateld is stopped cleanly first.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${BUILD:-build}
VAR=$PWD/var
SHM=${ATEL_SHM:-atel}
PORT=${ATEL_PROMETHEUS_PORT:-9464}
mkdir -p "$VAR"

if ! { [ -f "$VAR/ateld.pid" ] && kill -0 "$(cat "$VAR/ateld.pid")" 2>/dev/null; } &&
   ss -ltn "sport = :$PORT" 2>/dev/null | grep -q LISTEN; then
  echo "demo: port $PORT is taken by another program; set ATEL_PROMETHEUS_PORT to a free port" >&2
  exit 1
fi
if [ -f "$VAR/ateld.pid" ] && kill -0 "$(cat "$VAR/ateld.pid")" 2>/dev/null; then
  echo "demo: stopping the previous demo ateld (pid $(cat "$VAR/ateld.pid"))"
  kill -TERM "$(cat "$VAR/ateld.pid")"
  for _ in $(seq 1 100); do kill -0 "$(cat "$VAR/ateld.pid")" 2>/dev/null || break; sleep 0.1; done
fi
if ss -ltn "sport = :$PORT" 2>/dev/null | grep -q LISTEN; then
  echo "demo: port $PORT is taken by another program; set ATEL_PROMETHEUS_PORT to a free port" >&2
  exit 1
fi

echo "demo: starting ateld (data in $VAR, shm segment /dev/shm/$SHM, /metrics on 127.0.0.1:$PORT)"
ATEL_PROMETHEUS_PORT=$PORT nohup "$B/consumer/ateld" --data-dir "$VAR" --shm "$SHM" >"$VAR/ateld.log" 2>&1 &
echo $! >"$VAR/ateld.pid"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$VAR/ateld.pid")" 2>/dev/null || { echo "demo: ateld exited; see $VAR/ateld.log" >&2; tail -20 "$VAR/ateld.log" >&2; exit 1; }
  sleep 0.1
done

# --time-scale 0.02: spans last 1/50 of their simulated time (a Bash call ~16 ms), so
# waterfalls show real shapes instead of nanosecond spans
echo "demo: running a 10 s agent swarm (4 agent processes x 2 threads, up to 25 sessions/s each, spans at 1/50 of simulated time)"
"$B/tools/atel" --data-dir "$VAR" load --agents 4 --threads 2 --duration 10s --rate 25 --time-scale 0.02

sleep 2   # one drain/index/export cycle
echo
"$B/tools/atel" --data-dir "$VAR" status || true
cat <<TXT

Next steps
  Prometheus metrics   curl http://127.0.0.1:$PORT/metrics
  Web view             open http://127.0.0.1:$PORT/ in a browser   (live: $B/tools/atel --data-dir var top)
  Sidecar status       $B/tools/atel --data-dir var status       (finds ateld's segment "$SHM" in var/ateld.status.json)
  Recent traces        $B/tools/atel --data-dir var traces        (then: traces <TRACE_ID>)
  Query                $B/tools/atel --data-dir var query agent_execution_duration_seconds --labels agent_type=coder --agg p95 --interval 1m --since 15m
  Summary statistics   $B/tools/atel --data-dir var stats tool_call_duration_seconds
  Replay the log       $B/tools/atel replay var/segments
  Grafana              import dashboards/overview.json, pick a Prometheus datasource that scrapes 127.0.0.1:$PORT
  Your first agent     the README's "An agent, in ten lines": it attaches to segment "$SHM"
  More load            $B/tools/atel --data-dir var load --agents 8 --threads 2 --rate 50 --duration 60s   (loses nothing on 2 cores; exits 6 if records were lost)

ateld is still running (pid $(cat "$VAR/ateld.pid"), log var/ateld.log).
Stop it with:  kill -TERM \$(cat var/ateld.pid)     (drains every ring, flushes, exits 0)
TXT
