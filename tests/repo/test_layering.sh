#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The rooms and their arrows (README "Architecture"): every folder of the
# product code is a room, and a room may include only its own headers and
# those of the rooms below it. This test fails on an #include that runs from
# a lower room to a higher one (or sideways), on a header name that two rooms
# share (includes are by bare name), and, given a build (ATEL_BUILD_ROOT), on
# link lines that pull in more than a room needs: the CLI and the dashboard
# example without liburing or libcurl, libatel exporting nothing but atel_*.
# Exit 0 pass, 1 fail.
set -uo pipefail
src=${ATEL_SOURCE_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
build=${ATEL_BUILD_ROOT:-}
cd "$src" || exit 1

# room: folder (files directly in it)
declare -A FOLDER=(
  [util]=shm/util [shm]=shm [producer]=producer [log]=consumer/log [index]=consumer/index
  [aggregates]=consumer/aggregates [state]=consumer/state [encode]=exporters/encode
  [exporters]=exporters [daemon]=consumer [promql]=tools/promql [tools]=tools [examples]=examples
)
# room: the rooms it may include from (itself always)
declare -A BELOW=(
  [util]=""
  [shm]="util"
  [producer]="shm util"
  [log]="shm util"
  [index]="log shm util"
  [aggregates]="log shm util"
  [state]="index log shm util"
  [encode]="aggregates log shm util"
  [exporters]="encode state aggregates index log shm util"
  [promql]=""
  [daemon]="exporters encode state aggregates index log shm util promql"
  [tools]="producer encode aggregates index log shm util promql"
  [examples]="producer tools"
)
fail=0

# header basename -> room
declare -A ROOM_OF
for room in "${!FOLDER[@]}"; do
  dir=${FOLDER[$room]}
  for h in $(git ls-files "$dir/*.h" "$dir/include/*.h" 2>/dev/null); do
    [ "$(dirname "$h")" = "$dir" ] || [ "$(dirname "$h")" = "$dir/include" ] || continue
    b=$(basename "$h")
    if [ -n "${ROOM_OF[$b]:-}" ] && [ "${ROOM_OF[$b]}" != "$room" ]; then
      echo "FAIL: header name $b is in two rooms (${ROOM_OF[$b]}, $room): includes are by name"
      fail=1
    fi
    ROOM_OF[$b]=$room
  done
done

checked=0
for room in "${!FOLDER[@]}"; do
  dir=${FOLDER[$room]}
  allowed=" $room ${BELOW[$room]} "
  for f in $(git ls-files "$dir/*.c" "$dir/*.h" "$dir/include/*.h"); do
    d=$(dirname "$f")
    [ "$d" = "$dir" ] || [ "$d" = "$dir/include" ] || continue
    checked=$((checked + 1))
    while IFS=: read -r line inc; do
      r=${ROOM_OF[$inc]:-}
      if [ -z "$r" ]; then
        echo "FAIL: $f:$line includes \"$inc\", which is no room's header"
        fail=1
      elif [[ "$allowed" != *" $r "* ]]; then
        echo "FAIL: $f:$line ($room) includes \"$inc\" of $r: an arrow up or sideways"
        fail=1
      fi
    done < <(grep -n -o -E '^#[[:space:]]*include[[:space:]]+"[^"]+"' "$f" | sed -E 's/^([0-9]+):.*"([^"]+)"/\1:\2/')
  done
done
# product code never reaches into tests/ or bench/ (.c includes included)
if hits=$(git grep -n -E '#[[:space:]]*include[[:space:]]+"[^"]*(\.c|tests/|bench/)[^"]*"' -- shm producer consumer exporters tools examples bench); then
  echo "FAIL: a .c file or test code included:"; echo "$hits"; fail=1
fi
echo "layering: $checked files of ${#FOLDER[@]} rooms checked"

if [ -n "$build" ] && [ -d "$build" ]; then
  needed() { readelf -d "$1" 2>/dev/null | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'; }
  for bin in tools/atel examples/telemetry-dashboard; do
    [ -x "$build/$bin" ] || { echo "FAIL: $build/$bin not built"; fail=1; continue; }
    if needed "$build/$bin" | grep -E 'liburing|libcurl'; then
      echo "FAIL: $bin links liburing or libcurl (only ateld writes the live log and exports)"; fail=1
    fi
  done
  needed "$build/consumer/ateld" | grep -q liburing || { echo "FAIL: ateld does not link liburing"; fail=1; }
  if so=$(ls "$build"/producer/libatel.so.* 2>/dev/null | head -1) && [ -n "$so" ]; then
    if bad=$(nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRW]$/ && $3 !~ /^atel_[a-z]/ {print $3}' | grep .); then
      echo "FAIL: libatel exports more than atel_*:"; echo "$bad" | head; fail=1
    fi
    # every function atel.h declares is in libatel.map's list, and exported
    exported=$(nm -D --defined-only "$so" | awk '{sub(/@.*/, "", $3); print $3}')
    for fn in $(grep -o -E '\<atel_[a-z_0-9]+\(' producer/include/atel.h | tr -d '(' | sort -u); do
      grep -q -E "^[[:space:]]*$fn;" producer/libatel.map || { echo "FAIL: $fn (atel.h) is not in producer/libatel.map"; fail=1; }
      echo "$exported" | grep -qx "$fn" || { echo "FAIL: libatel does not export $fn"; fail=1; }
    done
  fi
  echo "link lines checked in $build"
fi
[ $fail -eq 0 ] && echo "layering: every include and link line points down"
exit $fail
