# SPDX-License-Identifier: MIT
"""atel for Python: docs/reference.md's metricsCollector / traceContext API, in
Python naming, over libatel.so (the public API of producer/include/atel.h)
through ctypes.

    from atel import metrics_collector, trace_context, SpanKind

    metrics_collector.track_tool_usage(tool="Read", duration=250, success=True)
    with trace_context.start_trace("orchestration-session", SpanKind.SERVER) as root:
        with trace_context.start_span(root, "coder-execution") as child:
            trace_context.set_attributes(child, {"files": 3})

Like libatel, nothing here raises at the agent or blocks: without a sidecar
every call is a cheap counted no-op, and invalid input is counted
(stats()["invalid"]) and explained by last_error().

The library: $ATEL_LIBRARY (a path to libatel.so), else
$ATEL_BUILD_ROOT/producer/libatel.so, else the repository's
build/producer/libatel.so beside this package, else the system's libatel.so.0.

Cost. libatel is loaded with ctypes.PyDLL: its calls never block, so the GIL
is kept across them (no release/re-acquire per call). Strings are encoded once
and the bytes kept, so libatel sees the same pointer for the same string and
its pointer memo skips the hash probe; a Counter/Gauge/Histogram object passes
only its handle and a float.
"""
import ctypes
import math
import os
import threading

__all__ = [
    "metrics_collector", "trace_context", "SpanKind", "SpanStatusCode", "Counter", "Gauge",
    "Histogram", "Span", "SpanContext", "init", "shutdown", "attached", "last_error", "stats",
]


class SpanKind:
    """OpenTelemetry's SpanKind, numbered as in OTLP (libatel's atel_span_kind)."""
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class SpanStatusCode:
    """OpenTelemetry's StatusCode."""
    UNSET = 0
    OK = 1
    ERROR = 2


# ---------------------------------------------------------------------------
# the library

def _find_library():
    cands = []
    if os.environ.get("ATEL_LIBRARY"):
        cands.append(os.environ["ATEL_LIBRARY"])
    here = os.path.dirname(os.path.abspath(__file__))
    for root in (os.environ.get("ATEL_BUILD_ROOT"), os.path.join(here, "..", "..", "..", "build")):
        if root:
            cands.append(os.path.join(root, "producer", "libatel.so"))
    for c in cands:
        if os.path.exists(c):
            return c
    return "libatel.so.0"


_lib = ctypes.PyDLL(_find_library())


class _SpanContext(ctypes.Structure):
    _fields_ = [("trace_id", ctypes.c_uint8 * 16), ("span_id", ctypes.c_uint8 * 8),
                ("trace_flags", ctypes.c_uint8), ("version", ctypes.c_uint8),
                ("reserved", ctypes.c_uint16), ("tracestate", ctypes.c_uint32)]


class _Span(ctypes.Structure):
    _fields_ = [("ctx", _SpanContext), ("parent_id", ctypes.c_uint8 * 8), ("name_id", ctypes.c_uint32),
                ("kind", ctypes.c_uint8), ("state", ctypes.c_uint8), ("reserved", ctypes.c_uint16)]


assert ctypes.sizeof(_SpanContext) == 32 and ctypes.sizeof(_Span) == 48, "atel.h layouts changed"


class _AttrValue(ctypes.Union):
    _fields_ = [("s", ctypes.c_char_p), ("i", ctypes.c_int64), ("d", ctypes.c_double), ("b", ctypes.c_bool)]


class _Attr(ctypes.Structure):
    _fields_ = [("key", ctypes.c_char_p), ("type", ctypes.c_int), ("v", _AttrValue)]


class _AgentExecution(ctypes.Structure):
    _fields_ = [("agent_id", ctypes.c_char_p), ("agent_type", ctypes.c_char_p), ("phase", ctypes.c_char_p),
                ("model", ctypes.c_char_p), ("duration_ms", ctypes.c_double), ("tokens", ctypes.c_uint64),
                ("success", ctypes.c_bool)]


class _ToolUsage(ctypes.Structure):
    _fields_ = [("tool", ctypes.c_char_p), ("error_type", ctypes.c_char_p), ("duration_ms", ctypes.c_double),
                ("success", ctypes.c_bool)]


