#!/usr/bin/env bash
# bench/disk_cost.sh: bytes on disk per metric sample and per span (issue 13).
#
# Starts ateld on a fresh data directory (unique shm name and port), runs
# `atel load` like `make demo` (4 agents x 2 threads, 25 sessions/s, 10 s) and
# at ten times its rate for 60 s, stops ateld cleanly (the index catches up),
# then prints the bytes of the segment log and of the index (telemetry.db with
# its -wal/-shm) and divides them by the samples and spans the log holds:
# once "as written" by the drain, once "at rest", after a restart, one more
# session of load and the compactor having rewritten every finished file
# (docs/segment-format.md 9; skipped with ATEL_COMPACT=0 or compact false in
# --config). The budget verdict and exit code are the last row's
# (counted by `atel replay --json`). The log's bytes are divided between the
# two by what each side costs alone with the log's own encoder (see below);
# the index's by its tables (span tables to spans). Budget (issue 13):
# <= 4 B/sample and <= 60 B/span, log plus index together.
#
#   bench/disk_cost.sh [--build DIR] [--only demo|10x] [--config FILE] [--keep]
#   DISK_SPLIT=build/bench/disk_split bench/disk_cost.sh --build OLD_BUILD   # an older ateld
#
# Settings go through ateld's configuration: --config FILE or the environment
# (ATEL_ENCODING, ATEL_INDEX_MODE, ...), so a "before" and an "after" run
# differ only by them. Exit 0 when every workload is within budget, 1 when
# one is over, 2 when a run failed.
set -euo pipefail
cd "$(dirname "$0")/.."
B=build
ONLY=""
CONFIG=""
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --build) B=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --config) CONFIG=$(realpath "$2"); shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n 2,18p "$0"; exit 0 ;;
    *) echo "disk_cost: unknown argument $1" >&2; exit 2 ;;
  esac
