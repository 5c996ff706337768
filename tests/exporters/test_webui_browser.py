#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The web view in a real browser: Debian's headless Chromium driven through
chromedriver's W3C WebDriver HTTP API (plain urllib, no Selenium), against a
real ateld with the known workload of test_webui.py.

Checks that what the DOM shows equals what the API and the CLI answer:
records drained, a metric's samples and series, the traces list, a trace's
span tree (parent links, depth) against `atel traces ID --format otlp-json`,
the rings; that without the token the page shows "token required" and no
data; and that the browser logged no console error once the token is given
(a CSP violation would be one). Screenshots of every tab are written to
<build>/webui-screenshots/ for a person to look at.

argv[1]: tagent, argv[2]: atel. Exit 77 (skip) when chromium or chromedriver
is missing (scripts/deps.sh installs them).
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Fail, check, free_port, wait_for  # noqa: E402
import test_webui  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class Browser:
    def __init__(self, tmp):
        self.port = free_port()
        self.log = open(os.path.join(tmp, "chromedriver.log"), "w")
        self.proc = subprocess.Popen([DRIVER, "--port=%d" % self.port], stdout=self.log, stderr=subprocess.STDOUT)
        wait_for("chromedriver", lambda: self._req("GET", "/status")["value"]["ready"], 60,
                 procs=[("chromedriver", self.proc)])
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--user-data-dir=" + os.path.join(tmp, "profile"),
                "--no-first-run", "--disable-extensions", "--disable-background-networking"]},
            "goog:loggingPrefs": {"browser": "ALL"}}}}
        self.sid = self._req("POST", "/session", caps, timeout=120)["value"]["sessionId"]

    def _req(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise Fail("webdriver %s %s: %s" % (method, path, e.read()[:500]))

    def cmd(self, method, path, body=None):
        return self._req(method, "/session/%s%s" % (self.sid, path), body)["value"]

    def go(self, url):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def console(self):
        """Browser console entries since the last call (chromedriver's log endpoint)."""
        try:
            return self.cmd("POST", "/se/log", {"type": "browser"})
        except Fail:
            return self._req("POST", "/session/%s/log" % self.sid, {"type": "browser"})["value"]

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cmd("GET", "/screenshot")))

    def quit(self):
        try:
            self._req("DELETE", "/session/%s" % self.sid, timeout=30)
        except Exception:  # noqa: BLE001 - best effort
            pass
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def text(b, sel):
    return b.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", sel)


def loaded(b, tab):
    """True once the page has drawn tab; a request error the page shows fails the test with it."""
    err = text(b, "#error")
    if err:
        raise Fail("the page shows an error on %s: %s" % (tab, err))
    return b.js("return document.body.dataset.loaded") == tab


