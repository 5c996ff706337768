#!/usr/bin/env bash
# scripts/deps-node.sh [DIR...]: what the Node.js binding needs (called by
# scripts/deps.sh for bindings/node and tests/exporters/otlp-client; the bench calls it
# for bench/peers/node).
#   1. node and npm: Debian's nodejs + npm when the machine has no node at all
#      (a machine that ships its own Node.js keeps it);
#   2. Node's C headers beside that node (node-gyp builds against them with
#      --nodedir, never downloads them): Debian's libnode-dev when missing;
#   3. `npm ci` in each DIR (default bindings/node) whose node_modules is
#      older than its package-lock.json: the exact pinned versions, from the
#      npm cache when it has them (--prefer-offline), no install scripts.
set -euo pipefail
cd "$(dirname "$0")/.."
dirs=("$@")
[ ${#dirs[@]} -eq 0 ] && dirs=(bindings/node)

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
apt_install() {
  echo "deps-node: installing $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  apt_install nodejs npm
fi
prefix=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
if [ ! -f "$prefix/include/node/node_api.h" ] && [ ! -f /usr/include/node/node_api.h ]; then
  apt_install libnode-dev
fi

for d in "${dirs[@]}"; do
  if [ ! -f "$d/node_modules/.package-lock.json" ] || [ "$d/package-lock.json" -nt "$d/node_modules/.package-lock.json" ]; then
    echo "deps-node: npm ci in $d" >&2
    (cd "$d" && npm ci --ignore-scripts --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
  fi
done
