/* SPDX-License-Identifier: MIT */
/* Structural validation of records read from untrusted shared memory. */
#include <string.h>

#include "ring.h"

static const char *const type_names[] = {
	[0] = "unknown",
	[ATEL_REC_BEGIN] = "begin",
	[ATEL_REC_END] = "end",
	[ATEL_REC_STRDEF] = "strdef",
	[ATEL_REC_SERIESDEF] = "seriesdef",
	[ATEL_REC_BOUNDS] = "bounds",
	[ATEL_REC_SAMPLE] = "sample",
	[ATEL_REC_SPAN_START] = "span_start",
	[ATEL_REC_SPAN_END] = "span_end",
	[ATEL_REC_SPAN_ATTR] = "span_attr",
	[ATEL_REC_SPAN_EVENT] = "span_event",
	[ATEL_REC_SPAN_ERROR] = "span_error",
	[ATEL_REC_LOSS] = "loss",
	[ATEL_REC_HISTFOLD] = "histfold",
};

const char *atel__rec_type_name(unsigned type)
{
	if (type < sizeof(type_names) / sizeof(type_names[0]) && type_names[type])
		return type_names[type];
	return "unknown";
}

static const char *const cause_names[] = {
	[0] = "unknown",
	[ATEL_LOSS_RING_FULL] = "ring_full",
	[ATEL_LOSS_NO_RING] = "no_ring",
	[ATEL_LOSS_INVALID] = "invalid",
	[ATEL_LOSS_NO_DEF] = "no_def",
	[ATEL_LOSS_PRODUCER_DIED] = "producer_died",
	[ATEL_LOSS_NO_SIDECAR] = "no_sidecar",
	[ATEL_LOSS_REENTRANT] = "reentrant",
};

const char *atel__loss_cause_name(unsigned cause)
{
	if (cause < sizeof(cause_names) / sizeof(cause_names[0]) && cause_names[cause])
		return cause_names[cause];
	return "unknown";
}

const char *atel__metric_type_name(unsigned mtype)
{
	switch (mtype) {
	case ATEL_MT_COUNTER:
		return "counter";
	case ATEL_MT_GAUGE:
		return "gauge";
	case ATEL_MT_HISTOGRAM:
		return "histogram";
	default:
		return "unknown";
	}
}

unsigned atel__metric_type_of(const char *name)
{
	for (unsigned t = ATEL_MT_COUNTER; name && t <= ATEL_MT_HISTOGRAM; t++)
		if (!strcmp(name, atel__metric_type_name(t)))
			return t;
	return 0;
}

#define BAD(msg)                                                                                   \
	do {                                                                                       \
		if (why)                                                                           \
			*why = (msg);                                                              \
		return -EINVAL;                                                                    \
	} while (0)

int atel__rec_check(const union atel_slot *s, uint64_t avail, const char **why)
{
	const struct atel_rec_hdr *h = &s->h;
	unsigned want = 0;

	if (avail == 0)
		return -EAGAIN;
	if (h->reserved)
		BAD("reserved header byte is not zero");
	switch (h->type) {
	case ATEL_REC_BEGIN:
	case ATEL_REC_END:
	case ATEL_REC_SAMPLE:
	case ATEL_REC_SPAN_START:
		want = 0;
		break;
	case ATEL_REC_STRDEF:
		if (s->strdef.len == 0 || s->strdef.len > ATEL_STR_MAX)
			BAD("string definition length out of range 1..4096");
		if (h->id == 0 || h->id > ATEL_ID_MAX)
			BAD("string id out of range");
		want = atel__cont_for(s->strdef.len, ATEL_STRDEF_INLINE, ATEL_RECORD_SIZE);
		break;
	case ATEL_REC_SERIESDEF:
		if (s->seriesdef.nlabels > ATEL_LABELS_MAX)
			BAD("series definition has more than 16 labels");
		if (s->seriesdef.mtype < ATEL_MT_COUNTER || s->seriesdef.mtype > ATEL_MT_HISTOGRAM)
			BAD("series definition has an unknown metric type");
		if (h->id == 0 || h->id > ATEL_ID_MAX)
			BAD("series id out of range");
		want = atel__cont_for(s->seriesdef.nlabels, ATEL_SERIES_INLINE_PAIRS, ATEL_PAIRS_PER_CONT);
		break;
	case ATEL_REC_BOUNDS:
		if (s->bounds.count == 0 || s->bounds.count > ATEL_BOUNDS_MAX)
			BAD("bounds count out of range 1..64");
		if (h->id == 0 || h->id > ATEL_ID_MAX)
			BAD("bounds id out of range");
		want = atel__cont_for(s->bounds.count, ATEL_BOUNDS_INLINE, ATEL_BOUNDS_PER_CONT);
		break;
	case ATEL_REC_SPAN_END:
		if (s->span_end.msg_len > ATEL_STR_MAX)
			BAD("status message longer than 4096");
		if (s->span_end.status > 2)
			BAD("unknown span status");
		want = atel__cont_for(s->span_end.msg_len, ATEL_MSG_INLINE, ATEL_RECORD_SIZE);
		break;
	case ATEL_REC_SPAN_ATTR:
		if (s->span_attr.vtype < ATEL_VT_STR || s->span_attr.vtype > ATEL_VT_BOOL)
			BAD("unknown attribute value type");
		if (s->span_attr.vtype == ATEL_VT_STR) {
			if (s->span_attr.vlen > ATEL_STR_MAX)
				BAD("attribute string longer than 4096");
			want = atel__cont_for(s->span_attr.vlen, ATEL_ATTR_STR_INLINE, ATEL_RECORD_SIZE);
		}
		break;
	case ATEL_REC_SPAN_EVENT:
		if (s->span_event.nattrs > ATEL_EVENT_ATTRS_MAX)
			BAD("span event has more than 32 attributes");
		break;
	case ATEL_REC_SPAN_ERROR:
		if (s->span_error.msg_len > ATEL_STR_MAX)
			BAD("error message longer than 4096");
		want = atel__cont_for(s->span_error.msg_len, ATEL_MSG_INLINE, ATEL_RECORD_SIZE);
		break;
	case ATEL_REC_LOSS:
		if (h->id == 0 || h->id > ATEL_LOSS_CAUSE_MAX)
			BAD("unknown loss cause");
		break;
	case ATEL_REC_HISTFOLD:
		if (s->histfold.nbuckets < 2 || s->histfold.nbuckets > ATEL_BOUNDS_MAX + 1)
			BAD("folded histogram bucket count out of range 2..65");
		if (h->id == 0 || h->id > ATEL_ID_MAX)
			BAD("series id out of range");
		want = atel__cont_for(s->histfold.nbuckets, ATEL_HISTFOLD_INLINE, ATEL_HISTFOLD_PER_CONT);
		break;
	default:
		BAD("unknown record type");
	}
	if (h->cont != want)
		BAD("continuation count does not match the record's length");
	if ((uint64_t)want + 1 > avail)
		return -EAGAIN;
	return (int)want + 1;
}
