/* SPDX-License-Identifier: MIT */
/*
 * W3C Trace Context level 1/2: every traceparent and tracestate case of the
 * specification and of its conformance suite (w3c/trace-context test/test.py),
 * plus propagate/extract/continue round trips in-process.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "atel_test.h"
#include "atel.h"
#include "w3c.h"

#define TID "12345678901234567890123456789012"
#define PID "1234567890123456"

static int tp(const char *s)
{
	atel_span_context c;

	return atel_extract(s, &c);
}

static void test_traceparent_valid(void **state)
{
	atel_span_context c;
	char hex[33];

	(void)state;
	assert_int_equal(atel_extract("00-" TID "-" PID "-01", &c), 0);
	atel_trace_id_hex(&c, hex);
	assert_string_equal(hex, TID);
	atel_span_id_hex(&c, hex);
	assert_string_equal(hex, PID);
	assert_int_equal(c.trace_flags, 1);
	assert_int_equal(c.version, 0);
	assert_int_equal(c.tracestate, 0);
	/* flags preserved, including unknown bits */
	assert_int_equal(atel_extract("00-" TID "-" PID "-00", &c), 0);
	assert_int_equal(c.trace_flags, 0);
	assert_int_equal(atel_extract("00-" TID "-" PID "-ff", &c), 0);
	assert_int_equal(c.trace_flags, 0xff);
	assert_int_equal(atel_extract("00-" TID "-" PID "-03", &c), 0);
	assert_int_equal(c.trace_flags, 3);
	/* spec example */
	assert_int_equal(atel_extract("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &c), 0);
	assert_int_equal(c.trace_id[0], 0x4b);
	assert_int_equal(c.span_id[7], 0xb7);
	/* optional whitespace around the value (HTTP OWS) */
	assert_int_equal(tp(" 00-" TID "-" PID "-01"), 0);
	assert_int_equal(tp("\t00-" TID "-" PID "-01"), 0);
	assert_int_equal(tp("00-" TID "-" PID "-01 "), 0);
	assert_int_equal(tp("00-" TID "-" PID "-01\t"), 0);
	assert_int_equal(tp("\t 00-" TID "-" PID "-01 \t"), 0);
	/* future versions: parsed by their first four fields */
	assert_int_equal(atel_extract("cc-" TID "-" PID "-01", &c), 0);
	assert_int_equal(c.version, 0xcc);
	atel_trace_id_hex(&c, hex);
	assert_string_equal(hex, TID);
	assert_int_equal(tp("cc-" TID "-" PID "-01-what-the-future-will-be-like"), 0);
	assert_int_equal(tp("01-" TID "-" PID "-01-"), 0);
	assert_int_equal(tp("fe-" TID "-" PID "-09"), 0);
}

static void test_traceparent_invalid(void **state)
{
	static const char *const bad[] = {
		/* version 00 with trailing data */
		"00-" TID "-" PID "-01.",
		"00-" TID "-" PID "-01-what-the-future-will-be-like",
		"00-" TID "-" PID "-01-",
		/* future version followed by something other than '-' */
		"cc-" TID "-" PID "-01.what-the-future-will-be-like",
		/* version ff is invalid */
		"ff-" TID "-" PID "-01",
		/* version: illegal characters, too long, too short, uppercase */
		".0-" TID "-" PID "-01", "0.-" TID "-" PID "-01", "000-" TID "-" PID "-01",
		"0000-" TID "-" PID "-01", "0-" TID "-" PID "-01", "0A-" TID "-" PID "-01",
		/* trace id: all zero, illegal characters, too long, too short, uppercase */
		"00-00000000000000000000000000000000-" PID "-01",
		"00-.2345678901234567890123456789012-" PID "-01",
		"00-1234567890123456789012345678901.-" PID "-01",
		"00-123456789012345678901234567890123-" PID "-01",
		"00-1234567890123456789012345678901-" PID "-01",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01",
		/* parent id: all zero, illegal characters, too long, too short, uppercase */
		"00-" TID "-0000000000000000-01", "00-" TID "-.234567890123456-01",
		"00-" TID "-123456789012345.-01", "00-" TID "-12345678901234567-01",
		"00-" TID "-123456789012345-01", "00-" TID "-00F067AA0BA902B7-01",
		/* flags: illegal characters, too long, too short, uppercase */
		"00-" TID "-" PID "-.0", "00-" TID "-" PID "-0.", "00-" TID "-" PID "-001",
		"00-" TID "-" PID "-1", "00-" TID "-" PID "-0F",
		/* delimiters, empty, inner whitespace */
		"00_" TID "-" PID "-01", "00-" TID "_" PID "-01", "00-" TID "-" PID "_01",
		"", " ", "00", "00-" TID "-" PID "- 1", "00 -" TID "-" PID "-01",
		"00-" TID "-" PID,
		/* a future version shorter than 55 characters */
		"cc-" TID "-" PID "-1",
	};
	atel_span_context c;

	(void)state;
	memset(&c, 0x5a, sizeof(c));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (tp(bad[i]) != -EINVAL)
			fail_msg("accepted invalid traceparent '%s'", bad[i]);
	}
	assert_int_equal(atel_extract(NULL, &c), -EINVAL);
	assert_int_equal(atel_extract("00-" TID "-" PID "-01", NULL), -EINVAL);
	/* *out untouched on failure */
	assert_int_equal(atel_extract("ff-" TID "-" PID "-01", &c), -EINVAL);
	assert_int_equal(c.trace_flags, 0x5a);
}

