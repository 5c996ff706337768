#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The README's first agent: its compile line, run as written, builds a binary
that runs and whose records reach ateld; and `make demo` runs on the segment
that agent's atel_init(NULL) attaches (the default, "atel").

test_readme_agent.py ATEL ATELD: takes the C block after "An agent, in ten
lines" and the `cc agent.c ...` line from README.md, runs that line with bash
in a temporary directory where producer/ and build/ point at the source and
build trees, starts ateld on a private segment (ATEL_SHM, which atel_init(NULL)
honours, so parallel tests do not meet), runs ./agent and checks `atel metrics`.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ATEL, ATELD = sys.argv[1], sys.argv[2]
SRC = os.environ.get("ATEL_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BUILD = os.environ.get("ATEL_BUILD_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(ATEL)))
FAILS = []


def check(cond, what):
    if not cond:
        FAILS.append(what)
        print("FAIL:", what)


def main():
    readme = open(os.path.join(SRC, "README.md")).read()
    at = readme.find("An agent, in ten lines")
    check(at >= 0, "README has the ten-line agent")
    m = re.search(r"`(cc agent\.c [^`]*)`", readme[at:at + 2000])
    code = re.search(r"```c\n(.*?)```", readme[at:], re.S)
    check(m is not None and code is not None, "README gives a compile line and the code")
    if FAILS:
        sys.exit(1)
    line = m.group(1)
    demo = open(os.path.join(SRC, "scripts", "demo.sh")).read()
    check(re.search(r"^SHM=\$\{ATEL_SHM:-atel\}$", demo, re.M) is not None,
          "make demo runs on the default segment atel_init(NULL) attaches")
    check("--shm" not in demo.split("ateld\" --data-dir", 1)[-1].split("\n", 1)[0] or "$SHM" in demo,
          "demo starts ateld on $SHM")

    tmp = tempfile.mkdtemp(prefix="atel-readme-%d-" % os.getpid())
    shm = "atel-test-readme-%d" % os.getpid()
    data = os.path.join(tmp, "var")
    env = dict(os.environ, ATEL_SHM=shm, ATEL_DATA_DIR=data, NO_COLOR="1")
    env.pop("LD_LIBRARY_PATH", None)  # the compile line must make the binary find libatel.so.0 itself
    d = None
    try:
        os.symlink(os.path.join(os.path.abspath(SRC), "producer"), os.path.join(tmp, "producer"))
        os.symlink(os.path.abspath(BUILD), os.path.join(tmp, "build"))
        open(os.path.join(tmp, "agent.c"), "w").write(code.group(1))
        # a sanitizer build's libatel needs the agent linked with the same runtime: a `cc`
        # first on PATH adds the flag, the README's line itself stays as written
        needed = subprocess.run(["readelf", "-d", os.path.join(BUILD, "producer", "libatel.so.0")],
                                capture_output=True, text=True).stdout
        san = "-fsanitize=address,undefined" if "libasan" in needed else \
            "-fsanitize=thread" if "libtsan" in needed else ""
        if san:
            wrap = os.path.join(tmp, "bin")
            os.makedirs(wrap)
            real = shutil.which("cc")
            with open(os.path.join(wrap, "cc"), "w") as f:
                f.write('#!/bin/sh\nexec %s %s "$@"\n' % (real, san))
            os.chmod(os.path.join(wrap, "cc"), 0o755)
            env["PATH"] = wrap + ":" + env["PATH"]
        p = subprocess.run(["bash", "-c", line], cwd=tmp, capture_output=True, text=True, env=env, timeout=300)
        check(p.returncode == 0, "the README's compile line runs as written: %r -> %d %s" %
              (line, p.returncode, p.stderr[-2000:]))
        if p.returncode:
            return
        cfg = os.path.join(tmp, "ateld.json")
        json.dump({"prometheus": {"enabled": False}, "index": {"enabled": False}}, open(cfg, "w"))
        log = open(os.path.join(tmp, "ateld.log"), "w")
        d = subprocess.Popen([ATELD, "--config", cfg], env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        up = False
        while time.time() < deadline and d.poll() is None:
            r = subprocess.run([ATEL, "status", "--json"], capture_output=True, text=True, env=env)
            if r.returncode == 0 and json.loads(r.stdout)["up"]:
                up = True
                break
            time.sleep(0.1)
        check(up, "ateld came up")
        if not up:
            return
        # `&& ./agent` in the line already ran it once, before ateld: a counted no-op
        p = subprocess.run(["./agent"], cwd=tmp, capture_output=True, text=True, env=env, timeout=120)
        check(p.returncode == 0, "./agent runs (%d: %s)" % (p.returncode, p.stderr))
        d.send_signal(signal.SIGTERM)
        d.wait(timeout=120)
        r = subprocess.run([ATEL, "metrics", "--json"], capture_output=True, text=True, env=env, timeout=120)
        fams = {f["name"]: f for f in json.loads(r.stdout)["metrics"]} if r.returncode == 0 else {}
        got = sum(s["value"] for s in fams.get("jobs_done_total", {}).get("series", []))
        check(got == 1, "the agent's jobs_done_total reached ateld (%s)" % got)
    finally:
        if d is not None and d.poll() is None:
            d.kill()
            d.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            os.unlink("/dev/shm/" + shm)
        except OSError:
            pass
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
