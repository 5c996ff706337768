// SPDX-License-Identifier: MIT
//
// atel_node.cc - the Node-API addon under lib/index.js: a thin layer over the
// public libatel API (producer/include/atel.h) and nothing else.
//
// Cost model. The hot calls (add/set/observe on a cached series, the track*
// helpers, span start/end) take only numbers and typed arrays: strings are
// turned into small integer ids once by lib/index.js (a JS Map from string to
// id) and kept here as stable C strings, and series handles are indices into
// a table. So a reused handle never converts a string, and the C helpers see
// the same `const char *` every time (libatel's pointer memo then skips the
// hash probe). Those hot functions are plain Node-API callbacks
// (napi_get_cb_info into a fixed argv array): node-addon-api's CallbackInfo
// allocates when a call has more than six arguments, and its C++ wrappers add
// a few ns per value; the cold functions (intern, series, propagation,
// statistics) use node-addon-api.
//
// Spans are 48-byte atel_span values stored in a Uint8Array that lib/index.js
// allocates (slices of a pooled ArrayBuffer), so a span lives and dies with
// its JS object: nothing to free, nothing leaks when a span is never ended.
//
// Tables. Interned strings and series handles live in chunked tables that
// never move (a chunk is published with a release store once filled in), so
// the hot path reads them without a lock from any worker thread; appends take
// a mutex. Entries are never freed: like libatel's own series and strings,
// they live as long as the process.
//
// Errors. Telemetry never throws at the agent: a wrong argument type turns
// into the same counted no-op libatel uses (a zeroed span, a NULL series),
// except for programming errors of lib/index.js itself (a span buffer of the
// wrong size), which throw TypeError.
#define NAPI_VERSION 8
#define NAPI_DISABLE_CPP_EXCEPTIONS 1
#include <napi.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

extern "C" {
#include <atel.h>
}

static_assert(sizeof(atel_span) == 48, "lib/index.js allocates 48-byte span buffers");
static_assert(sizeof(atel_span_context) == 32, "lib/index.js allocates 32-byte context buffers");
static_assert(offsetof(atel_span, parent_id) == 32, "lib/index.js reads parent_id at byte 32");
static_assert(offsetof(atel_span, state) == 45, "lib/index.js reads state at byte 45");