class _ContextUsage(ctypes.Structure):
    _fields_ = [("agent_id", ctypes.c_char_p), ("session_id", ctypes.c_char_p), ("used", ctypes.c_uint64),
                ("total", ctypes.c_uint64)]


class _ErrorInfo(ctypes.Structure):
    _fields_ = [("component", ctypes.c_char_p), ("error_type", ctypes.c_char_p), ("severity", ctypes.c_char_p)]


class _TaskInfo(ctypes.Structure):
    _fields_ = [("task_type", ctypes.c_char_p), ("error_type", ctypes.c_char_p), ("duration_ms", ctypes.c_double),
                ("success", ctypes.c_bool)]


class _Stats(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in (
        "records", "definitions", "meta", "slots", "drops_ring_full", "drops_no_ring", "drops_no_def",
        "drops_no_sidecar", "drops_reentrant", "invalid", "rings_claimed", "rings_released",
        "attach_attempts")] + [("attached", ctypes.c_bool)]


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_P = ctypes.POINTER
_vp, _cp, _d, _i, _sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_double, ctypes.c_int, ctypes.c_size_t
_init = _fn("atel_init", _i, _cp)
_shutdown = _fn("atel_shutdown", None)
_attached = _fn("atel_attached", ctypes.c_bool)
_last_error = _fn("atel_last_error", _cp)
_stats_get = _fn("atel_stats_get", None, _P(_Stats))
_series_get = _fn("atel_series_get", _vp, _i, _cp, _P(_cp), _sz)
_histogram_bounds = getattr(_lib, "atel_histogram_bounds")  # variadic: argtypes set per call
_histogram_bounds.restype = _vp
_add = _fn("atel_add", None, _vp, _d)
_set = _fn("atel_set", None, _vp, _d)
_observe = _fn("atel_observe", None, _vp, _d)
_track_agent = _fn("atel_track_agent_execution", None, _P(_AgentExecution))
_track_tool = _fn("atel_track_tool_usage", None, _P(_ToolUsage))
_track_context = _fn("atel_track_context_usage", None, _P(_ContextUsage))
_track_error = _fn("atel_track_error", None, _P(_ErrorInfo))
_track_task = _fn("atel_track_task", None, _P(_TaskInfo))
_track_queue = _fn("atel_track_queue_size", None, _cp, _d)
_trace_start = _fn("atel_trace_start", _Span, _cp, _i)
_span_start = _fn("atel_span_start", _Span, _P(_Span), _cp, _i)
_trace_continue = _fn("atel_trace_continue", _Span, _P(_SpanContext), _cp, _i)
_set_attrs = _fn("atel_span_set_attrs", None, _P(_Span), _P(_Attr), _sz)
_add_event = _fn("atel_span_add_event", None, _P(_Span), _cp)
_add_event_attrs = _fn("atel_span_add_event_attrs", None, _P(_Span), _cp, _P(_Attr), _sz)
_record_error = _fn("atel_span_record_error", None, _P(_Span), _cp, _cp)
_span_end = _fn("atel_span_end", None, _P(_Span), _i, _cp)
_propagate = _fn("atel_propagate", _i, _P(_Span), ctypes.c_char_p, _sz)
_propagate_ts = _fn("atel_propagate_tracestate", _i, _P(_Span), ctypes.c_char_p, _sz)
_extract = _fn("atel_extract", _i, _cp, _P(_SpanContext))
_extract_ts = _fn("atel_extract_tracestate", _i, _cp, _P(_SpanContext))
_context_ts = _fn("atel_context_tracestate", _cp, _P(_SpanContext))

_byref = ctypes.byref

# str -> UTF-8 bytes, kept alive so libatel sees a stable pointer per string.
_enc = {}
_ENC_MAX = 1 << 16


def _b(s):
    if s is None:
        return None
    b = _enc.get(s)
    if b is None:
        b = (s if isinstance(s, str) else str(s)).encode("utf-8", "replace")
        if len(_enc) < _ENC_MAX:
            _enc[s] = b
    return b


# ---------------------------------------------------------------------------
# metrics

_COUNTER, _GAUGE, _HISTOGRAM = 1, 2, 3


class _Series:
    __slots__ = ("handle", "name", "labels")

    def __init__(self, handle, name, labels):
        self.handle = ctypes.c_void_p(handle)  # a ctypes object: passed without conversion
        self.name = name
        self.labels = labels

    def __bool__(self):
        return bool(self.handle.value)


