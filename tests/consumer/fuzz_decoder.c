/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target `decoder`: arbitrary slot sequences into atel__decode.
 * Input: a series of [control byte][slots...]; the control byte picks the
 * ring (low 3 bits) and how many slots to hand over (whole record, one slot,
 * or one extra). Contract checked: every result is 1, 0 or -EINVAL with an
 * INVALID event and a reason; strings of events are readable; definitions
 * re-emitted by atel__decoder_defs always decode without error into a fresh
 * decoder (the writer puts them into file headers).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void touch(const char *s)
{
	if (!s)
		abort();
	sink += strlen(s);
}

static int redecode(void *arg, const union atel_slot *rec, unsigned nslots)
{
	struct atel_event ev;
	uint32_t ring = *(uint32_t *)arg & 0xffff;
	struct atel_decoder *d = *(struct atel_decoder **)((uint32_t *)arg + 2);
	if (atel__decode(d, ring, 0, rec, nslots, &ev) < 0)
		abort(); /* a re-emitted definition must be valid */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct atel_decoder *d = atel__decoder_new();
	union atel_slot buf[80];
	size_t off = 0;
	uint64_t seq = 0;

	if (!d)
		return 0;
	while (off < size) {
		uint8_t ctl = data[off++];
		uint32_t ring = ctl & 7;
		unsigned want, n;
		size_t avail = (size - off + 63) / 64;
		struct atel_event ev;
		int rc;

		if (avail == 0)
			break;
		memset(buf, 0, sizeof(buf));
		memcpy(buf, data + off, size - off < 64 ? size - off : 64);
		want = 1u + buf[0].h.cont;
		switch (ctl >> 6) {
		case 1: want = 1; break;
		case 2: want = want + 1; break;
		default: break;
		}
		if (want > 80)
			want = 80;
		n = want < avail ? want : (unsigned)avail;
		memset(buf, 0, sizeof(buf));
		memcpy(buf, data + off, size - off < (size_t)n * 64 ? size - off : (size_t)n * 64);
		off += (size_t)n * 64;
		if ((ctl & 0x38) == 0x38) {
			atel__decoder_reset_ring(d, ring);
			continue;
		}
		rc = atel__decode(d, ring, seq, buf, n, &ev);
		seq += n;
		if (rc == -EINVAL) {
			if (ev.kind != ATEL_EV_INVALID)
				abort();
			touch(ev.invalid.why);
			continue;
		}
		if (rc == 0)
			continue;
		if (rc != 1 || ev.kind < ATEL_EV_BEGIN || ev.kind > ATEL_EV_LOSS_TOTAL ||
		    ev.kind == ATEL_EV_INVALID || ev.ring != ring)
			abort();
		touch(ev.comm);
		switch (ev.kind) {
		case ATEL_EV_SAMPLE:
			touch(ev.sample.series->name);
			for (uint32_t i = 0; i < ev.sample.series->nlabels; i++) {
				touch(ev.sample.series->keys[i]);
				touch(ev.sample.series->values[i]);
			}
			for (uint32_t i = 1; i < ev.sample.series->nbounds; i++)
				if (!(ev.sample.series->bounds[i] > ev.sample.series->bounds[i - 1]))
					abort();
			break;
		case ATEL_EV_SPAN_START: touch(ev.span_start.name); break;
		case ATEL_EV_SPAN_END:
			touch(ev.span_end.msg);
			if (strlen(ev.span_end.msg) != ev.span_end.msg_len)
				abort();
			break;
		case ATEL_EV_SPAN_ATTR: touch(ev.span_attr.key); touch(ev.span_attr.v.s); break;
		case ATEL_EV_SPAN_EVENT: touch(ev.span_event.name); break;
		case ATEL_EV_SPAN_ERROR: touch(ev.span_error.type); touch(ev.span_error.msg); break;
		case ATEL_EV_BEGIN: touch(ev.begin.comm); break;
		case ATEL_EV_HISTFOLD:
			touch(ev.histfold.series->name);
			for (uint32_t i = 0; i < ev.histfold.nbuckets; i++)
				sink += (size_t)ev.histfold.buckets[i];
			break;
		default: break;
		}
	}
	/* every ring's live definitions re-decode cleanly elsewhere */
	for (uint32_t ring = 0; ring < 8; ring++) {
		struct {
			uint32_t ring, pad;
			struct atel_decoder *d;
		} arg = { ring, 0, atel__decoder_new() };
		if (!arg.d)
			break;
		atel__decoder_defs(d, ring, redecode, &arg);
		atel__decoder_free(arg.d);
	}
	atel__decoder_free(d);
	return 0;
}