namespace {

// ---------------------------------------------------------------------------
// chunked, append-only tables

template <typename T> class Table {
public:
	static constexpr uint32_t kChunkBits = 10, kChunk = 1u << kChunkBits, kChunks = 4096;

	// Appends v. @return its index (>= 1: index 0 is the reserved "none"), or 0 when full.
	uint32_t push(T v)
	{
		std::lock_guard<std::mutex> g(lock_);
		uint32_t i = n_.load(std::memory_order_relaxed);
		uint32_t c = i >> kChunkBits;

		if (c >= kChunks)
			return 0;
		T *chunk = chunks_[c].load(std::memory_order_relaxed);
		if (!chunk) {
			chunk = static_cast<T *>(calloc(kChunk, sizeof(T)));
			if (!chunk)
				return 0;
			chunks_[c].store(chunk, std::memory_order_release);
		}
		chunk[i & (kChunk - 1)] = v;
		n_.store(i + 1, std::memory_order_release); // pairs with the acquire in get()
		return i;
	}

	// The entry at i, or T{} (index 0, out of range, not yet published).
	T get(uint32_t i) const
	{
		if (i == 0 || i >= n_.load(std::memory_order_acquire))
			return T{};
		return chunks_[i >> kChunkBits].load(std::memory_order_relaxed)[i & (kChunk - 1)];
	}

	Table() { n_.store(1, std::memory_order_relaxed); }

private:
	std::mutex lock_;
	std::atomic<uint32_t> n_;
	std::atomic<T *> chunks_[kChunks] = {};
};

Table<const char *> g_strings; // id -> NUL-terminated UTF-8 (strdup'd, never freed)
Table<atel_series> g_series;   // index -> libatel handle

// ---------------------------------------------------------------------------
// raw Node-API helpers for the hot path

template <size_t N> static inline bool args(napi_env env, napi_callback_info info, napi_value (&argv)[N], size_t *argc)
{
	*argc = N;
	return napi_get_cb_info(env, info, argc, argv, nullptr, nullptr) == napi_ok;
}

static inline uint32_t u32_arg(napi_env env, napi_value v)
{
	uint32_t r = 0;
	if (napi_get_value_uint32(env, v, &r) != napi_ok)
		return 0;
	return r;
}

static inline double num_arg(napi_env env, napi_value v)
{
	double r = NAN; // a non-number becomes NaN: libatel rejects it and counts it
	napi_get_value_double(env, v, &r);
	return r;
}

static inline bool bool_arg(napi_env env, napi_value v)
{
	bool r = false;
	if (napi_get_value_bool(env, v, &r) != napi_ok)
		return false;
	return r;
}

static inline const char *str_id(napi_env env, napi_value v)
{
	return g_strings.get(u32_arg(env, v));
}

// The bytes of a Uint8Array of exactly `want` bytes, else nullptr (and a pending TypeError).
static inline void *buf_arg(napi_env env, napi_value v, size_t want)
{
	napi_typedarray_type type;
	size_t len = 0;
	void *data = nullptr;

	if (napi_get_typedarray_info(env, v, &type, &len, &data, nullptr, nullptr) != napi_ok ||
	    type != napi_uint8_array || len != want) {
		napi_throw_type_error(env, nullptr, "atel: internal: expected a span/context buffer");
		return nullptr;
	}
	return data;
}

// add(series, v), set(series, v), observe(series, v)
template <void (*F)(atel_series, double)> static napi_value metric_op(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	size_t argc;

	if (args(env, info, argv, &argc) && argc >= 2)
		F(g_series.get(u32_arg(env, argv[0])), num_arg(env, argv[1]));
	return nullptr;
}

// trackAgentExecution(agentId, agentType, phase, model, durationMs, tokens, success): ids, numbers, bool
static napi_value track_agent_execution(napi_env env, napi_callback_info info)
{
	napi_value a[7];
	size_t argc;

	if (!args(env, info, a, &argc) || argc < 7) {
		atel_track_agent_execution(nullptr); // a missing argument: libatel counts it
		return nullptr;
	}
	double tokens = num_arg(env, a[5]);
	atel_agent_execution e = {};
	e.agent_id = str_id(env, a[0]);
	e.agent_type = str_id(env, a[1]);
	e.phase = str_id(env, a[2]);
	e.model = str_id(env, a[3]);
	e.duration_ms = num_arg(env, a[4]);
	e.tokens = std::isfinite(tokens) && tokens > 0 ? static_cast<uint64_t>(tokens) : 0;
	e.success = bool_arg(env, a[6]);
	atel_track_agent_execution(&e);
	return nullptr;
}

// trackToolUsage(tool, errorType, durationMs, success)
static napi_value track_tool_usage(napi_env env, napi_callback_info info)
{
	napi_value a[4];
	size_t argc;

	if (!args(env, info, a, &argc) || argc < 4) {
		atel_track_tool_usage(nullptr); // a missing argument: libatel counts it
		return nullptr;
	}
	atel_tool_usage u = {};
	u.tool = str_id(env, a[0]);
	u.error_type = str_id(env, a[1]);
	u.duration_ms = num_arg(env, a[2]);
	u.success = bool_arg(env, a[3]);
	atel_track_tool_usage(&u);
	return nullptr;
}

static uint64_t count_arg(napi_env env, napi_value v)
{
	double d = num_arg(env, v);
	return std::isfinite(d) && d > 0 ? static_cast<uint64_t>(d) : 0;
}

// trackContextUsage(agentId, sessionId, used, total)
static napi_value track_context_usage(napi_env env, napi_callback_info info)
{
	napi_value a[4];
	size_t argc;

	if (!args(env, info, a, &argc) || argc < 4) {
		atel_track_context_usage(nullptr); // a missing argument: libatel counts it
		return nullptr;
	}
	atel_context_usage c = {};
	c.agent_id = str_id(env, a[0]);
	c.session_id = str_id(env, a[1]);
	c.used = count_arg(env, a[2]);
	c.total = count_arg(env, a[3]);
	atel_track_context_usage(&c);
	return nullptr;
}

// trackTask(taskType, errorType, durationMs, success)
static napi_value track_task(napi_env env, napi_callback_info info)
{
	napi_value a[4];
	size_t argc;

	if (!args(env, info, a, &argc) || argc < 4) {
		atel_track_task(nullptr); // a missing argument: libatel counts it
		return nullptr;
	}
	atel_task_info k = {};
	k.task_type = str_id(env, a[0]);
	k.error_type = str_id(env, a[1]);
	k.duration_ms = num_arg(env, a[2]);
	k.success = bool_arg(env, a[3]);
	atel_track_task(&k);
	return nullptr;
}

// trackError(component, errorType, severity)
static napi_value track_error(napi_env env, napi_callback_info info)
{
	napi_value a[3];
	size_t argc;

	if (!args(env, info, a, &argc) || argc < 3) {
		atel_track_error(nullptr); // a missing argument: libatel counts it
		return nullptr;
	}
	atel_error_info e = {};
	e.component = str_id(env, a[0]);
	e.error_type = str_id(env, a[1]);
	e.severity = str_id(env, a[2]);
	atel_track_error(&e);
	return nullptr;
}

// trackQueueSize(priority, size)
static napi_value track_queue_size(napi_env env, napi_callback_info info)
{
	napi_value a[2];
	size_t argc;

	if (args(env, info, a, &argc) && argc >= 2)
		atel_track_queue_size(str_id(env, a[0]), num_arg(env, a[1]));
	return nullptr;
}

static inline atel_span_kind kind_arg(napi_env env, napi_value v)
{
	return static_cast<atel_span_kind>(u32_arg(env, v)); // out of range: libatel records INTERNAL and counts it
}

// startSpan(parentBuf | null, nameId, kind, outBuf): a child of parent, or a root span
static napi_value start_span(napi_env env, napi_callback_info info)
{
	napi_value a[4];
	size_t argc;
	napi_valuetype t;

	if (!args(env, info, a, &argc) || argc < 4)
		return nullptr;
	void *out = buf_arg(env, a[3], sizeof(atel_span));
	if (!out)
		return nullptr;
	const atel_span *parent = nullptr;
	if (napi_typeof(env, a[0], &t) == napi_ok && t == napi_object) {
		parent = static_cast<const atel_span *>(buf_arg(env, a[0], sizeof(atel_span)));
		if (!parent)
			return nullptr;
	}
	atel_span s = atel_span_start(parent, str_id(env, a[1]), kind_arg(env, a[2]));
	memcpy(out, &s, sizeof(s));
	return nullptr;
}

// startTrace(nameId, kind, outBuf): a root span (no parent to inspect)
static napi_value start_trace(napi_env env, napi_callback_info info)
{
	napi_value a[3];
	size_t argc;

	if (!args(env, info, a, &argc) || argc < 3)
		return nullptr;
	void *out = buf_arg(env, a[2], sizeof(atel_span));
	if (!out)
		return nullptr;
	atel_span s = atel_trace_start(str_id(env, a[0]), kind_arg(env, a[1]));
	memcpy(out, &s, sizeof(s));
	return nullptr;
}

// continueTrace(ctxBuf, nameId, kind, outBuf)
static napi_value continue_trace(napi_env env, napi_callback_info info)
{
	napi_value a[4];
	size_t argc;

	if (!args(env, info, a, &argc) || argc < 4)
		return nullptr;
	void *out = buf_arg(env, a[3], sizeof(atel_span));
	const void *ctx = out ? buf_arg(env, a[0], sizeof(atel_span_context)) : nullptr;
	if (!ctx)
		return nullptr;
	atel_span s = atel_trace_continue(static_cast<const atel_span_context *>(ctx), str_id(env, a[1]),
					  kind_arg(env, a[2]));
	memcpy(out, &s, sizeof(s));
	return nullptr;
}

// endSpan(spanBuf, code[, message]): the message is a string (rare: only with ERROR)
static napi_value end_span(napi_env env, napi_callback_info info)
{
	napi_value a[3];
	size_t argc;
	char msg[1024];
	const char *m = nullptr;

	if (!args(env, info, a, &argc) || argc < 2)
		return nullptr;
	atel_span *s = static_cast<atel_span *>(buf_arg(env, a[0], sizeof(atel_span)));
	if (!s)
		return nullptr;
	if (argc >= 3) {
		size_t n = 0;
		if (napi_get_value_string_utf8(env, a[2], msg, sizeof(msg), &n) == napi_ok)
			m = msg;
	}
	atel_span_end(s, static_cast<atel_status_code>(u32_arg(env, a[1])), m);
	return nullptr;
}

// ---------------------------------------------------------------------------
// cold path (node-addon-api)

static std::string str_of(const Napi::Value &v)
{
	return v.IsString() ? v.As<Napi::String>().Utf8Value() : std::string();
}

static Napi::Value Init(const Napi::CallbackInfo &info)
{
	std::string name = str_of(info[0]);
	return Napi::Number::New(info.Env(), atel_init(info[0].IsString() ? name.c_str() : nullptr));
}

static Napi::Value Shutdown(const Napi::CallbackInfo &info)
{
	atel_shutdown();
	return info.Env().Undefined();
}

static Napi::Value Attached(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(), atel_attached());
}

