#!/usr/bin/env bash
# run-fuzz.sh BINARY NAME: a bounded libFuzzer run (FUZZ_SECONDS, default 10)
# over a scratch copy of tests/fuzz/corpus/NAME. Exit 0 only if nothing crashed.
set -euo pipefail
bin=$(realpath "$1") name=$2 # absolute: meson passes it relative to the build dir, and we cd below
src=${ATEL_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus"
[ -d "$src/tests/fuzz/corpus/$name" ] && cp -r "$src/tests/fuzz/corpus/$name/." "$work/corpus/"
cd "$work"
# libFuzzer exits 77 on a crash by default, which meson counts as a skip: make it 1.
exec "$bin" -max_total_time="${FUZZ_SECONDS:-10}" -timeout=10 -rss_limit_mb=4096 \
  -error_exitcode=1 -timeout_exitcode=1 \
  -print_final_stats=1 "$work/corpus"
