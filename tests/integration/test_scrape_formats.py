#!/usr/bin/python3
"""/metrics variants and series expiry against a real Prometheus (issue 13 items 4, 5).

A real ateld (prometheus.series_ttl 30 s) is scraped every second by Debian's
`prometheus`, whose default Accept header prefers OpenMetrics and whose
Accept-Encoding asks for gzip. Producer processes (prom_producer.c) record a
known workload; then:
  - Prometheus holds the exact totals, the target is up with no error, and
    ateld counted its scrapes as atel_http_scrapes_total{variant="openmetrics_gzip"};
  - plain /metrics is Prometheus text 0.0.4 that `promtool check metrics`
    accepts; with Accept-Encoding: gzip the body is gzip that inflates to
    the same families; with Accept: application/openmetrics-text it is
    OpenMetrics 1.0.0 ending in `# EOF`, with `_created` for counters and
    histograms, that the strict parser of python3-prometheus-client accepts;
  - once the producers are gone for longer than the TTL the workload's
    series leave /metrics (and Prometheus marks them stale),
    atel_series_expired_total counts them, and after an ateld restart the
    count is still there (checkpoint) and the series stay gone.
argv[1]: the prom_producer binary. Exit 77 (skip) if prometheus is missing.
"""
import gzip
import os
import shutil
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Fail, check, wait_for  # noqa: E402
import test_prometheus as tp  # noqa: E402

TTL = 30  # long enough for the format checks below to see the workload's series, even under ASan


def fetch(w, headers):
    req = urllib.request.Request("http://127.0.0.1:%d/metrics" % w.mport, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.headers, r.read()


def family_names(text):
    return sorted({ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")})


def metric_value(text, name):
    for ln in text.splitlines():
        if ln.startswith(name + " ") or ln.startswith(name + "{"):
            return float(ln.rsplit(" ", 1)[1])
    return None


def main():
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        print("prometheus/promtool not installed")
        return 77
    try:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    except ImportError:
        print("python3-prometheus-client not installed (scripts/deps.sh)")
        return 77
    w = tp.World()
    w.cfg["prometheus"]["series_ttl"] = TTL
    w.cfg["json"]["enabled"] = False
    with open(w.cfg_path, "w") as f:
        import json
        json.dump(w.cfg, f)
    try:
        w.start_ateld()
        w.start_prometheus()
        w.produce("a")

        def caught_up():
            t = fetch(w, {})[1].decode()
            return sum(float(ln.rsplit(" ", 1)[1]) for ln in t.splitlines()
                       if ln.startswith("agent_execution_total{")) == tp.TOTAL
        wait_for("/metrics holds the workload", caught_up, procs=[("ateld", w.ateld)])
        # text 0.0.4, identity
        h, body = fetch(w, {})
        text = body.decode()
        check(h["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8", h["Content-Type"])
        check(h.get("Content-Encoding") is None, "unasked Content-Encoding %s" % h.get("Content-Encoding"))
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
              "promtool check metrics (text): %s %s" % (r.stdout, r.stderr))
        check(metric_value(text, "agent_execution_total") is not None, "no agent_execution_total in text")

        # text 0.0.4, gzip
        h, body = fetch(w, {"Accept-Encoding": "gzip"})
        check(h["Content-Encoding"] == "gzip", "gzip asked, got %s" % h.get("Content-Encoding"))
        ztext = gzip.decompress(body).decode()
        check(family_names(ztext) == family_names(text), "gzip body has other families than the text one")
        check(len(body) * 3 < len(ztext), "gzip body %d bytes for %d of text" % (len(body), len(ztext)))
        r = subprocess.run(["promtool", "check", "metrics"], input=ztext, capture_output=True, text=True)
        check(r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
              "promtool check metrics (gzip): %s %s" % (r.stdout, r.stderr))

        # OpenMetrics 1.0.0 (what Prometheus asks for), identity and gzip
        om_accept = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                     "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
        h, body = fetch(w, {"Accept": om_accept})
        om = body.decode()
        check(h["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8", h["Content-Type"])
        check(om.endswith("# EOF\n"), "OpenMetrics body does not end with # EOF")
        fams = {f.name: f for f in text_string_to_metric_families(om)}  # strict: raises on any error
        ae = fams.get("agent_execution")
        check(ae is not None and ae.type == "counter", "agent_execution counter family: %r" % ae)
        check(sum(s.value for s in ae.samples if s.name == "agent_execution_total") == tp.TOTAL,
              "OpenMetrics agent_execution_total sums to %r" % [s.value for s in ae.samples])
        check(any(s.name == "agent_execution_created" for s in ae.samples), "no agent_execution_created")
        hist = fams.get("agent_execution_duration_seconds")
        check(hist is not None and hist.type == "histogram", "histogram family: %r" % hist)
        check(any(s.name.endswith("_created") for s in hist.samples), "no histogram _created")
        check("# TYPE atel_records_drained counter" in om, "self-metric counter family not renamed")
        h, body = fetch(w, {"Accept": om_accept, "Accept-Encoding": "gzip"})
        check(h["Content-Encoding"] == "gzip", "OpenMetrics + gzip: %s" % h.get("Content-Encoding"))
        list(text_string_to_metric_families(gzip.decompress(body).decode()))

        tp.expect_totals(w, 1)
        wait_for("Prometheus scraped OpenMetrics with gzip",
                 lambda: (w.query('atel_http_scrapes_total{variant="openmetrics_gzip"}') or 0) >= 2,
                 procs=[("ateld", w.ateld)])

        targets = tp.json.loads(tp.http_get("http://127.0.0.1:%d/api/v1/targets" % w.pport)[2])
        t = targets["data"]["activeTargets"][0]
        check(t["health"] == "up" and t["lastError"] == "", "target: %s" % t)

        # series expiry: the producers exited; after the TTL their series are gone
        def expired():
            text = fetch(w, {})[1].decode()
            return ("agent_execution_total{" not in text and
                    (metric_value(text, "atel_series_expired_total") or 0) > 0 and text)
        text = wait_for("workload series expired from /metrics", expired, timeout=120, procs=[("ateld", w.ateld)])
        n_expired = metric_value(text, "atel_series_expired_total")
        check("agent_execution_duration_seconds_bucket" not in text, "histogram series not expired")
        wait_for("Prometheus sees the expired series as stale",
                 lambda: w.query("sum(agent_execution_total)") is None, procs=[("ateld", w.ateld)])
        w.stop_ateld()
        w.start_ateld()
        text = fetch(w, {})[1].decode()
        check(metric_value(text, "atel_series_expired_total") == n_expired,
              "atel_series_expired_total %r after restart, %r before" %
              (metric_value(text, "atel_series_expired_total"), n_expired))
        check("agent_execution_total{" not in text, "expired series back after restart")
        w.stop_ateld()
        print("scrape formats: Prometheus scraped OpenMetrics+gzip, exact totals; text and gzip pass promtool, "
              "OpenMetrics passes the strict parser; %d series expired after %d s, kept across a restart"
              % (n_expired, TTL))
        return 0
    except Fail as e:
        print("FAIL:", e)
        print("--- ateld log:\n" + w.log("ateld-%d.log" % w.nstarts))
        print("--- prometheus log:\n" + w.log("prometheus.log"))
        return 1
    finally:
        w.close()


if __name__ == "__main__":
    sys.exit(main())