static Napi::Value LastError(const Napi::CallbackInfo &info)
{
	return Napi::String::New(info.Env(), atel_last_error());
}

static Napi::Value Stats(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	atel_stats st;
	atel_stats_get(&st);
	Napi::Object o = Napi::Object::New(env);
#define F(x) o.Set(#x, Napi::Number::New(env, static_cast<double>(st.x)))
	F(records);
	F(definitions);
	F(meta);
	F(slots);
	F(drops_ring_full);
	F(drops_no_ring);
	F(drops_no_def);
	F(drops_no_sidecar);
	F(drops_reentrant);
	F(invalid);
	F(rings_claimed);
	F(rings_released);
	F(attach_attempts);
#undef F
	o.Set("attached", Napi::Boolean::New(env, st.attached));
	return o;
}

// intern(str) -> id >= 1 (0: not a string, or the table is full). A string
// containing NUL is cut there, as any C string would be.
static Napi::Value Intern(const Napi::CallbackInfo &info)
{
	uint32_t id = 0;
	if (info[0].IsString()) {
		std::string s = info[0].As<Napi::String>().Utf8Value();
		char *p = strdup(s.c_str());
		if (p && (id = g_strings.push(p)) == 0)
			free(p);
	}
	return Napi::Number::New(info.Env(), id);
}