static const char *ts(const char *in)
{
	static char out[600];
	int n = atel__tracestate_normalize(in, strlen(in), out, sizeof(out));

	return n < 0 ? NULL : out;
}

static void test_tracestate(void **state)
{
	char buf[20000], key[300], *p;
	atel_span_context c;

	(void)state;
	assert_string_equal(ts("foo=1"), "foo=1");
	assert_string_equal(ts("foo=1,bar=2"), "foo=1,bar=2");
	/* OWS around members and list; empty members ignored */
	assert_string_equal(ts("foo=1 \t , \t bar=2, \t baz=3"), "foo=1,bar=2,baz=3");
	assert_string_equal(ts("foo=1\t \t,\t \tbar=2,\t \tbaz=3"), "foo=1,bar=2,baz=3");
	assert_string_equal(ts(" foo=1"), "foo=1");
	assert_string_equal(ts("\tfoo=1"), "foo=1");
	assert_string_equal(ts("foo=1 "), "foo=1");
	assert_string_equal(ts("foo=1\t"), "foo=1");
	assert_string_equal(ts("\t foo=1 \t"), "foo=1");
	assert_string_equal(ts(",,foo=1,,  ,bar=2,"), "foo=1,bar=2");
	assert_string_equal(ts(""), "");
	/* several headers joined in order */
	assert_string_equal(ts("foo=1,bar=2,rojo=1,congo=2,baz=3"), "foo=1,bar=2,rojo=1,congo=2,baz=3");
	assert_string_equal(ts(",foo=1"), "foo=1");
	/* all allowed characters, with and without a vendor */
	{
		char k1[] = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
		char v[200];
		size_t n = 0;
		for (int ch = 0x20; ch <= 0x7e; ch++)
			if (ch != ',' && ch != '=')
				v[n++] = (char)ch;
		v[n] = '\0';
		snprintf(buf, sizeof(buf), "%s=%s", k1, v);
		assert_string_equal(ts(buf), buf);
		snprintf(buf, sizeof(buf), "%s@a-z0-9_-*/=%s", k1, v);
		assert_string_equal(ts(buf), buf);
	}
	/* invalid keys: space, uppercase, '.', a leading '@' (the whole list is discarded) */
	assert_null(ts("foo =1"));
	assert_null(ts("FOO=1"));
	assert_null(ts("foo.bar=1"));
	assert_null(ts("@foo=1,bar=2"));
	assert_null(ts("_foo=1"));
	/* Level 2 keys: '@' anywhere after the first character, a digit may start a key */
	assert_string_equal(ts("foo@=1,bar=2"), "foo@=1,bar=2");
	assert_string_equal(ts("foo@@bar=1,bar=2"), "foo@@bar=1,bar=2");
	assert_string_equal(ts("foo@bar@baz=1,bar=2"), "foo@bar@baz=1,bar=2");
	assert_string_equal(ts("1foo=1"), "1foo=1");
	assert_string_equal(ts("1foo@bar=1"), "1foo@bar=1");
	assert_string_equal(ts("foo@1bar=1"), "foo@1bar=1");
	/* invalid values */
	assert_null(ts("foo=bar=baz"));
	assert_null(ts("foo=,bar=3"));
	assert_null(ts("foo"));
	assert_null(ts("foo=1\x01"));
	assert_null(ts("foo=a\tb"));
	assert_non_null(ts("foo=a b"));
	/* a duplicated key drops the later member, the list stays */
	assert_string_equal(ts("foo=1,foo=1"), "foo=1");
	assert_string_equal(ts("foo=1,foo=2"), "foo=1");
	assert_string_equal(ts("foo=1,bar=2,foo=3,baz=4"), "foo=1,bar=2,baz=4");
	/* key length limits: 256 characters in all, '@' included */
	memset(key, 'z', 256);
	strcpy(key + 256, "=1");
	assert_non_null(ts(key));
	memset(key, 'z', 257);
	strcpy(key + 257, "=1");
	assert_null(ts(key));
	memset(key, 't', 241);
	key[241] = '@';
	memset(key + 242, 'v', 14);
	strcpy(key + 256, "=1");
	assert_non_null(ts(key));
	memset(key, 't', 242);
	strcpy(key + 242, "@v=1");             /* 244 characters: fine under Level 2 */
	assert_non_null(ts(key));
	strcpy(key, "t@vvvvvvvvvvvvvvv=1");    /* any length after '@' */
	assert_non_null(ts(key));
	memset(key, 't', 250);
	memset(key + 250, '@', 7);             /* 257 characters */
	strcpy(key + 257, "=1");
	assert_null(ts(key));
	/* value length: 256 ok, 257 not */
	strcpy(buf, "k=");
	memset(buf + 2, 'x', 256);
	buf[258] = '\0';
	assert_non_null(ts(buf));
	strcpy(buf + 258, "x");
	assert_null(ts(buf));
	/* 32 members fine, 33 invalid */
	p = buf;
	for (int i = 1; i <= 32; i++)
		p += sprintf(p, "%sbar%02d=%02d", i > 1 ? "," : "", i, i);
	assert_non_null(ts(buf));
	assert_int_equal(strlen(ts(buf)), strlen(buf));
	sprintf(p, ",bar33=33");
	assert_null(ts(buf));
	/* longer than 512: members over 128 characters are dropped first, then from the end */
	{
		char big[200];
		memset(big, 'b', sizeof(big));
		big[0] = 'b', big[1] = '=';
		big[150] = '\0';
		p = buf;
		p += sprintf(p, "a=1,%s", big);
		for (int i = 0; i < 30; i++)
			p += sprintf(p, ",k%02d=vvvvvvvvvv", i);
		assert_non_null(ts(buf));
		assert_true(strlen(ts(buf)) <= 512);
		assert_null(strstr(ts(buf), "bbbb"));
		assert_non_null(strstr(ts(buf), "a=1,k00=vvvvvvvvvv"));
	}
	/* into a context */
	assert_int_equal(atel_extract("00-" TID "-" PID "-01", &c), 0);
	assert_int_equal(atel_extract_tracestate("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE", &c), 0);
	assert_string_equal(atel_context_tracestate(&c), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
	assert_int_equal(atel_extract_tracestate("foo=1,foo=2", &c), 0); /* Level 2: the later foo is dropped */
	assert_string_equal(atel_context_tracestate(&c), "foo=1");
	assert_int_equal(atel_extract_tracestate("@foo=1", &c), -EINVAL);
	assert_int_equal(c.tracestate, 0);
	assert_string_equal(atel_context_tracestate(&c), "");
}

static void test_roundtrip(void **state)
{
	atel_span_context c, c2;
	atel_span root, child, remote;
	char hdr[64], tsb[600];

	(void)state;
	/* no sidecar needed: ids and propagation work without one */
	root = atel_trace_start("coordination", ATEL_SPAN_SERVER);
	assert_int_equal(atel_propagate(&root, hdr, sizeof(hdr)), 55);
	assert_int_equal(atel_propagate(&root, hdr, 55), -ENOSPC);
	assert_int_equal(atel_propagate(&(atel_span){ 0 }, hdr, sizeof(hdr)), -EINVAL);
	assert_int_equal(atel_extract(hdr, &c), 0);
	assert_memory_equal(c.trace_id, root.ctx.trace_id, 16);
	assert_memory_equal(c.span_id, root.ctx.span_id, 8);
	assert_int_equal(c.trace_flags, ATEL_TRACE_FLAG_SAMPLED | ATEL_TRACE_FLAG_RANDOM);
	assert_memory_equal(hdr, "00-", 3);
	for (int i = 0; i < 55; i++)
		assert_true(hdr[i] == '-' || (hdr[i] >= '0' && hdr[i] <= '9') || (hdr[i] >= 'a' && hdr[i] <= 'f'));
	/* continue: same trace, parent = the remote span, new span id; flags and tracestate kept */
	assert_int_equal(atel_extract_tracestate("vendor=abc", &c), 0);
	remote = atel_trace_continue(&c, "sub-agent-work", ATEL_SPAN_INTERNAL);
	assert_memory_equal(remote.ctx.trace_id, root.ctx.trace_id, 16);
	assert_memory_equal(remote.parent_id, root.ctx.span_id, 8);
	assert_memory_not_equal(remote.ctx.span_id, root.ctx.span_id, 8);
	assert_int_equal(atel_propagate_tracestate(&remote, tsb, sizeof(tsb)), 10);
	assert_string_equal(tsb, "vendor=abc");
	child = atel_span_start(&remote, "grandchild", ATEL_SPAN_CLIENT);
	assert_int_equal(atel_propagate_tracestate(&child, tsb, sizeof(tsb)), 10);
	/* unknown flags are not propagated, sampled is */
	assert_int_equal(atel_extract("00-" TID "-" PID "-ff", &c2), 0);
	remote = atel_trace_continue(&c2, "x", ATEL_SPAN_SERVER);
	assert_int_equal(remote.ctx.trace_flags, 3);
	assert_int_equal(atel_extract("00-" TID "-" PID "-00", &c2), 0);
	remote = atel_trace_continue(&c2, "x", ATEL_SPAN_SERVER);
	assert_int_equal(remote.ctx.trace_flags, 0);
	assert_int_equal(atel_propagate(&remote, hdr, sizeof(hdr)), 55);
	assert_string_equal(hdr + 52, "-00");
	/* an invalid context restarts the trace */
	memset(&c2, 0, sizeof(c2));
	remote = atel_trace_continue(&c2, "x", ATEL_SPAN_SERVER);
	assert_int_not_equal(remote.state, 0); /* a span (dropped whole: no sidecar here) */
	assert_memory_not_equal(remote.ctx.trace_id, c2.trace_id, 16);
	remote = atel_trace_continue(NULL, "x", ATEL_SPAN_SERVER);
	assert_int_not_equal(remote.state, 0);
	/* ids are never all-zero and do not repeat over many spans */
	for (int i = 0; i < 10000; i++) {
		atel_span s = atel_trace_start("ids", ATEL_SPAN_INTERNAL);
		static const uint8_t z[16];
		assert_memory_not_equal(s.ctx.trace_id, z, 16);
		assert_memory_not_equal(s.ctx.span_id, z, 8);
		assert_memory_not_equal(s.ctx.span_id, root.ctx.span_id, 8);
	}
	/* environment helpers: TRACE_CONTEXT is an alias */
	unsetenv("TRACEPARENT");
	unsetenv("TRACESTATE");
	unsetenv("TRACE_CONTEXT");
	assert_int_equal(atel_env_extract(&c2), -ENOENT);
	setenv("TRACE_CONTEXT", hdr, 1);
	assert_int_equal(atel_env_extract(&c2), 0);
	assert_int_equal(c2.trace_flags, 0);
	unsetenv("TRACE_CONTEXT");
	assert_int_equal(atel_env_inject(&root), 0);
	assert_int_equal(atel_env_extract(&c2), 0);
	assert_memory_equal(c2.trace_id, root.ctx.trace_id, 16);
	assert_null(getenv("TRACESTATE"));
	setenv("TRACEPARENT", "garbage", 1);
	assert_int_equal(atel_env_extract(&c2), -EINVAL);
	unsetenv("TRACEPARENT");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_traceparent_valid),
		cmocka_unit_test(test_traceparent_invalid),
		cmocka_unit_test(test_tracestate),
		cmocka_unit_test(test_roundtrip),
	};

	/* no segment: everything here must work without a sidecar */
	setenv("ATEL_SHM", "/nonexistent-dir/atel-w3c-test", 1);
	return ATEL_TEST_RUN(tests, NULL, NULL);
}
