#!/usr/bin/python3
"""The Kubernetes, Prometheus and OpenTelemetry Collector files of docs/deploy/ (issue 19 item 4).

Each file is checked by the tool that owns its format where one installs here,
and by checks written from the format's documentation otherwise; every check
is also fed a broken copy and must refuse it, so no check passes vacuously.

- Prometheus configs (docs/deploy/prometheus/*.yml): `promtool check config`.
  Debian's promtool is built without Kubernetes service discovery ("field
  kubernetes_sd_configs not found"): there, prometheus-kubernetes.yml is
  checked by promtool with each kubernetes_sd_configs block swapped for a
  file_sd_configs one (so promtool still checks everything else, relabeling
  included), and the kubernetes_sd_configs blocks by a structural check
  written from Prometheus' documentation (fields, role, the __meta labels the
  relabeling reads exist for that role, the port name it keeps is the one the
  manifests give ateld).
- Kubernetes manifests (docs/deploy/kubernetes/*.yaml): kubectl cannot
  validate offline (`kubectl apply --dry-run=client` needs an API server for
  discovery and OpenAPI), but `kubectl set env --local` decodes a workload
  into kubectl's own Go types: a wrong type or an unknown kind fails, and a
  field that the decode dropped (a misspelled or unknown key) is found by
  comparing the input's key paths with kubectl's output. Other kinds are
  decoded the same way (kubectl then says "not a pod"). Skipped, saying so,
  without kubectl (not a Debian package). Then per-kind checks written here:
  apiVersion/kind/metadata.name, selectors, containers with images, volume
  mounts naming declared volumes, ports and probes, resources,
  securityContext, and for ateld: the ConfigMap key behind --config, that
  config through `ateld --check-config`, the probes on paths ateld serves
  (/healthz, prometheus.path), the metrics port, a memory-backed /dev/shm or
  a hostPath under the node's /dev/shm, the PID namespace shared with the
  agents, and a remote-write instance label that outlives the pod.
- OpenTelemetry Collector config (docs/deploy/otelcol/otelcol-ateld.yaml): no
  collector installs from Debian; a STRUCTURAL check, not the collector:
  YAML, the documented top-level sections, pipelines naming only defined
  components, and the documented keys of each component the file uses.
- Cross-file: the ConfigMaps that embed prometheus-kubernetes.yml and the
  collector config hold them verbatim; ateld's remote-write URL and OTLP
  endpoint name the Services and ports these manifests create.
argv[1]: ateld.
"""
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:  # python3-yaml (scripts/deps.sh)
    print("python3-yaml not installed")
    sys.exit(77)

ATELD = os.path.realpath(sys.argv[1])
SRC = os.environ.get("ATEL_SOURCE_ROOT") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DEPLOY = os.path.join(SRC, "docs", "deploy")
TMP = tempfile.mkdtemp(prefix="atel-deploy-k8s-%d-" % os.getpid())

# paths ateld's HTTP server answers besides prometheus.path (exporters/http.c)
ATELD_HEALTH = "/healthz"
ATELD_SHUTDOWN_S = 25  # README "Running ateld": a shutdown longer than 25 s is logged

KINDS = {
    "Namespace": "v1", "ConfigMap": "v1", "Service": "v1", "ServiceAccount": "v1",
    "PersistentVolumeClaim": "v1", "Deployment": "apps/v1", "DaemonSet": "apps/v1",
    "StatefulSet": "apps/v1", "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ClusterRoleBinding": "rbac.authorization.k8s.io/v1",
}
WORKLOADS = ("Deployment", "DaemonSet", "StatefulSet")
NAMESPACED = ("ConfigMap", "Service", "ServiceAccount", "PersistentVolumeClaim") + WORKLOADS
VOLUME_SOURCES = ("emptyDir", "hostPath", "configMap", "secret", "persistentVolumeClaim", "projected",
                  "downwardAPI", "ephemeral")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def read(path):
    with open(path) as f:
        return f.read()


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


# --------------------------------------------------------------------------
# Kubernetes manifests: per-kind checks

def pod_spec(doc):
    return ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}


def all_containers(spec):
    """(container, is_init, is_native_sidecar) for every container of a pod spec."""
    out = []
    for c in spec.get("initContainers") or []:
        out.append((c, True, c.get("restartPolicy") == "Always"))
    for c in spec.get("containers") or []:
        out.append((c, False, False))
    return out


def env_of(c):
    return {e.get("name"): e for e in c.get("env") or [] if isinstance(e, dict)}


def is_ateld(c):
    cmd = (c.get("command") or []) + (c.get("args") or [])
    return bool(cmd) and os.path.basename(str(cmd[0])) == "ateld"


def check_config_text(text, env_overrides):
    """ateld --check-config on text; (problem or None, effective config dict)."""
    path = os.path.join(TMP, "ateld-%d.json" % len(os.listdir(TMP)))
    with open(path, "w") as f:
        f.write(text)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ATEL_") and not k.startswith("OTEL_")}
    env.update(env_overrides)
    r = run([ATELD, "--check-config", path], env=env)
    if r.returncode != 0:
        return "ateld --check-config refused it: %s" % (r.stderr.strip() or r.stdout.strip()), None
    body = r.stdout[r.stdout.index("{"):] if "{" in r.stdout else ""
    try:
        return None, json.loads(body)
    except ValueError:
        return "ateld --check-config printed no JSON: %r" % r.stdout[:200], None


