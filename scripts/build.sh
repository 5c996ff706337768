#!/usr/bin/env bash
# scripts/build.sh DIR [meson setup options...]: configure DIR once, then build.
# Shows progress: ninja's own status line on a terminal, every 25th step otherwise.
set -euo pipefail
dir=$1; shift
if [ ! -f "$dir/build.ninja" ]; then
  echo "build: configuring and compiling $dir (the first build takes a minute or two)"
  meson setup "$dir" "$@" >/dev/null
else
  meson configure "$dir" "$@" >/dev/null 2>&1 || true
fi
if [ -t 1 ]; then
  ninja -C "$dir"
else
  ninja -C "$dir" | awk '/^\[[0-9]+\/[0-9]+\]/ { if (++n % 25 == 0) { print "build: " $1; fflush() } ; next }
                         /^ninja: (Entering|no work)/ { next } { print; fflush() }'
fi
