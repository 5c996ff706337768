#!/usr/bin/env bash
# scripts/build.sh DIR [meson setup options...]: configure DIR once, then build.
set -euo pipefail
dir=$1; shift
if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" "$@" >/dev/null
else
  meson configure "$dir" "$@" >/dev/null 2>&1 || true
fi
ninja -C "$dir" >/dev/null || ninja -C "$dir"
