#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The repository stands on its own: a clone into an empty directory (nothing
# beside it) holds every file the build and the tests read.
#  1. no tracked file refers to a path outside the repository (../shared,
#     or the first wave's specification files instead of docs/reference.md
#     and docs/design.md);
#  2. every file the vendor-reading tests open resolves inside the clone, and
#     those checks pass there with the environment cleared of overrides:
#     the Grafana dashboard schema check and the OTLP .proto compilation.
# Exit 0 pass, 1 fail, 77 skip (not a git checkout, or git missing).
set -uo pipefail
src=${ATEL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v git >/dev/null || { echo "SKIP: git is not installed"; exit 77; }
git -C "$src" rev-parse --git-dir >/dev/null 2>&1 || { echo "SKIP: $src is not a git checkout"; exit 77; }

tmp=$(mktemp -d /tmp/atel-standalone.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
# An empty directory with only the clone in it: ../shared cannot exist there.
if ! git clone -q --no-local "$src" "$tmp/clone/atel" 2>"$tmp/clone.err"; then
  echo "FAIL: git clone: $(cat "$tmp/clone.err")"; exit 1
fi
clone=$tmp/clone/atel
fail=0
[ -e "$tmp/clone/shared" ] && { echo "FAIL: the clone's parent holds shared/"; fail=1; }

# 1. references that leave the repository
if hits=$(git -C "$clone" grep -n -E '\.\./shared|ATEL_SHARED_DIR|shared/vendor' -- . ':!third_party' ':!tests/repo/test_standalone.sh'); then
  echo "FAIL: files refer outside the repository:"; echo "$hits" | head -20; fail=1
fi
# what the code cites of the reference and the design is in docs/ (reference.md, design.md)
if hits=$(git -C "$clone" grep -n -E '(REFERENCE|DESIGN)\.md' -- . ':!third_party' ':!tests/repo/test_standalone.sh'); then
  echo "FAIL: files cite REFERENCE.md/DESIGN.md, which are not in the repository (docs/reference.md, docs/design.md are):"
  echo "$hits" | head -20; fail=1
fi

# 2. the vendored files the tests read are in the clone
for f in third_party/opentelemetry-proto/opentelemetry/proto/trace/v1/trace.proto \
         third_party/opentelemetry-proto/opentelemetry/proto/metrics/v1/metrics.proto \
         third_party/opentelemetry-proto/examples/trace.json \
         third_party/grafana-dashboard-schema/dashboard.jsonschema.json \
         third_party/prometheus-promqltest/functions.test; do
  [ -f "$clone/$f" ] || { echo "FAIL: $f missing from a clone"; fail=1; }
done
for d in "$clone"/third_party/*/; do
  [ -f "$d/LICENSE" ] || { echo "FAIL: ${d#"$clone"/} has no LICENSE"; fail=1; }
done

# 3. the file-reading checks, run from the clone with no override in the environment
unset ATEL_THIRD_PARTY_DIR ATEL_SOURCE_ROOT
if command -v promtool >/dev/null && /usr/bin/python3 -c 'import jsonschema' 2>/dev/null; then
  if ! out=$(cd "$clone" && /usr/bin/python3 tests/dashboards/test_dashboard.py 2>&1); then
    echo "FAIL: dashboard check in the clone:"; echo "$out" | tail -5; fail=1
  else
    echo "clone: dashboard check: $(echo "$out" | tail -1)"
  fi
else
  echo "note: promtool or python3-jsonschema missing: dashboard check not run in the clone"
fi
if command -v protoc >/dev/null && /usr/bin/python3 -c 'import google.protobuf' 2>/dev/null; then
  if ! out=$(cd "$clone/tests/exporters" && /usr/bin/python3 -c '
import otlp_proto, os
m = otlp_proto.load()
assert os.path.realpath(otlp_proto.vendor_dir()).startswith(os.path.realpath("../..")), otlp_proto.vendor_dir()
print("protos compiled from", otlp_proto.vendor_dir(), "->", sorted(m))' 2>&1); then
    echo "FAIL: OTLP protos from the clone:"; echo "$out" | tail -5; fail=1
  else
    echo "clone: $out"
  fi
else
  echo "note: protoc or python3-protobuf missing: proto compilation not run in the clone"
fi
[ $fail -eq 0 ] && echo "standalone: a plain clone holds everything the tests read"
exit $fail
