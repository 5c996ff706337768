#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need, by name,
# only if one is missing. Idempotent; quiet when everything is present.
set -euo pipefail

PKGS=(
  gcc clang libclang-rt-14-dev make meson ninja-build pkg-config python3
  liburing-dev libzstd-dev libsqlite3-dev libcjson-dev libcurl4-openssl-dev zlib1g-dev libcmocka-dev
  zstd sqlite3 strace curl procps iproute2 systemd
  prometheus protobuf-compiler python3-protobuf python3-jsonschema
  g++ python3-prometheus-client liblttng-ust-dev lttng-tools babeltrace2 prometheus-cpp-dev
  chromium chromium-driver tmux   # the web view's browser test, atel top's tmux test (issue 17)
  libsnappy-dev   # Prometheus remote write (issue 19)
  python3-yaml    # docs/deploy's Kubernetes and collector files, parsed by test_deploy_k8s.py (issue 19)
)

"$(dirname "$0")/deps-node.sh" bindings/node tests/exporters/otlp-client  # Node.js, its headers, the binding's npm packages and the OTLP receiver test's JS SDK
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The prometheus package may start a system instance; the tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q prometheus 2>/dev/null; then
  "${SUDO[@]}" systemctl stop prometheus || true
fi