def run(w, b, shots):
    base = "http://127.0.0.1:%d/" % w.port
    n = test_webui.THREADS * test_webui.ITERS
    # -- without the token: the page loads, says so, shows no data
    b.go(base + "#overview")
    wait_for("'token required'", lambda: text(b, "#state") == "token required", 60)
    check(text(b, "#ov-drained") == "-", "no data without the token")
    b.console()  # the refused fetch logs a 401; what follows must log nothing
    # -- the token, given once in the page
    b.js("document.querySelector('#token').value = arguments[0];"
         "document.querySelector('#token-save').click();", test_webui.TOKEN)
    wait_for("the overview", lambda: text(b, "#state") == "connected" and text(b, "#ov-drained") != "-", 60)

    def drained_matches():
        api = test_webui.api(w.port, "/api/ui/overview")["records_drained"]
        return str(api) == text(b, "#ov-drained")
    wait_for("DOM records drained == API", drained_matches, 60)
    check(text(b, "#ov-drops") == "0", "drops shown %r" % text(b, "#ov-drops"))
    time.sleep(2.5)  # a second refresh draws the rate chart
    b.screenshot(os.path.join(shots, "overview.png"))

    # -- metrics: the chart's sample count and the series table
    b.go(base + "#metric/tagent_iterations_total")
    wait_for("the metric page", lambda: loaded(b, "metrics") and
             b.js("return document.querySelector('#metric-summary').dataset.samples") is not None, 60)
    api_s = test_webui.api(w.port, "/api/ui/series?name=tagent_iterations_total&since=1h&agg=sum")
    check(b.js("return document.querySelector('#metric-summary').dataset.samples") == str(api_s["samples"]) ==
          str(n), "metric samples in the DOM")
    check(b.js("return document.querySelectorAll('#metric-series tbody tr').length") == 2, "two series rows")
    names = b.js("return [...document.querySelectorAll('#metric-list option')].map(o => o.value)")
    check("tagent_iterations_total" in names and "tagent_seq" in names, "metric completion list %s" % names)
    b.screenshot(os.path.join(shots, "metrics.png"))

    # -- agents: the reference dashboard's panels, each with the API's sample count
    b.go(base + "#agents")
    wait_for("the panels", lambda: loaded(b, "agents"), 120)
    panels = b.js("return [...document.querySelectorAll('#panels .panel')].map(p => "
                  "[p.dataset.metric, p.dataset.agg, p.dataset.samples])")
    check(len(panels) == 8, "eight panels: %s" % panels)
    for metric, agg, samples in panels:
        api_n = test_webui.api(w.port, "/api/ui/series?name=%s&since=1h&agg=%s" % (metric, agg))["samples"]
        check(samples == str(api_n), "panel %s %s: DOM %s, API %s" % (metric, agg, samples, api_n))
    tc = [p for p in panels if p[0] == "tool_calls_total"][0]
    check(tc[2] == str(n), "tool calls panel counts the workload's %d tool calls: %s" % (n, tc))
    b.screenshot(os.path.join(shots, "agents.png"))

    # -- traces: the list is the API's (and its error filter)
    b.go(base + "#traces")
    wait_for("the traces list", lambda: b.js("return document.querySelectorAll('#traces-table tbody tr').length") > 0, 60)
    dom_ids = b.js("return [...document.querySelectorAll('#traces-table tbody tr')].map(r => r.dataset.traceId)")
    api_ids = [t["trace_id"] for t in test_webui.api(w.port, "/api/ui/traces?limit=100")["traces"]]
    check(dom_ids == api_ids, "trace list differs from the API (%d vs %d rows)" % (len(dom_ids), len(api_ids)))
    b.js("document.querySelector('#trace-status').value = 'error';"
         "document.querySelector('#tform button').click();")
    wait_for("the error filter", lambda: b.js(
        "return [...document.querySelectorAll('#traces-table tbody tr')].map(r => r.dataset.errors)") ==
        ["1"] * (n // 10), 60)
    b.screenshot(os.path.join(shots, "traces.png"))

    # -- a trace's waterfall equals the CLI's OTLP span tree
    tid = b.js("return document.querySelector('#traces-table tbody tr').dataset.traceId")
    b.js("document.querySelector('#traces-table tbody tr').click()")
    wait_for("the waterfall", lambda: b.js("return document.querySelectorAll('#waterfall .wf-row').length") == 3, 60)
    rows = b.js("return [...document.querySelectorAll('#waterfall .wf-row')].map(r => "
                "[r.dataset.spanId, r.dataset.parentId, +r.dataset.depth])")
    otlp = json.loads(w.atel("traces", tid, "--format", "otlp-json"))
    cli = {}
    for rs in otlp["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                cli[sp["spanId"]] = sp.get("parentSpanId", "")
    check({r[0]: r[1] for r in rows} == cli, "waterfall tree %s != CLI %s" % (rows, cli))
    check([r[2] for r in rows] == [0, 1, 2], "depths %s" % rows)
    check(b.js("return document.querySelectorAll('#waterfall .wf-bar.error').length") == 1, "one error bar")
    b.js("document.querySelectorAll('#waterfall .wf-row')[1].click()")
    wait_for("span details", lambda: "ToolError" in (text(b, "#span-detail") or ""), 30)
    b.screenshot(os.path.join(shots, "trace.png"))

    # -- rings
    b.go(base + "#rings")
    wait_for("the rings tab", lambda: loaded(b, "rings"), 120)
    api_r = test_webui.api(w.port, "/api/ui/rings")
    check(b.js("return document.querySelectorAll('#rings-bars .ring').length") == len(api_r["rings"]),
          "ring rows")
    b.screenshot(os.path.join(shots, "rings.png"))

    errors = [e for e in b.console() if e.get("level") == "SEVERE"]
    check(not errors, "console errors with the token: %s" % errors)


def main():
    if len(sys.argv) < 3:
        print("usage: test_webui_browser.py TAGENT ATEL", file=sys.stderr)
        return 1
    if not (os.access(CHROMIUM, os.X_OK) and os.access(DRIVER, os.X_OK)):
        print("SKIP: chromium or chromedriver missing (scripts/deps.sh installs them)")
        return 77
    build = os.environ.get("ATEL_BUILD_ROOT") or os.getcwd()
    shots = os.path.join(build, "webui-screenshots")
    os.makedirs(shots, exist_ok=True)
    w = test_webui.World(sys.argv[1], sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="atel-browser-%d-" % os.getpid())
    b = None
    ok = False
    try:
        w.start()
        w.workload()
        b = Browser(tmp)
        run(w, b, shots)
        ok = True
        print("browser: the DOM equals the API and the CLI; screenshots in %s" % shots)
    except Fail as e:
        print("FAIL: %s" % e, file=sys.stderr)
        if b:
            try:
                b.screenshot(os.path.join(shots, "failure.png"))
            except Exception:  # noqa: BLE001
                pass
    finally:
        if b:
            b.quit()
        ok = w.stop() and ok
        if ok:
            shutil.rmtree(w.dir, ignore_errors=True)
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