done
ATELD=$B/consumer/ateld
ATEL=$B/tools/atel
DISK_SPLIT=${DISK_SPLIT:-$B/bench/disk_split}   # (another build's, to measure an older ateld)
[ -x "$ATELD" ] && [ -x "$ATEL" ] && [ -x "$DISK_SPLIT" ] || { echo "disk_cost: build $B first (ninja -C $B)" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

over=0
start_ateld() { # dir shm port -> sets pid
  local dir=$1 shm=$2 port=$3
  local cfgarg=()
  [ -n "$CONFIG" ] && cfgarg=(--config "$CONFIG")
  ATEL_PROMETHEUS_PORT=$port "$ATELD" "${cfgarg[@]}" --data-dir "$dir" --shm "$shm" --foreground \
    >>"$dir/ateld.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    kill -0 $pid 2>/dev/null || { echo "disk_cost: ateld exited, see $dir/ateld.log" >&2; tail -5 "$dir/ateld.log" >&2; exit 2; }
    sleep 0.1
  done
}
stop_ateld() {
  kill -TERM $pid
  wait $pid || { echo "disk_cost: ateld exited $? (see $1/ateld.log)" >&2; exit 2; }
}
run() { # name agents threads rate duration
  local name=$1 agents=$2 threads=$3 rate=$4 dur=$5
  local dir shm pid newest
  dir=$(mktemp -d /tmp/atel-disk-cost-XXXXXX)
  shm=atel-dc-$$-$name
  start_ateld "$dir" "$shm" "$(free_port)"
  "$ATEL" --data-dir "$dir" --shm "$shm" load --agents "$agents" --threads "$threads" --duration "$dur" \
    --rate "$rate" >/dev/null
  sleep 2
  stop_ateld "$dir"
  measure "$name" "$dir" "as written" || true
  # At rest: the compactor (storage.compact, docs/segment-format.md 9) rewrites
  # finished files once every reader has passed them. A restart finishes the
  # newest file; one session of load moves the readers into the new one; then
  # wait until state/compact.done reaches the old newest file.
  newest=$(ls "$dir/segments" | grep -E '^[0-9a-f]{16}\.atseg$' | tail -1 | cut -c1-16)
  if [ "${ATEL_COMPACT:-1}" != 0 ] && ! grep -qs '"compact"[^,]*false' "${CONFIG:-/dev/null}"; then
    start_ateld "$dir" "$shm-2" "$(free_port)"
    "$ATEL" --data-dir "$dir" --shm "$shm-2" load --agents 1 --threads 1 --duration 1s --rate 1 >/dev/null
    for _ in $(seq 1 1800); do
      done_seq=$(cat "$dir/state/compact.done" 2>/dev/null || echo 0)
      [ $((16#${newest})) -le "$done_seq" ] 2>/dev/null && break
      sleep 0.5
    done
    stop_ateld "$dir"
    measure "$name" "$dir" "at rest" || over=1
  else
    measure "$name" "$dir" "as written (compaction off)" || over=1
  fi
  if [ "$KEEP" = 1 ]; then echo "      kept $dir"; else rm -rf "$dir"; fi
}
measure() { # name dir label
  local name=$1 dir=$2 label=$3
  "$ATEL" replay "$dir/segments" --json >"$dir/replay.json" 2>/dev/null
  "$ATEL" replay "$dir/segments" --emit raw -o "$dir/raw.bin" >/dev/null 2>&1
  local rc=0
  DISK_SPLIT=$DISK_SPLIT python3 - "$name" "$dir" "$label" <<'PY' || rc=1
import json, os, subprocess, sqlite3, sys
name, d, label = sys.argv[1], sys.argv[2], sys.argv[3]
seg = os.path.join(d, "segments")
log_b = sum(os.path.getsize(os.path.join(seg, f)) for f in os.listdir(seg))
idx_files = [os.path.join(d, f) for f in os.listdir(d) if f.startswith("telemetry.db")]
idx_b = sum(os.path.getsize(f) for f in idx_files)
j = json.load(open(os.path.join(d, "replay.json")))
samples = sum(s["samples"] for s in j["series"])
spans = j.get("by_type", {}).get("span_end", 0)
# The log mixes samples and spans in the same frames. Its bytes are split in
# the ratio of what each side costs alone with the log's own encoder
# (bench/disk_split: the decoded records sorted by type, span_start..span_error
# to spans, the rest -- samples, definitions, markers -- to samples, cut into
# frames of the log's average size, encoded and compressed at its level).
cfg = {}
try:
    cfg = json.load(open(os.path.join(d, "ateld.status.json"))).get("config", {}).get("storage", {})
except (OSError, ValueError):
    pass
enc = cfg.get("encoding", "columns")
level = str(cfg.get("zstd_level", 6))
frame = str(max(64, j["bytes_raw"] // max(1, j["frames"])))
out = subprocess.run([os.environ["DISK_SPLIT"], os.path.join(d, "raw.bin"), enc, level, frame],
                     stdout=subprocess.PIPE, check=True, text=True).stdout.split()
zs, zp = int(out[0]), int(out[1])
share = zs / (zs + zp) if zs + zp else 1.0
# the index: span tables (and their indexes) to spans, the rest to samples
idx_span = 0
idx_pages = 0
try:
    con = sqlite3.connect("file:%s?mode=ro" % os.path.join(d, "telemetry.db"), uri=True)
    for tname, sz in con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
        idx_pages += sz
        if "span" in tname or "trace" in tname:
            idx_span += sz
    con.close()
except sqlite3.Error:
    pass
span_frac = idx_span / idx_pages if idx_pages else 0.0
b_s = log_b * share + idx_b * (1 - span_frac)
b_p = log_b * (1 - share) + idx_b * span_frac
tot = log_b + idx_b
print("      (%s, zstd %s, %s B frames on average; samples side alone %d B, spans side alone %d B)" %
      (enc, level, frame, zs, zp))
ok = samples and spans and b_s / samples <= 4 and b_p / spans <= 60
print("%-5s %-11s log %8.2f MB  index %8.2f MB  total %8.2f MB  samples %8d  spans %7d  "
      "%6.2f B/sample  %6.1f B/span  (budget 4 / 60: %s)" %
      (name, label, log_b / 1e6, idx_b / 1e6, tot / 1e6, samples, spans, b_s / max(samples, 1),
       b_p / max(spans, 1), "met" if ok else "OVER"))
sys.exit(0 if ok else 1)
PY
  rm -f "$dir/raw.bin"
  return $rc
}

[ -z "$ONLY" ] || [ "$ONLY" = demo ] && run demo 4 2 25 10s
[ -z "$ONLY" ] || [ "$ONLY" = 10x ] && run 10x 4 2 250 60s
exit $over