// series(type, name, keys: string[], values: string[][, bounds: number[]]) -> index >= 1, or 0 (see lastError)
static Napi::Value Series(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	uint32_t type = info[0].ToNumber().Uint32Value();
	std::string name = str_of(info[1]);
	std::vector<std::string> kv;
	std::vector<const char *> p;
	atel_series s;

	if (info[2].IsArray() && info[3].IsArray()) {
		Napi::Array ks = info[2].As<Napi::Array>(), vs = info[3].As<Napi::Array>();
		uint32_t n = ks.Length() < vs.Length() ? ks.Length() : vs.Length();
		for (uint32_t i = 0; i < n; i++) {
			kv.push_back(str_of(ks.Get(i)));
			kv.push_back(str_of(vs.Get(i)));
		}
	}
	for (const std::string &x : kv)
		p.push_back(x.c_str());
	if (type == ATEL_HISTOGRAM && info[4].IsArray()) {
		Napi::Array bs = info[4].As<Napi::Array>();
		std::vector<double> b;
		for (uint32_t i = 0; i < bs.Length(); i++)
			b.push_back(bs.Get(i).ToNumber().DoubleValue());
		// atel_histogram_bounds is variadic; the array form has no bounds, so
		// pass the pairs through the variadic call in groups (at most 16 pairs).
		const char *v[33] = {};
		size_t n = p.size() < 32 ? p.size() : 32;
		for (size_t i = 0; i < n; i++)
			v[i] = p[i];
		s = atel_histogram_bounds(name.c_str(), b.data(), b.size(), v[0], v[1], v[2], v[3], v[4], v[5], v[6],
					  v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17],
					  v[18], v[19], v[20], v[21], v[22], v[23], v[24], v[25], v[26], v[27], v[28],
					  v[29], v[30], v[31], static_cast<const char *>(nullptr));
	} else {
		s = atel_series_get(static_cast<atel_metric_type>(type), name.c_str(), p.data(), p.size() / 2);
	}
	return Napi::Number::New(env, s ? g_series.push(s) : 0);
}