_NAN = float("nan")


def _call(fn, h, v):
    # the hot path is the bare call (a try costs nothing until it raises); a
    # value ctypes cannot convert becomes NaN, which libatel rejects and counts
    try:
        fn(h, v)
    except (ctypes.ArgumentError, TypeError):
        fn(h, _NAN)


class Counter(_Series):
    """A counter series: name + labels resolved once; add() passes only a float."""
    __slots__ = ()

    def add(self, v=1.0):
        try:
            _add(self.handle, v)
        except (ctypes.ArgumentError, TypeError):
            _add(self.handle, _NAN)

    inc = add


class Gauge(_Series):
    __slots__ = ()

    def set(self, v):
        _call(_set, self.handle, v)

    def add(self, v):
        _call(_add, self.handle, v)

    def inc(self, v=1.0):
        _call(_add, self.handle, v)

    def dec(self, v=1.0):
        _call(_add, self.handle, -v if isinstance(v, (int, float)) else _NAN)


class Histogram(_Series):
    __slots__ = ()

    def observe(self, v):
        try:
            _observe(self.handle, v)
        except (ctypes.ArgumentError, TypeError):
            _observe(self.handle, _NAN)

    record = observe


_series_cache = {}
_series_lock = threading.Lock()


def _series(mtype, cls, name, labels, buckets=None):
    items = tuple(sorted((str(k), str(v)) for k, v in (labels or {}).items() if v is not None))
    key = (mtype, name, items, tuple(buckets) if buckets else None)
    s = _series_cache.get(key)
    if s is not None:
        return s
    kv = [_b(x) for pair in items for x in pair]
    if mtype == _HISTOGRAM and buckets:
        bounds = (ctypes.c_double * len(buckets))(*[float(x) for x in buckets])
        args = [_b(name), bounds, ctypes.c_size_t(len(buckets))] + [ctypes.c_char_p(x) for x in kv] + \
            [ctypes.c_char_p(None)]
        h = _histogram_bounds(*args)
    else:
        arr = (ctypes.c_char_p * max(len(kv), 1))(*kv)
        h = _series_get(mtype, _b(name), arr, len(items))
    s = cls(h, name, dict(items))
    if h:  # an invalid series stays uncached: last_error() says why, the next call retries
        with _series_lock:
            _series_cache.setdefault(key, s)
    return s


def _ms(v):
    """A number, or NaN (libatel rejects and counts it) for anything else: never raises."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _count(v):
    """A token count: non-negative integer, 0 for anything else."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0
    return int(f) if f > 0 and math.isfinite(f) else 0


class MetricsCollector:
    """docs/reference.md's metricsCollector. Durations are in milliseconds."""

    def counter(self, name, labels=None):
        return _series(_COUNTER, Counter, name, labels)

    def gauge(self, name, labels=None):
        return _series(_GAUGE, Gauge, name, labels)

    def histogram(self, name, labels=None, buckets=None):
        """buckets: finite, strictly increasing upper bounds (+Inf implicit); default: catalog's or .005..10."""
        return _series(_HISTOGRAM, Histogram, name, labels, buckets)

    def increment_counter(self, name, value=1.0, labels=None):
        self.counter(name, labels).add(value)

    def set_gauge(self, name, value, labels=None):
        self.gauge(name, labels).set(value)

    def record_histogram(self, name, value, labels=None):
        self.histogram(name, labels).observe(value)

    def track_agent_execution(self, agent_type=None, duration=None, success=False, tokens=0, phase=None,
                              model=None, agent_id=None):
        """agent_execution_total, agent_execution_duration_seconds, agent_tokens_used."""
        _track_agent(_byref(_AgentExecution(_b(agent_id), _b(agent_type), _b(phase), _b(model), _ms(duration),
                                            _count(tokens), bool(success))))

    def track_tool_usage(self, tool=None, duration=None, success=False, error_type=None):
        """tool_calls_total, tool_call_duration_seconds, tool_call_success_total / tool_call_failure_total."""
        _track_tool(_byref(_ToolUsage(_b(tool), _b(error_type), _ms(duration), bool(success))))

    def track_context_usage(self, used=0, total=0, agent_id=None, session_id=None):
        """context_window_used_tokens, context_window_size_tokens, context_window_utilization (percent)."""
        _track_context(_byref(_ContextUsage(_b(agent_id), _b(session_id), _count(used), _count(total))))

    def track_error(self, component=None, error_type=None, severity=None):
        """error_total and error_rate (errors per second, 60 s exponentially weighted)."""
        _track_error(_byref(_ErrorInfo(_b(component), _b(error_type), _b(severity))))

    def track_task(self, task_type=None, duration=None, success=False, error_type=None):
        """task_duration_seconds, task_success_total / task_failure_total."""
        _track_task(_byref(_TaskInfo(_b(task_type), _b(error_type), _ms(duration), bool(success))))

    def track_queue_size(self, priority, size):
        """task_queue_size{priority} = size."""
        _track_queue(_b(priority), _ms(size))