def check_ateld_container(p, where, doc, spec, c, configmaps, vols):
    """ateld's own needs in a pod; problems appended to p."""
    cmd = (c.get("command") or []) + (c.get("args") or [])
    if "--config" not in cmd or cmd.index("--config") + 1 >= len(cmd):
        p.append("%s: ateld without --config FILE" % where)
        return None
    cfg_path = cmd[cmd.index("--config") + 1]
    mounts = {m.get("mountPath"): m for m in c.get("volumeMounts") or []}
    mount = mounts.get(os.path.dirname(cfg_path))
    if not mount:
        p.append("%s: --config %s: no volume mounted at %s" % (where, cfg_path, os.path.dirname(cfg_path)))
        return None
    vol = vols.get(mount.get("name")) or {}
    if "configMap" not in vol:
        p.append("%s: --config %s is not on a configMap volume" % (where, cfg_path))
        return None
    cm_name = vol["configMap"].get("name")
    fname = os.path.basename(cfg_path)
    items = vol["configMap"].get("items")
    key = fname
    if items is not None:
        key = next((i.get("key") for i in items if i.get("path") == fname), None)
        if key is None:
            p.append("%s: configMap volume %s has no item with path %s (--config %s)"
                     % (where, mount.get("name"), fname, cfg_path))
            return None
    cm = configmaps.get(cm_name)
    if cm is None:
        p.append("%s: ConfigMap %s (--config %s) is not in this file" % (where, cm_name, cfg_path))
        return None
    text = (cm.get("data") or {}).get(key)
    if text is None:
        p.append("%s: ConfigMap %s has no key %s (--config %s)" % (where, cm_name, key, cfg_path))
        return None
    # the environment ateld will run with; downward-API values get a stand-in
    env = {}
    for name, e in env_of(c).items():
        if name == "ATEL_REMOTE_WRITE_INSTANCE":
            continue  # judged below, from the pod spec
        if "value" in e:
            env[name] = str(e["value"])
        elif "valueFrom" in e:
            env[name] = "node-1"
    why, eff = check_config_text(text, env)
    if why:
        p.append("%s: ConfigMap %s key %s: %s" % (where, cm_name, key, why))
        return None
    prom = eff["prometheus"]
    ports = {pt.get("name"): pt for pt in c.get("ports") or []}
    mport = [n for n, pt in ports.items() if pt.get("containerPort") == prom["port"]]
    if not prom.get("enabled") or not mport:
        p.append("%s: no container port for ateld's prometheus.port %s" % (where, prom.get("port")))
        return eff
    if prom.get("bind") not in ("0.0.0.0", "::"):
        p.append("%s: prometheus.bind %s: probes and scrapes come from outside the container (use 0.0.0.0)"
                 % (where, prom.get("bind")))
    served = {ATELD_HEALTH, prom["path"]}
    for probe in ("livenessProbe", "readinessProbe"):
        hg = (c.get(probe) or {}).get("httpGet")
        if not hg:
            p.append("%s: ateld without an httpGet %s" % (where, probe))
            continue
        if hg.get("path") not in served:
            p.append("%s: %s path %s: ateld serves %s" % (where, probe, hg.get("path"), sorted(served)))
        if hg.get("port") not in (mport[0], prom["port"]):
            p.append("%s: %s port %s is not ateld's metrics port" % (where, probe, hg.get("port")))
        if hg.get("path") == prom["path"] and prom.get("auth"):
            p.append("%s: %s on %s, which needs prometheus.bearer_token" % (where, probe, prom["path"]))
    lp = (c.get("livenessProbe") or {}).get("httpGet") or {}
    if lp.get("path") != ATELD_HEALTH:
        p.append("%s: livenessProbe should be %s (it answers while ateld's HTTP thread runs)" % (where, ATELD_HEALTH))
    # the data dir on a volume; a writable /tmp under a read-only root (SQLite's temporary files)
    if (c.get("securityContext") or {}).get("readOnlyRootFilesystem") and "/tmp" not in mounts:
        p.append("%s: read-only root file system without a volume at /tmp (SQLite's temporary files)" % where)
    if eff["data_dir"] not in mounts:
        p.append("%s: data_dir %s is not a mounted volume" % (where, eff["data_dir"]))
    # the segment
    shm = eff["shm"]["name"]
    if "/" not in shm:
        m = mounts.get("/dev/shm")
        v = vols.get((m or {}).get("name")) or {}
        if not m or (v.get("emptyDir") or {}).get("medium") != "Memory":
            p.append("%s: shm.name %s lives in /dev/shm: mount a memory-backed emptyDir (medium: Memory) "
                     "there" % (where, shm))
    else:
        m = mounts.get(os.path.dirname(shm))
        v = vols.get((m or {}).get("name")) or {}
        hp = (v.get("hostPath") or {}).get("path", "")
        if not m or not hp.startswith("/dev/shm/"):
            p.append("%s: shm.name %s: its directory must be a hostPath under the node's /dev/shm "
                     "(memory-backed)" % (where, shm))
    # pids: since ABI 2.1 ateld judges producers by their liveness locks (docs/abi.md 5.1), not by
    # pid, so no PID namespace is shared: asking for it would be a privilege for nothing
    if spec.get("hostPID"):
        p.append("%s: hostPID is not needed (ateld judges producers by liveness lock, docs/abi.md 5.1) "
                 "and is a privilege" % where)
    if spec.get("shareProcessNamespace"):
        p.append("%s: shareProcessNamespace is not needed (ateld judges producers by liveness lock, "
                 "docs/abi.md 5.1)" % where)
    if spec.get("terminationGracePeriodSeconds", 30) <= ATELD_SHUTDOWN_S:
        p.append("%s: terminationGracePeriodSeconds %s leaves ateld's shutdown (up to %d s) no margin"
                 % (where, spec.get("terminationGracePeriodSeconds", 30), ATELD_SHUTDOWN_S))
    # remote write's instance label must outlive the pod (the data dir's counts do)
    if eff["remote_write"].get("url") and not eff["remote_write"].get("instance"):
        e = env_of(c).get("ATEL_REMOTE_WRITE_INSTANCE")
        if not e:
            p.append("%s: remote_write without an instance: the pod name changes with every pod while the "
                     "counts in the data dir persist (set ATEL_REMOTE_WRITE_INSTANCE)" % where)
        elif doc["kind"] == "DaemonSet" and \
                ((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath") != "spec.nodeName":
            p.append("%s: a DaemonSet's instance should be the node name (fieldRef spec.nodeName)" % where)
    return eff


def check_workload(p, doc, configmaps, ateld_pods):
    where = "%s/%s" % (doc["kind"], doc["metadata"]["name"])
    spec_ = doc.get("spec") or {}
    sel = (spec_.get("selector") or {}).get("matchLabels") or {}
    labels = ((spec_.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not sel or any(labels.get(k) != v for k, v in sel.items()):
        p.append("%s: selector.matchLabels %s does not match the template's labels %s" % (where, sel, labels))
    spec = pod_spec(doc)
    if not spec.get("containers"):
        p.append("%s: no containers" % where)
    vols = {}
    for v in spec.get("volumes") or []:
        srcs = [s for s in VOLUME_SOURCES if s in v]
        if len(srcs) != 1:
            p.append("%s: volume %s has %d sources" % (where, v.get("name"), len(srcs)))
        if v.get("name") in vols:
            p.append("%s: volume %s declared twice" % (where, v.get("name")))
        vols[v.get("name")] = v
        if "configMap" in v:
            cm = configmaps.get(v["configMap"].get("name"))
            if cm is None:
                p.append("%s: volume %s: ConfigMap %s not in this file" % (where, v["name"], v["configMap"].get("name")))
            else:
                for it in v["configMap"].get("items") or []:
                    if it.get("key") not in (cm.get("data") or {}):
                        p.append("%s: volume %s: ConfigMap %s has no key %s"
                                 % (where, v["name"], cm["metadata"]["name"], it.get("key")))
    psc = spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        p.append("%s: pod securityContext must set runAsNonRoot: true and a non-zero runAsUser" % where)
    names = set()
    used = set()
    for c, init, native in all_containers(spec):
        cw = "%s container %s" % (where, c.get("name"))
        if not c.get("name") or not DNS1123_LABEL.match(str(c.get("name"))):
            p.append("%s: bad container name" % cw)
        if c.get("name") in names:
            p.append("%s: duplicate container name" % cw)
        names.add(c.get("name"))
        if not c.get("image"):
            p.append("%s: no image" % cw)
        for m in c.get("volumeMounts") or []:
            used.add(m.get("name"))
            if m.get("name") not in vols:
                p.append("%s: volumeMount %s names no declared volume" % (cw, m.get("name")))
            if not str(m.get("mountPath", "")).startswith("/"):
                p.append("%s: volumeMount %s: mountPath must be absolute" % (cw, m.get("name")))
        pnames = set()
        for pt in c.get("ports") or []:
            cp = pt.get("containerPort")
            if not isinstance(cp, int) or not 1 <= cp <= 65535:
                p.append("%s: containerPort %r" % (cw, cp))
            if "name" in pt:
                if len(pt["name"]) > 15 or not DNS1123_LABEL.match(pt["name"]):
                    p.append("%s: port name %r (at most 15 lowercase characters)" % (cw, pt["name"]))
                pnames.add(pt["name"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            hg = (c.get(probe) or {}).get("httpGet")
            if hg and isinstance(hg.get("port"), str) and hg["port"] not in pnames:
                p.append("%s: %s port %s is no port of the container" % (cw, probe, hg["port"]))
            if c.get(probe) and init and not native:
                p.append("%s: %s on a one-shot init container" % (cw, probe))
        res = c.get("resources") or {}
        if not (res.get("requests") or {}).get("cpu") or not (res.get("requests") or {}).get("memory") or \
                not (res.get("limits") or {}).get("memory"):
            p.append("%s: resources need requests.cpu, requests.memory and limits.memory" % cw)
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False or \
                "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            p.append("%s: securityContext needs allowPrivilegeEscalation: false and capabilities.drop [ALL]" % cw)
        if (sc.get("runAsUser") == 0 or sc.get("runAsNonRoot") is False) and not (init and not native):
            p.append("%s: runs as root (only a one-shot init container may)" % cw)
        if is_ateld(c):
            eff = check_ateld_container(p, cw, doc, spec, c, configmaps, vols)
            if eff:
                ateld_pods.append((doc, spec, c, eff, vols))
    for v in vols:
        if v not in used:
            p.append("%s: volume %s is mounted by no container" % (where, v))


def check_agents(p, docs, ateld_pods):
    """Agent pods without an ateld of their own reach a DaemonSet's ateld the way it expects."""
    node = [(d, s, c, e, v) for d, s, c, e, v in ateld_pods if d["kind"] == "DaemonSet"]
    for doc in docs:
        if doc.get("kind") not in WORKLOADS:
            continue
        spec = pod_spec(doc)
        if any(is_ateld(c) for c, _, _ in all_containers(spec)):
            continue
        for c, _, _ in all_containers(spec):
            e = env_of(c).get("ATEL_SHM")
            if not e:
                continue
            where = "%s/%s container %s" % (doc["kind"], doc["metadata"]["name"], c.get("name"))
            if not node:
                p.append("%s: ATEL_SHM set but no ateld DaemonSet in this file" % where)
                continue
            d, s, ac, eff, avols = node[0]
            shm = eff["shm"]["name"]
            if e.get("value") != shm:
                p.append("%s: ATEL_SHM %s is not the DaemonSet's shm.name %s" % (where, e.get("value"), shm))
            want = avols[{m["mountPath"]: m for m in ac["volumeMounts"]}[os.path.dirname(shm)]["name"]]["hostPath"]["path"]
            vols = {v.get("name"): v for v in spec.get("volumes") or []}
            m = {x.get("mountPath"): x for x in c.get("volumeMounts") or []}.get(os.path.dirname(shm))
            got = ((vols.get((m or {}).get("name")) or {}).get("hostPath") or {}).get("path")
            if got != want:
                p.append("%s: mounts %s at %s, the DaemonSet's segment directory is the node's %s"
                         % (where, got, os.path.dirname(shm), want))
            if spec.get("hostPID"):
                p.append("%s: hostPID is not needed (ateld judges producers by liveness lock)" % where)
            group = (s.get("securityContext") or {}).get("runAsGroup")
            psc = spec.get("securityContext") or {}
            if int(eff["shm"]["mode"], 8) & 0o006 == 0 and group not in \
                    [psc.get("runAsGroup")] + list(psc.get("supplementalGroups") or []):
                p.append("%s: not in ateld's group %s: the segment is %s" % (where, group, eff["shm"]["mode"]))


def k8s_problems(text, fname):
    """Every problem found in one manifest file's text (empty: fine)."""
    p = []
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        return ["%s: YAML: %s" % (fname, str(e).replace("\n", " "))]
    if not docs:
        return ["%s: no documents" % fname]
    configmaps = {}
    seen = set()
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            p.append("%s: document %d is not a mapping" % (fname, i + 1))
            continue
        kind, api = d.get("kind"), d.get("apiVersion")
        name = (d.get("metadata") or {}).get("name")
        if not kind or not api or not name:
            p.append("%s: document %d lacks apiVersion, kind or metadata.name" % (fname, i + 1))
            continue
        if KINDS.get(kind) != api:
            p.append("%s: %s/%s: apiVersion %s (expected %s)" % (fname, kind, name, api, KINDS.get(kind, "a known kind")))
        if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUB.match(name):
            p.append("%s: %s: metadata.name %r is not a DNS-1123 name" % (fname, kind, name))
        if (kind, name) in seen:
            p.append("%s: %s/%s twice" % (fname, kind, name))
        seen.add((kind, name))
        if kind == "ConfigMap":
            data = d.get("data") or {}
            if not data or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
                p.append("%s: ConfigMap/%s: data must map strings to strings" % (fname, name))
            configmaps[name] = d
        elif kind == "PersistentVolumeClaim":
            sp = d.get("spec") or {}
            if not sp.get("accessModes") or not ((sp.get("resources") or {}).get("requests") or {}).get("storage"):
                p.append("%s: PersistentVolumeClaim/%s needs accessModes and resources.requests.storage" % (fname, name))
    ateld_pods = []
    valid = [d for d in docs if isinstance(d, dict) and d.get("kind") and (d.get("metadata") or {}).get("name")]
    for d in valid:
        if d["kind"] in WORKLOADS:
            check_workload(p, d, configmaps, ateld_pods)
    for d in valid:
        where = "%s/%s" % (d["kind"], d["metadata"]["name"])
        if d["kind"] == "Service":
            sel = (d.get("spec") or {}).get("selector") or {}
            target = [w for w in valid if w["kind"] in WORKLOADS and sel and all(
                (((w.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels", {}).get(k) == v
                for k, v in sel.items())]
            if not target:
                p.append("%s: selector %s matches no workload in this file" % (where, sel))
            for pt in (d.get("spec") or {}).get("ports") or []:
                if not isinstance(pt.get("port"), int):
                    p.append("%s: port %r" % (where, pt.get("port")))
                tp = pt.get("targetPort")
                if isinstance(tp, str) and target and not any(
                        tp == x.get("name") for w in target for c, _, _ in all_containers(pod_spec(w))
                        for x in c.get("ports") or []):
                    p.append("%s: targetPort %s is no container port of %s" % (where, tp, sel))
        elif d["kind"] == "ClusterRoleBinding":
            ref = d.get("roleRef") or {}
            if ("ClusterRole", ref.get("name")) not in seen:
                p.append("%s: roleRef %s not in this file" % (where, ref.get("name")))
            for s in d.get("subjects") or []:
                if s.get("kind") == "ServiceAccount" and ("ServiceAccount", s.get("name")) not in seen:
                    p.append("%s: subject ServiceAccount %s not in this file" % (where, s.get("name")))
        if d["kind"] in WORKLOADS:
            sa = pod_spec(d).get("serviceAccountName")
            if sa and ("ServiceAccount", sa) not in seen:
                p.append("%s: serviceAccountName %s not in this file" % (where, sa))
    check_agents(p, valid, ateld_pods)
    return ["%s: %s" % (fname, x) if not x.startswith(fname) else x for x in p]


# --------------------------------------------------------------------------
# Kubernetes manifests: kubectl's own types

def key_paths(x, path=()):
    yield path
    if isinstance(x, dict):
        for k, v in x.items():
            yield from key_paths(v, path + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from key_paths(v, path + (i,))


def kubectl_problems(text, fname):
    """Each document decoded by kubectl into its Go type (offline); a key the decode dropped is unknown."""
    p = []
    home = os.path.join(TMP, "kubehome")
    os.makedirs(home, exist_ok=True)
    kubeconfig = os.path.join(home, "config")
    open(kubeconfig, "w").close()
    env = dict(os.environ, HOME=home, KUBECONFIG=kubeconfig)
    chunks = [c for c in re.split(r"(?m)^---\s*$", text) if c.strip() and yaml.safe_load(c) is not None]
    for i, chunk in enumerate(chunks):
        doc = yaml.safe_load(chunk)
        path = os.path.join(TMP, "doc-%d.yaml" % i)
        with open(path, "w") as f:
            f.write(chunk)
        r = run(["kubectl", "set", "env", "--local", "-f", path, "-e", "ATEL_DECODE_CHECK=1", "-o", "json"], env=env)
        what = "%s: document %d (%s)" % (fname, i + 1, doc.get("kind") if isinstance(doc, dict) else "?")
        if doc.get("kind") in WORKLOADS:
            if r.returncode != 0:
                p.append("%s: kubectl: %s" % (what, r.stderr.strip()))
                continue
            dropped = set(key_paths(doc)) - set(key_paths(json.loads(r.stdout)))
            for d in sorted(dropped, key=lambda x: (len(x), str(x)))[:3]:
                p.append("%s: unknown field %s (kubectl's types dropped it)" % (what, ".".join(map(str, d))))
        elif r.returncode == 0 or "is not a pod or does not have a pod template" not in r.stderr:
            p.append("%s: kubectl did not decode it: %s" % (what, r.stderr.strip() or "no error"))
    return p


# --------------------------------------------------------------------------
# Prometheus

K8S_SD_KEYS = {"api_server", "role", "kubeconfig_file", "namespaces", "selectors", "attach_metadata",
               "basic_auth", "authorization", "oauth2", "proxy_url", "no_proxy", "proxy_from_environment",
               "proxy_connect_header", "tls_config", "follow_redirects", "enable_http2"}
K8S_SD_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}
META_PREFIX = {  # the __meta_kubernetes_* labels a role provides (Prometheus docs, kubernetes_sd_config)
    "pod": ("__meta_kubernetes_namespace", "__meta_kubernetes_pod_"),
    "node": ("__meta_kubernetes_node_",),
    "service": ("__meta_kubernetes_namespace", "__meta_kubernetes_service_"),
    "endpoints": ("__meta_kubernetes_namespace", "__meta_kubernetes_endpoints_", "__meta_kubernetes_endpoint_",
                  "__meta_kubernetes_pod_", "__meta_kubernetes_service_"),
    "endpointslice": ("__meta_kubernetes_namespace", "__meta_kubernetes_endpointslice_",
                      "__meta_kubernetes_pod_", "__meta_kubernetes_service_"),
    "ingress": ("__meta_kubernetes_namespace", "__meta_kubernetes_ingress_"),
}
_k8s_sd_supported = None


def promtool_has_k8s_sd():
    global _k8s_sd_supported
    if _k8s_sd_supported is None:
        path = os.path.join(TMP, "probe-k8s-sd.yml")
        with open(path, "w") as f:
            f.write("scrape_configs:\n  - job_name: x\n    kubernetes_sd_configs:\n      - role: pod\n")
        _k8s_sd_supported = run(["promtool", "check", "config", path]).returncode == 0
    return _k8s_sd_supported


def k8s_sd_problems(cfg, metrics_port_names):
    p = []
    for sc in cfg.get("scrape_configs") or []:
        job = sc.get("job_name")
        for sd in sc.get("kubernetes_sd_configs") or []:
            if not isinstance(sd, dict):
                p.append("job %s: kubernetes_sd_configs entry is not a mapping" % job)
                continue
            bad = set(sd) - K8S_SD_KEYS
            if bad:
                p.append("job %s: kubernetes_sd_configs: unknown fields %s" % (job, sorted(bad)))
            role = sd.get("role")
            if role not in K8S_SD_ROLES:
                p.append("job %s: kubernetes_sd_configs role %r (one of %s)" % (job, role, sorted(K8S_SD_ROLES)))
                continue
            for rc in sc.get("relabel_configs") or []:
                for lab in rc.get("source_labels") or []:
                    if lab.startswith("__meta_kubernetes_") and not lab.startswith(META_PREFIX[role]):
                        p.append("job %s: %s is not a label of role %s" % (job, lab, role))
                if rc.get("action") == "keep" and "__meta_kubernetes_pod_container_port_name" in \
                        (rc.get("source_labels") or []):
                    if not any(re.fullmatch(str(rc.get("regex", "(.*)")), n) for n in metrics_port_names):
                        p.append("job %s: keeps port names matching %r, but ateld's port is named %s"
                                 % (job, rc.get("regex"), sorted(metrics_port_names)))
    return p


def prometheus_problems(text, fname, metrics_port_names):
    """promtool check config on text (kubernetes_sd swapped out where promtool lacks it)."""
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return ["%s: YAML: %s" % (fname, str(e).replace("\n", " "))]
    p = []
    check_text = text
    uses_k8s = isinstance(cfg, dict) and any("kubernetes_sd_configs" in (sc or {})
                                             for sc in cfg.get("scrape_configs") or [])
    if uses_k8s:
        p += ["%s: %s" % (fname, x) for x in k8s_sd_problems(cfg, metrics_port_names)]
        if not promtool_has_k8s_sd():
            targets = os.path.join(TMP, "targets.json")
            with open(targets, "w") as f:
                f.write("[]\n")
            swapped = copy.deepcopy(cfg)
            for sc in swapped.get("scrape_configs") or []:
                if "kubernetes_sd_configs" in sc:
                    del sc["kubernetes_sd_configs"]
                    sc["file_sd_configs"] = [{"files": [targets]}]
            check_text = yaml.safe_dump(swapped)
    path = os.path.join(TMP, "prom-%d.yml" % len(os.listdir(TMP)))
    with open(path, "w") as f:
        f.write(check_text)
    r = run(["promtool", "check", "config", path])
    if r.returncode != 0:
        p.append("%s: promtool check config: %s" % (fname, (r.stderr.strip() or r.stdout.strip()).replace("\n", " ")))
    return p


# --------------------------------------------------------------------------
# OpenTelemetry Collector (structural: the collector's documented config layout)

OTEL_TOP = {"receivers", "processors", "exporters", "extensions", "connectors", "service"}
OTEL_SIGNALS = {"traces", "metrics", "logs"}
OTEL_COMPONENTS = {  # type -> (allowed keys, required keys, check) for the components the shipped file uses
    ("receivers", "otlp"): ({"protocols"}, {"protocols"}),
    ("processors", "batch"): ({"timeout", "send_batch_size", "send_batch_max_size", "metadata_keys",
                               "metadata_cardinality_limit"}, set()),
    ("processors", "memory_limiter"): ({"check_interval", "limit_mib", "spike_limit_mib", "limit_percentage",
                                        "spike_limit_percentage"}, {"check_interval"}),
    ("exporters", "debug"): ({"verbosity", "sampling_initial", "sampling_thereafter", "use_internal_logger"}, set()),
    ("exporters", "otlp"): ({"endpoint", "tls", "headers", "compression", "timeout", "retry_on_failure",
                             "sending_queue", "balancer_name", "auth", "keepalive", "read_buffer_size",
                             "write_buffer_size", "wait_for_ready", "authority"}, {"endpoint"}),
    ("exporters", "otlphttp"): ({"endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint", "tls",
                                 "headers", "compression", "timeout", "retry_on_failure", "sending_queue",
                                 "encoding", "auth"}, set()),
}
OTLP_PROTOCOL_KEYS = {
    "http": {"endpoint", "cors", "include_metadata", "max_request_body_size", "tls", "auth", "traces_url_path",
             "metrics_url_path", "logs_url_path", "response_headers", "compression_algorithms"},
    "grpc": {"endpoint", "transport", "tls", "max_recv_msg_size_mib", "max_concurrent_streams",
             "read_buffer_size", "write_buffer_size", "keepalive", "auth", "include_metadata"},
}
COMPONENT_ID = re.compile(r"^([a-z][a-z0-9_]*)(/[^/\s]+)?$")


def otelcol_problems(text, fname):
    p = []
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return ["%s: YAML: %s" % (fname, str(e).replace("\n", " "))]
    if not isinstance(cfg, dict):
        return ["%s: not a mapping" % fname]
    bad = set(cfg) - OTEL_TOP
    if bad:
        p.append("unknown top-level sections %s (the collector has %s)" % (sorted(bad), sorted(OTEL_TOP)))
    for section in ("receivers", "processors", "exporters"):
        for cid, conf in (cfg.get(section) or {}).items():
            m = COMPONENT_ID.match(str(cid))
            if not m:
                p.append("%s: bad component id %r (type[/name])" % (section, cid))
                continue
            spec = OTEL_COMPONENTS.get((section, m.group(1)))
            if spec is None:
                p.append("%s.%s: component type %s unknown to this check" % (section, cid, m.group(1)))
                continue
            conf = conf or {}
            allowed, required = spec
            if set(conf) - allowed:
                p.append("%s.%s: unknown keys %s" % (section, cid, sorted(set(conf) - allowed)))
            if required - set(conf):
                p.append("%s.%s: missing %s" % (section, cid, sorted(required - set(conf))))
            if m.group(1) == "memory_limiter" and not ({"limit_mib", "limit_percentage"} & set(conf)):
                p.append("%s.%s: needs limit_mib or limit_percentage" % (section, cid))
            if m.group(1) == "debug" and conf.get("verbosity", "basic") not in ("basic", "normal", "detailed"):
                p.append("%s.%s: verbosity %r" % (section, cid, conf.get("verbosity")))
            if m.group(1) == "otlp" and section == "receivers":
                protos = conf.get("protocols") or {}
                if not protos or set(protos) - set(OTLP_PROTOCOL_KEYS):
                    p.append("receivers.%s: protocols must be grpc and/or http, got %s" % (cid, sorted(protos)))
                for proto, pc in protos.items():
                    if proto in OTLP_PROTOCOL_KEYS and set(pc or {}) - OTLP_PROTOCOL_KEYS[proto]:
                        p.append("receivers.%s.protocols.%s: unknown keys %s"
                                 % (cid, proto, sorted(set(pc or {}) - OTLP_PROTOCOL_KEYS[proto])))
    svc = cfg.get("service") or {}
    pipelines = svc.get("pipelines") or {}
    if not pipelines:
        p.append("service.pipelines: none")
    for ext in svc.get("extensions") or []:
        if ext not in (cfg.get("extensions") or {}):
            p.append("service.extensions: %s is not defined" % ext)
    for pid, pl in pipelines.items():
        m = COMPONENT_ID.match(str(pid))
        if not m or m.group(1) not in OTEL_SIGNALS:
            p.append("service.pipelines.%s: a pipeline is traces, metrics or logs[/name]" % pid)
        pl = pl or {}
        if set(pl) - {"receivers", "processors", "exporters"}:
            p.append("service.pipelines.%s: unknown keys %s" % (pid, sorted(set(pl) - {"receivers", "processors", "exporters"})))
        for section in ("receivers", "processors", "exporters"):
            ids = pl.get(section) or []
            if section != "processors" and not ids:
                p.append("service.pipelines.%s: no %s" % (pid, section))
            for cid in ids:
                if cid not in (cfg.get(section) or {}):
                    p.append("service.pipelines.%s: %s %s is not defined" % (pid, section[:-1], cid))
            if len(ids) != len(set(ids)):
                p.append("service.pipelines.%s: %s listed twice" % (pid, section))
        procs = pl.get("processors") or []
        if any(str(x).split("/")[0] == "memory_limiter" for x in procs) and \
                str(procs[0]).split("/")[0] != "memory_limiter":
            p.append("service.pipelines.%s: memory_limiter must be the first processor" % pid)
    return ["%s: %s" % (fname, x) for x in p]


def otlp_http_port(text):
    cfg = yaml.safe_load(text)
    ep = ((((cfg.get("receivers") or {}).get("otlp") or {}).get("protocols") or {}).get("http") or {}).get("endpoint", "")
    return int(ep.rsplit(":", 1)[1]) if ":" in ep else 4318


# --------------------------------------------------------------------------
# across files

def embedded_problems(manifest_text, fname, cm_name, key, file_text, file_name):
    docs = [d for d in yaml.safe_load_all(manifest_text) if isinstance(d, dict)]
    cm = [d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == cm_name]
    if not cm or (cm[0].get("data") or {}).get(key) != file_text:
        return ["%s: ConfigMap %s key %s is not %s verbatim" % (fname, cm_name, key, file_name)]
    return []


def service_for(url, manifests):
    """(problem or None): the in-cluster Service and port that url names exist in manifests."""
    m = re.match(r"^https?://([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)(/.*)?$", url or "")
    if not m:
        return "%s does not name a Service (http://NAME.NAMESPACE.svc:PORT)" % url
    name, ns, port = m.group(1), m.group(2), int(m.group(3))
    for text in manifests.values():
        for d in yaml.safe_load_all(text):
            if isinstance(d, dict) and d.get("kind") == "Service" and d["metadata"]["name"] == name and \
                    d["metadata"].get("namespace") == ns and \
                    any(pt.get("port") == port for pt in (d.get("spec") or {}).get("ports") or []):
                return None
    return "%s: no Service %s in namespace %s with port %d in docs/deploy/kubernetes" % (url, name, ns, port)


def cross_problems(manifests, otel_text):
    p = []
    for fname in ("sidecar.yaml", "daemonset.yaml"):
        for d in yaml.safe_load_all(manifests[fname]):
            if not (isinstance(d, dict) and d.get("kind") == "ConfigMap"):
                continue
            _, eff = check_config_text(d["data"]["ateld.json"], {})
            if not eff:
                continue
            rw = eff["remote_write"].get("url")
            if rw:
                why = service_for(rw, manifests)
                if why:
                    p.append("%s: remote_write.url %s" % (fname, why))
                prom = [x for x in yaml.safe_load_all(manifests["prometheus.yaml"])
                        if isinstance(x, dict) and x.get("kind") == "Deployment"]
                if not prom or "--web.enable-remote-write-receiver" not in \
                        pod_spec(prom[0])["containers"][0].get("args", []):
                    p.append("%s: remote write to a Prometheus started without --web.enable-remote-write-receiver"
                             % fname)
            if eff["opentelemetry"]["enabled"]:
                ep = eff["opentelemetry"]["endpoint"]
                why = service_for(ep, manifests)
                if why:
                    p.append("%s: opentelemetry.endpoint %s" % (fname, why))
                elif int(ep.rsplit(":", 1)[1].split("/")[0]) != otlp_http_port(otel_text):
                    p.append("%s: opentelemetry.endpoint %s: the collector's otlp http receiver listens on %d"
                             % (fname, ep, otlp_http_port(otel_text)))
    return p


# --------------------------------------------------------------------------

class Tally:
    def __init__(self):
        self.passed = self.failed = 0

    def ok(self, what, problems):
        if problems:
            self.failed += 1
            print("FAIL: %s:" % what)
            for x in problems:
                print("  " + x)
        else:
            self.passed += 1
            print("ok: %s" % what)

    def refuses(self, what, problems, want):
        """A broken copy must be refused, for the expected reason."""
        hit = [x for x in problems if re.search(want, x)]
        if hit:
            self.passed += 1
            print("ok: refused %s: %s" % (what, hit[0][:160]))
        else:
            self.failed += 1
            print("FAIL: %s was not refused for /%s/; problems: %s" % (what, want, problems))


def broken(text, old, new):
    """text with the one occurrence of old replaced (an anchor that moved or repeats stops the test)."""
    if text.count(old) != 1:
        raise AssertionError("the broken copy's anchor %r occurs %d times in the file" % (old, text.count(old)))
    return text.replace(old, new)


def main():
    t = Tally()
    kdir = os.path.join(DEPLOY, "kubernetes")
    manifests = {f: read(os.path.join(kdir, f)) for f in sorted(os.listdir(kdir)) if f.endswith(".yaml")}
    for need in ("sidecar.yaml", "daemonset.yaml", "prometheus.yaml", "otel-collector.yaml"):
        if need not in manifests:
            t.ok("docs/deploy/kubernetes/%s exists" % need, ["missing"])
    metrics_ports = set()
    for text in manifests.values():
        for d in yaml.safe_load_all(text):
            if isinstance(d, dict) and d.get("kind") in WORKLOADS:
                for c, _, _ in all_containers(pod_spec(d)):
                    if is_ateld(c):
                        metrics_ports |= {pt.get("name") for pt in c.get("ports") or [] if pt.get("name")}

    # ---- Kubernetes: the shipped files
    for f, text in manifests.items():
        t.ok("kubernetes/%s: fields per kind, ateld's config and needs" % f, k8s_problems(text, f))
    have_kubectl = shutil.which("kubectl") is not None
    if have_kubectl:
        for f, text in manifests.items():
            t.ok("kubernetes/%s: decoded by kubectl's types, no unknown field" % f, kubectl_problems(text, f))
    else:
        print("skip: kubectl not installed: the decode by kubectl's types is not run")

    # ---- Kubernetes: broken copies
    side, ds = manifests["sidecar.yaml"], manifests["daemonset.yaml"]
    cases = [
        ("a YAML syntax error", side, broken(side, "  replicas: 1", "  replicas: [1"), r"YAML"),
        ("a volumeMount of an undeclared volume", side,
         broken(side, "- { name: atel-data, mountPath: /var/lib/atel }", "- { name: atel-date, mountPath: /var/lib/atel }"),
         r"atel-date names no declared volume"),
        ("a container without image", side, broken(side, "image: my-agent:latest", "imagePullPolicy: Always"),
         r"no image"),
        ("the ConfigMap key renamed", side, broken(side, "  ateld.json: |", "  ateld.jsn: |"),
         r"has no key ateld.json"),
        ("a config ateld refuses", side, broken(side, '"port": 9464', '"port": "abc"'),
         r"check-config refused it: .*prometheus.port"),
        ("a probe on a path ateld does not serve", side, broken(side, "path: /healthz, port: atel-metrics }\n            periodSeconds: 10",
                                                                "path: /readyz, port: atel-metrics }\n            periodSeconds: 10"),
         r"livenessProbe path /readyz"),
        ("a shared PID namespace for nothing", side,
         broken(side, "      terminationGracePeriodSeconds: 40   #",
                "      shareProcessNamespace: true\n      terminationGracePeriodSeconds: 40   #"),
         r"shareProcessNamespace is not needed"),
        ("/dev/shm not memory-backed", side, broken(side, "medium: Memory", "sizeLimit: 64Mi\n            # no medium"),
         r"memory-backed emptyDir"),
        ("ateld bound to loopback", side, broken(side, '"bind": "0.0.0.0"', '"bind": "127.0.0.1"'),
         r"prometheus.bind 127.0.0.1"),
        ("no stable remote-write instance", side, broken(side, "- name: ATEL_REMOTE_WRITE_INSTANCE", "- name: ATEL_OTHER"),
         r"without an instance"),
        ("ateld without a writable /tmp", side,
         broken(side, "            - { name: ateld-tmp, mountPath: /tmp }", "            - { name: ateld-tmp, mountPath: /scratch }"),
         r"without a volume at /tmp"),
        ("a root container", side, broken(side, "runAsNonRoot: true", "runAsNonRoot: false"), r"runAsNonRoot"),
        ("a container without resources", side, broken(side, "requests: { cpu: 250m, memory: 256Mi }", "requests: { cpu: 250m }"),
         r"resources need"),
        ("a DaemonSet asking for hostPID", ds, broken(ds, "      terminationGracePeriodSeconds: 40\n",
                                                      "      hostPID: true\n      terminationGracePeriodSeconds: 40\n"),
         r"hostPID is not needed"),
        ("a DaemonSet's instance not the node name", ds, broken(ds, "fieldPath: spec.nodeName", "fieldPath: metadata.name"),
         r"node name"),
        ("the segment directory outside /dev/shm", ds, broken(ds, "path: /dev/shm/atel\n            type: DirectoryOrCreate",
                                                               "path: /var/run/atel\n            type: DirectoryOrCreate"),
         r"hostPath under the node's /dev/shm"),
        ("an agent on another directory than ateld's", ds, broken(ds, "path: /dev/shm/atel\n            type: Directory\n",
                                                                   "path: /dev/shm/other\n            type: Directory\n"),
         r"the DaemonSet's segment directory"),
        ("an agent outside ateld's group", ds, broken(ds, "runAsUser: 10002\n        runAsGroup: 10001",
                                                      "runAsUser: 10002\n        runAsGroup: 10002"),
         r"not in ateld's group"),
        ("a Service whose targetPort no container has", manifests["prometheus.yaml"],
         broken(manifests["prometheus.yaml"], "targetPort: web", "targetPort: http"), r"targetPort http"),
    ]
    for what, _orig, text, want in cases:
        t.refuses("kubernetes: " + what, k8s_problems(text, "broken.yaml"), want)
    if have_kubectl:
        t.refuses("kubectl: a misspelled field", kubectl_problems(
            broken(side, "              containerPort: 9464", "              containerPorts: 9464"), "broken.yaml"),
            r"unknown field .*containerPorts")
        t.refuses("kubectl: a wrong type", kubectl_problems(
            broken(side, "      terminationGracePeriodSeconds: 40 ", '      terminationGracePeriodSeconds: "forty" '),
            "broken.yaml"), r"cannot unmarshal string .*terminationGracePeriodSeconds")
        t.refuses("kubectl: an unknown kind", kubectl_problems(
            broken(ds, "kind: DaemonSet", "kind: DaemonSets"), "broken.yaml"), r"did not decode")

    # ---- Prometheus
    pdir = os.path.join(DEPLOY, "prometheus")
    proms = {f: read(os.path.join(pdir, f)) for f in sorted(os.listdir(pdir)) if f.endswith(".yml")}
    for f, text in proms.items():
        t.ok("prometheus/%s: promtool check config" % f, prometheus_problems(text, f, metrics_ports))
    if not promtool_has_k8s_sd():
        print("note: this promtool lacks kubernetes_sd_configs (Debian build): prometheus-kubernetes.yml is "
              "checked by promtool with them swapped for file_sd_configs, and those blocks by the structural check")
    for f, text in proms.items():
        t.refuses("prometheus/%s with a bad duration" % f, prometheus_problems(
            broken(text, "evaluation_interval: 15s", "evaluation_interval: 15parsecs"), f, metrics_ports), r"promtool")
    k8s_prom = proms["prometheus-kubernetes.yml"]
    t.refuses("prometheus-kubernetes.yml with a bad relabel regex", prometheus_problems(
        broken(k8s_prom, "regex: Pending|Succeeded|Failed", "regex: Pending|(Succeeded"), "x", metrics_ports), r"promtool")
    t.refuses("prometheus-kubernetes.yml with an unknown role", prometheus_problems(
        broken(k8s_prom, "- role: pod", "- role: pods"), "x", metrics_ports), r"role 'pods'")
    t.refuses("prometheus-kubernetes.yml keeping another port name", prometheus_problems(
        broken(k8s_prom, "regex: atel-metrics", "regex: metrics"), "x", metrics_ports), r"ateld's port is named")
    t.refuses("prometheus-kubernetes.yml reading a label its role lacks", prometheus_problems(
        broken(k8s_prom, "[__meta_kubernetes_pod_node_name]", "[__meta_kubernetes_node_name]"), "x", metrics_ports),
        r"not a label of role pod")

    # ---- OpenTelemetry Collector (structural)
    otel = read(os.path.join(DEPLOY, "otelcol", "otelcol-ateld.yaml"))
    t.ok("otelcol/otelcol-ateld.yaml: structural check of the collector config (not the collector)",
         otelcol_problems(otel, "otelcol-ateld.yaml"))
    for what, text, want in [
        ("a pipeline naming an undefined exporter", broken(otel, "exporters: [debug, otlp/backend]",
                                                           "exporters: [debug, otlp/missing]"), r"otlp/missing is not defined"),
        ("an unknown top-level section", otel + "\nexporter:\n  debug: {}\n", r"unknown top-level"),
        ("an unknown debug verbosity", broken(otel, "verbosity: basic", "verbosity: loud"), r"verbosity 'loud'"),
        ("memory_limiter not first", broken(otel, "processors: [memory_limiter, batch]\n      exporters: [debug, otlp",
                                            "processors: [batch, memory_limiter]\n      exporters: [debug, otlp"),
         r"memory_limiter must be the first"),
        ("an unknown receiver key", broken(otel, "endpoint: 0.0.0.0:4318", "endpoint: 0.0.0.0:4318\n        port: 4318"),
         r"unknown keys \['port'\]"),
        ("a YAML syntax error", broken(otel, "    traces:\n      receivers: [otlp]", "    traces:\n      receivers: [otlp"), r"YAML"),
    ]:
        t.refuses("otelcol: " + what, otelcol_problems(text, "broken.yaml"), want)

    # ---- across files
    t.ok("kubernetes/prometheus.yaml embeds prometheus-kubernetes.yml verbatim",
         embedded_problems(manifests["prometheus.yaml"], "prometheus.yaml", "prometheus-config", "prometheus.yml",
                           k8s_prom, "prometheus/prometheus-kubernetes.yml"))
    t.ok("kubernetes/otel-collector.yaml embeds otelcol-ateld.yaml verbatim",
         embedded_problems(manifests["otel-collector.yaml"], "otel-collector.yaml", "otel-collector-config",
                           "config.yaml", otel, "otelcol/otelcol-ateld.yaml"))
    t.refuses("an embedded copy that drifted", embedded_problems(
        broken(manifests["prometheus.yaml"], "scrape_interval: 15s", "scrape_interval: 30s"), "prometheus.yaml",
        "prometheus-config", "prometheus.yml", k8s_prom, "x"), r"not .* verbatim")
    t.ok("ateld's remote-write URL and OTLP endpoint name these Services and ports",
         cross_problems(manifests, otel))
    bad = dict(manifests)
    bad["sidecar.yaml"] = broken(side, "otel-collector.monitoring.svc:4318", "otel-collector.monitoring.svc:4317")
    t.refuses("an OTLP endpoint on the wrong port", cross_problems(bad, otel), r"no Service otel-collector")
    bad = dict(manifests)
    bad["prometheus.yaml"] = broken(manifests["prometheus.yaml"], "            - --web.enable-remote-write-receiver\n", "")
    t.refuses("a Prometheus without the remote-write receiver", cross_problems(bad, otel),
              r"without --web.enable-remote-write-receiver")

    print("deploy_k8s: %d passed, %d failed" % (t.passed, t.failed))
    return 1 if t.failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
