#!/usr/bin/env bash
# The shipped deployment files work: the systemd unit passes `systemd-analyze
# verify` (with ExecStart pointing at the built ateld; a unit naming a missing
# binary must fail, so the check can fail), and the container example's config
# passes `ateld --check-config`. Exit 77 (skip) without systemd-analyze.
set -u
ateld=$(realpath "$1")
src=${ATEL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if ! command -v systemd-analyze >/dev/null; then
  echo "systemd-analyze not installed"; exit 77
fi
sed "s|/usr/local/bin/ateld|$ateld|" "$src/docs/deploy/ateld.service" >"$tmp/ateld.service"
if out=$(systemd-analyze verify "$tmp/ateld.service" 2>&1); then ok; else bad "systemd-analyze verify: $out"; fi
mkdir "$tmp/bad"
sed "s|/usr/local/bin/ateld|$tmp/missing/ateld|" "$src/docs/deploy/ateld.service" >"$tmp/bad/ateld.service"
if systemd-analyze verify "$tmp/bad/ateld.service" >/dev/null 2>&1; then bad "verify accepted a unit with a missing binary"; else ok; fi
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID' "$src/docs/deploy/ateld.service" && ok || bad "unit lacks SIGHUP reload"

if out=$(env -u ATEL_SHM -u ATEL_DATA_DIR -u ATEL_PROMETHEUS_PORT "$ateld" --check-config "$src/docs/deploy/ateld-container.json" 2>&1); then
  ok; echo "$out" | grep -q '0.0.0.0' && ok || bad "check-config output does not show the 0.0.0.0 bind: $out"
else
  bad "ateld --check-config docs/deploy/ateld-container.json: $out"
fi
echo "deploy: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