struct AttrArgs {
	std::vector<std::string> strs; // keeps string values alive for the call
	std::vector<atel_attr> attrs;
};

// keys: string ids (numbers); values: string | number | boolean | bigint
static void attrs_of(const Napi::Array &keys, const Napi::Array &values, AttrArgs *out)
{
	uint32_t n = keys.Length() < values.Length() ? keys.Length() : values.Length();
	out->strs.reserve(n);
	for (uint32_t i = 0; i < n; i++) {
		Napi::Value v = values.Get(i);
		atel_attr a = {};
		a.key = g_strings.get(keys.Get(i).ToNumber().Uint32Value());
		if (v.IsBoolean()) {
			a.type = ATEL_ATTR_BOOL;
			a.v.b = v.As<Napi::Boolean>().Value();
		} else if (v.IsNumber()) {
			double d = v.As<Napi::Number>().DoubleValue();
			// OpenTelemetry JS maps integral numbers to int attributes where safe
			if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) <= 9007199254740991.0) {
				a.type = ATEL_ATTR_INT;
				a.v.i = static_cast<int64_t>(d);
			} else {
				a.type = ATEL_ATTR_DOUBLE;
				a.v.d = d;
			}
		} else if (v.IsBigInt()) {
			bool lossless;
			a.type = ATEL_ATTR_INT;
			a.v.i = v.As<Napi::BigInt>().Int64Value(&lossless);
		} else {
			Napi::Value sv = v.IsString() ? v : v.ToString();
			out->strs.push_back(sv.IsString() ? sv.As<Napi::String>().Utf8Value() : std::string());
			a.type = ATEL_ATTR_STR;
			a.v.s = nullptr; // fixed below, once strs stops growing
		}
		out->attrs.push_back(a);
	}
	size_t k = 0;
	for (atel_attr &a : out->attrs)
		if (a.type == ATEL_ATTR_STR)
			a.v.s = out->strs[k++].c_str();
}

static const atel_span *span_of(const Napi::Value &v)
{
	if (!v.IsTypedArray())
		return nullptr;
	Napi::Uint8Array b = v.As<Napi::Uint8Array>();
	if (b.ByteLength() != sizeof(atel_span))
		return nullptr;
	return reinterpret_cast<const atel_span *>(b.Data());
}

// setAttributes(span, keyIds[], values[])
static Napi::Value SetAttributes(const Napi::CallbackInfo &info)
{
	const atel_span *s = span_of(info[0]);
	if (s && info[1].IsArray() && info[2].IsArray()) {
		AttrArgs a;
		attrs_of(info[1].As<Napi::Array>(), info[2].As<Napi::Array>(), &a);
		atel_span_set_attrs(s, a.attrs.data(), a.attrs.size());
	}
	return info.Env().Undefined();
}

// addEvent(span, nameId, keyIds[], values[])
static Napi::Value AddEvent(const Napi::CallbackInfo &info)
{
	const atel_span *s = span_of(info[0]);
	const char *name = g_strings.get(info[1].ToNumber().Uint32Value());
	if (s && info[2].IsArray() && info[3].IsArray()) {
		AttrArgs a;
		attrs_of(info[2].As<Napi::Array>(), info[3].As<Napi::Array>(), &a);
		atel_span_add_event_attrs(s, name, a.attrs.data(), a.attrs.size());
	} else if (s) {
		atel_span_add_event(s, name);
	}
	return info.Env().Undefined();
}

// recordError(span, type, message)
static Napi::Value RecordError(const Napi::CallbackInfo &info)
{
	const atel_span *s = span_of(info[0]);
	if (s) {
		std::string type = str_of(info[1]), msg = str_of(info[2]);
		atel_span_record_error(s, info[1].IsString() ? type.c_str() : nullptr,
				       info[2].IsString() ? msg.c_str() : nullptr);
	}
	return info.Env().Undefined();
}