metrics_collector = MetricsCollector()

# ---------------------------------------------------------------------------
# tracing


class SpanContext:
    """A W3C trace context (from extract / extract_env, or Span.span_context())."""
    __slots__ = ("_c",)

    def __init__(self, c):
        self._c = c

    @property
    def trace_id(self):
        return bytes(self._c.trace_id).hex()

    @property
    def span_id(self):
        return bytes(self._c.span_id).hex()

    @property
    def trace_flags(self):
        return self._c.trace_flags

    @property
    def trace_state(self):
        return (_context_ts(_byref(self._c)) or b"").decode()

    def __str__(self):
        return "00-%s-%s-%02x" % (self.trace_id, self.span_id, self.trace_flags)


class Span:
    """A span: a 48-byte libatel span value. As a context manager it ends on
    exit; an exception leaving the block is recorded (OpenTelemetry's
    exception event) and ends the span with status ERROR."""
    __slots__ = ("_s", "name", "kind")

    def __init__(self, s, name, kind):
        self._s = s
        self.name = name
        self.kind = kind

    @property
    def trace_id(self):
        return bytes(self._s.ctx.trace_id).hex()

    @property
    def span_id(self):
        return bytes(self._s.ctx.span_id).hex()

    @property
    def parent_span_id(self):
        p = bytes(self._s.parent_id)
        return None if p == bytes(8) else p.hex()

    @property
    def trace_flags(self):
        return self._s.ctx.trace_flags

    @property
    def is_recording(self):
        return self._s.state == 1

    @property
    def ended(self):
        return self._s.state == 2

    def span_context(self):
        c = _SpanContext()
        ctypes.memmove(_byref(c), _byref(self._s.ctx), ctypes.sizeof(c))
        return SpanContext(c)

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if ev is not None:
            trace_context.record_error(self, ev)
            trace_context.end_span(self, SpanStatusCode.ERROR, str(ev) or et.__name__)
        else:
            trace_context.end_span(self)
        return False


def _attrs(attrs):
    out = []
    keep = []
    for k, v in attrs.items():
        if v is None:
            continue
        a = _Attr()
        a.key = _b(k)
        if isinstance(v, bool):
            a.type, a.v.b = 4, v
        elif isinstance(v, int) and -(1 << 63) <= v < (1 << 63):
            a.type, a.v.i = 2, v
        elif isinstance(v, float):
            a.type, a.v.d = 3, v
        else:
            if isinstance(v, (list, tuple)):
                import json
                v = json.dumps(list(v))
            b = str(v).encode("utf-8", "replace")
            keep.append(b)
            a.type, a.v.s = 1, b
        out.append(a)
    arr = (_Attr * max(len(out), 1))(*out)
    return arr, len(out), keep


def _header(carrier, name):
    if carrier is None:
        return None
    v = None
    get = getattr(carrier, "get", None)
    if get is not None:
        v = get(name)
        if v is None:
            for k in carrier:
                if isinstance(k, str) and k.lower() == name:
                    v = carrier[k]
                    break
    if isinstance(v, (list, tuple)):
        v = ",".join(v)
    return v


def _parse(traceparent, tracestate=None):
    if not isinstance(traceparent, str):
        return None
    c = _SpanContext()
    if _extract(traceparent.strip().encode("utf-8", "replace"), _byref(c)) != 0:
        return None
    if isinstance(tracestate, str):
        _extract_ts(tracestate.encode("utf-8", "replace"), _byref(c))
    return SpanContext(c)


