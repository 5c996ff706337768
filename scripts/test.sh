#!/usr/bin/env bash
# scripts/test.sh [fuzz]: what `make test` runs.
#   1. build/       normal build (warnings are errors under CI): unit + integration suites
#   2. build-asan/  ASan+UBSan: unit + integration suites again
#   3. build-tsan/  TSan: the concurrent suites
#   4. build-fuzz/  clang libFuzzer targets, a short run each (FUZZ_SECONDS, default 10)
# Ends with one line "make test: N passed, N failed, N skipped" and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
WERROR=()
[ -n "${CI:-}" ] && WERROR=(-Dwerror=true)
JOBS=${TEST_JOBS:-2}
only=${1:-all}
failed_stage=()
logs=()

stage() { # name dir suites setup-args...
  local name=$1 dir=$2 suites=$3; shift 3
  echo "== $name ($dir)"
  if ! scripts/build.sh "$dir" "$@"; then
    echo "== $name: BUILD FAILED"; failed_stage+=("$name(build)"); return
  fi
  local args=()
  for s in $suites; do args+=(--suite "$s"); done
  local wrap=()
  [ "$name" = tsan ] && wrap=(--wrapper "setarch $(uname -m) -R")
  if ! meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$JOBS" \
        "${wrap[@]}" "${args[@]}"; then
    failed_stage+=("$name")
  fi
  logs+=("$dir/meson-logs/testlog.json")
}

if [ "$only" = all ]; then
  stage plain build "unit integration" "${WERROR[@]}"
  stage asan build-asan "unit integration" -Db_sanitize=address,undefined -Db_lundef=false "${WERROR[@]}"
  stage tsan build-tsan "concurrent" -Db_sanitize=thread -Db_lundef=false -Dtsan_only=true
fi
if [ "$only" = all ] || [ "$only" = fuzz ]; then
  export FUZZ_SECONDS=${FUZZ_SECONDS:-10}
  CC=clang stage fuzz build-fuzz "fuzz" -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false
fi

python3 - "${logs[@]}" <<'PY'
import json, sys
p = f = s = 0
for path in sys.argv[1:]:
    try:
        for line in open(path):
            r = json.loads(line).get("result", "")
            if r in ("OK", "EXPECTEDFAIL"): p += 1
            elif r == "SKIP": s += 1
            else: f += 1
    except FileNotFoundError:
        pass
print(f"make test: {p} passed, {f} failed, {s} skipped")
PY
if [ ${#failed_stage[@]} -gt 0 ]; then
  echo "make test: failing stages: ${failed_stage[*]}"
  exit 1
fi