// propagate(span) -> { traceparent, tracestate } | undefined
static Napi::Value Propagate(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	const atel_span *s = span_of(info[0]);
	char tp[64], ts[520];
	if (!s || atel_propagate(s, tp, sizeof(tp)) < 0)
		return env.Undefined();
	Napi::Object o = Napi::Object::New(env);
	o.Set("traceparent", Napi::String::New(env, tp));
	int n = atel_propagate_tracestate(s, ts, sizeof(ts));
	if (n > 0)
		o.Set("tracestate", Napi::String::New(env, ts, static_cast<size_t>(n)));
	return o;
}

// extract(traceparent, tracestate | undefined, outCtxBuf) -> 0 or -EINVAL (tracestate errors are discarded, as W3C says)
static Napi::Value Extract(const Napi::CallbackInfo &info)
{
	Napi::Env env = info.Env();
	if (!info[2].IsTypedArray() || info[2].As<Napi::Uint8Array>().ByteLength() != sizeof(atel_span_context))
		return Napi::Number::New(env, -EINVAL);
	atel_span_context *ctx = reinterpret_cast<atel_span_context *>(info[2].As<Napi::Uint8Array>().Data());
	std::string tp = str_of(info[0]);
	int rc = atel_extract(tp.c_str(), ctx);
	if (rc == 0 && info[1].IsString()) {
		std::string ts = str_of(info[1]);
		(void)atel_extract_tracestate(ts.c_str(), ctx);
	}
	return Napi::Number::New(env, rc);
}

// contextTracestate(ctxBuf) -> string
static Napi::Value ContextTracestate(const Napi::CallbackInfo &info)
{
	if (!info[0].IsTypedArray() || info[0].As<Napi::Uint8Array>().ByteLength() != sizeof(atel_span_context))
		return Napi::String::New(info.Env(), "");
	return Napi::String::New(info.Env(), atel_context_tracestate(reinterpret_cast<const atel_span_context *>(
						     info[0].As<Napi::Uint8Array>().Data())));
}

static void raw(Napi::Env env, Napi::Object exports, const char *name, napi_callback cb)
{
	napi_value fn;
	if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, nullptr, &fn) == napi_ok)
		exports.Set(name, Napi::Value(env, fn));
}

static Napi::Object Register(Napi::Env env, Napi::Object exports)
{
	raw(env, exports, "add", metric_op<atel_add>);
	raw(env, exports, "set", metric_op<atel_set>);
	raw(env, exports, "observe", metric_op<atel_observe>);
	raw(env, exports, "trackAgentExecution", track_agent_execution);
	raw(env, exports, "trackToolUsage", track_tool_usage);
	raw(env, exports, "trackContextUsage", track_context_usage);
	raw(env, exports, "trackTask", track_task);
	raw(env, exports, "trackError", track_error);
	raw(env, exports, "trackQueueSize", track_queue_size);
	raw(env, exports, "startTrace", start_trace);
	raw(env, exports, "startSpan", start_span);
	raw(env, exports, "continueTrace", continue_trace);
	raw(env, exports, "endSpan", end_span);
	exports.Set("init", Napi::Function::New(env, Init, "init"));
	exports.Set("shutdown", Napi::Function::New(env, Shutdown, "shutdown"));
	exports.Set("attached", Napi::Function::New(env, Attached, "attached"));
	exports.Set("lastError", Napi::Function::New(env, LastError, "lastError"));
	exports.Set("stats", Napi::Function::New(env, Stats, "stats"));
	exports.Set("intern", Napi::Function::New(env, Intern, "intern"));
	exports.Set("series", Napi::Function::New(env, Series, "series"));
	exports.Set("setAttributes", Napi::Function::New(env, SetAttributes, "setAttributes"));
	exports.Set("addEvent", Napi::Function::New(env, AddEvent, "addEvent"));
	exports.Set("recordError", Napi::Function::New(env, RecordError, "recordError"));
	exports.Set("propagate", Napi::Function::New(env, Propagate, "propagate"));
	exports.Set("extract", Napi::Function::New(env, Extract, "extract"));
	exports.Set("contextTracestate", Napi::Function::New(env, ContextTracestate, "contextTracestate"));
	exports.Set("SPAN_SIZE", Napi::Number::New(env, sizeof(atel_span)));
	exports.Set("CONTEXT_SIZE", Napi::Number::New(env, sizeof(atel_span_context)));
	return exports;
}

} // namespace

NODE_API_MODULE(atel, Register)