class TraceContext:
    """docs/reference.md's traceContext, plus W3C propagation helpers."""

    def start_trace(self, name, kind=SpanKind.INTERNAL):
        return Span(_trace_start(_b(name), kind), name, kind)

    def start_span(self, parent, name, kind=SpanKind.INTERNAL):
        if parent is None:
            return Span(_trace_start(_b(name), kind), name, kind)
        return Span(_span_start(_byref(parent._s), _b(name), kind), name, kind)

    def continue_trace(self, ctx, name, kind=SpanKind.INTERNAL):
        """Joins a remote trace; ctx None: a new trace."""
        if ctx is None:
            return self.start_trace(name, kind)
        return Span(_trace_continue(_byref(ctx._c), _b(name), kind), name, kind)

    def set_attributes(self, span, attrs):
        if span is not None and attrs:
            arr, n, keep = _attrs(attrs)
            _set_attrs(_byref(span._s), arr, n)

    def set_attribute(self, span, key, value):
        self.set_attributes(span, {key: value})

    def add_event(self, span, name, attrs=None):
        if span is None:
            return
        if attrs:
            arr, n, keep = _attrs(attrs)
            _add_event_attrs(_byref(span._s), _b(name), arr, n)
        else:
            _add_event(_byref(span._s), _b(name))

    def record_error(self, span, error):
        """An "exception" event (exception.type, exception.message) and status ERROR."""
        if span is None:
            return
        if isinstance(error, BaseException):
            t, m = type(error).__name__, str(error)
        else:
            t, m = "Error", "" if error is None else str(error)
        _record_error(_byref(span._s), _b(t), m.encode("utf-8", "replace"))

    def end_span(self, span, code=SpanStatusCode.UNSET, message=None):
        if span is not None:
            _span_end(_byref(span._s), code, None if message is None else message.encode("utf-8", "replace"))

    # -- W3C Trace Context ----------------------------------------------------

    def propagate(self, span):
        """The traceparent header value, or None for a no-op span."""
        buf = ctypes.create_string_buffer(64)
        if span is None or _propagate(_byref(span._s), buf, 64) < 0:
            return None
        return buf.value.decode()

    def inject(self, span, headers=None):
        """Sets traceparent (and tracestate) in headers (a dict by default). Returns headers."""
        if headers is None:
            headers = {}
        tp = self.propagate(span)
        if tp is not None:
            headers["traceparent"] = tp
            buf = ctypes.create_string_buffer(520)
            n = _propagate_ts(_byref(span._s), buf, 520)
            if n > 0:
                headers["tracestate"] = buf.value.decode()
        return headers

    def extract(self, carrier):
        """A traceparent string or a headers mapping -> SpanContext, or None when absent/invalid."""
        if isinstance(carrier, str):
            return _parse(carrier)
        return _parse(_header(carrier, "traceparent"), _header(carrier, "tracestate"))

    def inject_env(self, span, env=None):
        """TRACEPARENT (and TRACESTATE) for a child process, in env (default os.environ). Returns env."""
        if env is None:
            env = os.environ
        h = self.inject(span, {})
        if "traceparent" in h:
            env["TRACEPARENT"] = h["traceparent"]
            if "tracestate" in h:
                env["TRACESTATE"] = h["tracestate"]
            else:
                env.pop("TRACESTATE", None)
        return env

    def extract_env(self, env=None):
        """TRACEPARENT (else TRACE_CONTEXT) and TRACESTATE of env (default os.environ)."""
        if env is None:
            env = os.environ
        tp = env.get("TRACEPARENT")
        if tp is None:
            tp = env.get("TRACE_CONTEXT")
        return _parse(tp, env.get("TRACESTATE"))


trace_context = TraceContext()


def init(shm_name=None):
    """Attaches to the sidecar's segment ($ATEL_SHM, else "atel"). 0 or -errno. Optional."""
    return _init(_b(shm_name))


def shutdown():
    """Releases this process's rings (when no other thread records any more)."""
    _shutdown()


def attached():
    return bool(_attached())


def last_error():
    """Why the last rejected call of this thread was rejected ("" if none)."""
    return (_last_error() or b"").decode("utf-8", "replace")


def stats():
    """libatel's process-wide counters (records written, drops by cause, invalid calls)."""
    s = _Stats()
    _stats_get(_byref(s))
    return {n: getattr(s, n) for n, _ in _Stats._fields_}
