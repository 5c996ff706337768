#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Builds bindings/node's addon with node-gyp into the meson build tree.

    build-addon.py SRC_DIR OUT_DIR INCLUDE_DIR LIBATEL_SO STAMP

Run by meson on every build (build_always_stale): it returns at once when
atel.node is newer than its sources and libatel.so. node-gyp compiles in
OUT_DIR/gyp (never in the source tree, so build/, build-release/ ... do not
collide) against the headers of the Node.js installation that runs it
(--nodedir: nothing is downloaded). Without node-gyp/node-addon-api in
SRC_DIR/node_modules (scripts/deps.sh installs them with `npm ci`) it writes
no addon, says why, and the tests skip with that reason.
"""
import os
import shutil
import subprocess
import sys


def newest(paths):
    m = 0.0
    for p in paths:
        if os.path.isdir(p):
            for d, _, fs in os.walk(p):
                for f in fs:
                    m = max(m, os.path.getmtime(os.path.join(d, f)))
        elif os.path.exists(p):
            m = max(m, os.path.getmtime(p))
    return m


def main():
    src, out, inc, libso, stamp = sys.argv[1:6]
    addon = os.path.join(out, "atel.node")
    mods = os.path.join(src, "node_modules")
    gyp_js = os.path.join(mods, "node-gyp", "bin", "node-gyp.js")
    napi = os.path.join(mods, "node-addon-api")
    reason = None
    if not os.path.exists(gyp_js) or not os.path.exists(os.path.join(napi, "napi.h")):
        reason = "%s lacks node-gyp/node-addon-api: run scripts/deps.sh (npm ci in bindings/node)" % mods
    node = shutil.which("node")
    nodedir = None
    if node and not reason:
        prefix = os.path.dirname(os.path.dirname(os.path.realpath(node)))
        for d in (prefix, "/usr", "/usr/local"):
            if os.path.exists(os.path.join(d, "include", "node", "node_api.h")) and \
               os.path.exists(os.path.join(d, "include", "node", "common.gypi")):
                nodedir = d
                break
        if not nodedir:
            reason = "no Node.js headers (include/node/node_api.h) beside %s: install libnode-dev" % node
    elif not node:
        reason = "node is not on PATH"
    if reason:
        if os.path.exists(addon):
            os.unlink(addon)
        with open(stamp, "w") as f:
            f.write("not built: %s\n" % reason)
        print("bindings/node: addon not built: " + reason, file=sys.stderr)
        return 0
    inputs = [os.path.join(src, "src"), os.path.join(src, "binding.gyp"), libso,
              os.path.join(inc, "atel.h"), os.path.join(mods, ".package-lock.json")]
    if os.path.exists(addon) and os.path.getmtime(addon) >= newest(inputs):
        with open(stamp, "w") as f:
            f.write("built\n")
        return 0
    work = os.path.join(out, "gyp")
    os.makedirs(work, exist_ok=True)
    shutil.copy(os.path.join(src, "binding.gyp"), os.path.join(work, "binding.gyp"))
    link = os.path.join(work, "src")  # gyp wants sources below the .gyp file
    if os.path.islink(link) and os.readlink(link) != os.path.join(os.path.abspath(src), "src"):
        os.unlink(link)
    if not os.path.islink(link):
        os.symlink(os.path.join(os.path.abspath(src), "src"), link)
    cmd = [node, gyp_js, "rebuild", "--nodedir=" + nodedir, "--",
           "-Datel_include=" + os.path.abspath(inc),
           "-Datel_libdir=" + os.path.dirname(os.path.abspath(libso)), "-Dnapi_include=" + os.path.abspath(napi)]
    env = dict(os.environ)
    env["npm_config_loglevel"] = "warn"
    r = subprocess.run(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout)
        print("bindings/node: node-gyp failed (%d): %s" % (r.returncode, " ".join(cmd)), file=sys.stderr)
        return 1
    built = os.path.join(work, "build", "Release", "atel.node")
    shutil.copy(built, addon + ".tmp")
    os.replace(addon + ".tmp", addon)
    with open(stamp, "w") as f:
        f.write("built\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
