/* SPDX-License-Identifier: MIT */
/*
 * Hostile shared memory through the real drain (issue 12), one scenario per
 * ring of an 8-ring rig (drain_rig.h), driven step by step:
 *   ring 0  records with timestamps from 1970, 2554, an hour ahead and a day
 *           before this process started, a BEGIN whose generation is ahead
 *           of the directory: refused and
 *           counted (records_implausible), the good records kept
 *   ring 1  a loss counter jumping to 10^19: not believed
 *   ring 2  an unknown directory state: counted as damaged and quarantined
 *   ring 3  garbage owner pid on a live ring: not reclaimed
 *   ring 4  DRAINING set by another process: not reclaimed while the owner lives
 *   ring 5  claimed by a process that provably does not exist: reclaimed
 *   header  garbage magic: restored and counted
 * Exit 0 pass, 1 fail.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"
#include "drain_rig.h"

static int failures;

#define EXPECT(cond, ...)                                                                                  \
	do {                                                                                               \
		if (!(cond)) {                                                                             \
			failures++;                                                                        \
			fprintf(stderr, "%s:%d: FAIL %s: ", __FILE__, __LINE__, #cond);                    \
			fprintf(stderr, __VA_ARGS__);                                                      \
			fprintf(stderr, "\n");                                                             \
		}                                                                                          \
	} while (0)

static struct atel_owner self(void)
{
	struct atel_owner w = { getpid(), getpid(), atel__proc_start_time(getpid()) };

	return w;
}

static union atel_slot rec_begin(const struct rig *r, uint32_t ring, uint32_t gen, uint64_t ts)
{
	union atel_slot s;
	struct atel_owner w = self();

	(void)r;
	memset(&s, 0, sizeof(s));
	s.begin.h.type = ATEL_REC_BEGIN;
	s.begin.h.id = gen;
	s.begin.h.ts_ns = ts;
	s.begin.pid = w.pid;
	s.begin.tid = w.tid;
	s.begin.start = w.start;
	s.begin.ring = ring;
	return s;
}

static union atel_slot rec_str(uint32_t id, const char *str)
{
	union atel_slot s;

	memset(&s, 0, sizeof(s));
	s.strdef.h.type = ATEL_REC_STRDEF;
	s.strdef.h.id = id;
	s.strdef.h.ts_ns = atel__now_ns();
	s.strdef.len = (uint16_t)strlen(str);
	memcpy(s.strdef.bytes, str, strlen(str));
	return s;
}

static union atel_slot rec_series(void)
{
	union atel_slot s;

	memset(&s, 0, sizeof(s));
	s.seriesdef.h.type = ATEL_REC_SERIESDEF;
	s.seriesdef.h.id = 1;
	s.seriesdef.h.ts_ns = atel__now_ns();
	s.seriesdef.mtype = ATEL_MT_GAUGE;
	s.seriesdef.name_id = 1;
	return s;
}

static union atel_slot rec_sample(uint64_t ts)
{
	union atel_slot s;

	memset(&s, 0, sizeof(s));
	s.sample.h.type = ATEL_REC_SAMPLE;
	s.sample.h.flags = ATEL_RECF_SET;
	s.sample.h.id = 1;
	s.sample.h.ts_ns = ts;
	s.sample.value = 1;
	return s;
}

/* Claims ring `want` for `who` (others are claimed by nobody yet: the claim scans from the hint). */
static int claim(struct rig *r, uint32_t want, struct atel_owner who)
{
	int ring = atel__ring_claim(r->seg, &who, want);

	EXPECT(ring == (int)want, "claimed ring %d, wanted %u", ring, want);
	return ring;
}

static void steps(struct rig *r, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		EXPECT(atel__drain_step(r->dr, 2) == 0, "drain step failed");
}

int main(void)
{
	struct rig r;
	char err[512];
	struct atel_daemon_stats *st;
	uint64_t now = atel__now_ns();
	int rc;

	rc = rig_open(&r, 8, 64, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "rig: %s\n", err);
		rig_close(&r);
		return 1;
	}
	st = &r.d.stats;

	/* ring 0: timestamps and generations */
	{
		uint32_t gen;
		union atel_slot s[10];

		claim(&r, 0, self());
		gen = atel__seg_desc(r.seg, 0)->generation;
		s[0] = rec_begin(&r, 0, gen, now);
		s[1] = rec_str(1, "hostile_ts");
		s[2] = rec_series();
		s[3] = rec_sample(now);
		s[4] = rec_sample(1000000000ull);              /* 1970 */
		s[5] = rec_sample(18446744073709551000ull);    /* 2554 */
		s[6] = rec_sample(now + 3600ull * 1000000000ull);
		s[7] = rec_begin(&r, 0, gen + 5, now);         /* generation ahead of the directory */
		s[8] = rec_sample(now);
		s[9] = rec_sample(now - 86400ull * 1000000000ull); /* a day before this process started */
		rig_put(&r, 0, s, 10);
	}
	/* ring 1: a loss counter read once, then jumping to 10^19 */
	claim(&r, 1, self());
	/* ring 3 and 4: live rings (this process) */
	claim(&r, 3, self());
	claim(&r, 4, self());
	/* ring 5: an owner that cannot exist (pid above any pid_max) */
	{
		struct atel_owner ghost = { 0x3ffffff0, 0x3ffffff0, 12345 };

		claim(&r, 5, ghost);
	}
	/* ring 6: samples of a series never defined: refused, counted, and said
	 * once in ateld's log with the decoder's reason */
	claim(&r, 6, self());
	{
		uint32_t gen = atel__seg_desc(r.seg, 6)->generation;
		union atel_slot s[4];

		s[0] = rec_begin(&r, 6, gen, now);
		for (int i = 1; i < 4; i++) {
			s[i] = rec_sample(now);
			s[i].sample.h.id = 99;
		}
		rig_put(&r, 6, s, 4);
	}
	{
		/* ateld's log goes to stderr: catch it while these records are read */
		char path[] = "/tmp/atel-hostile-log-XXXXXX", buf[16384];
		int fd = mkstemp(path), saved = dup(2);
		ssize_t n;

		EXPECT(fd >= 0 && saved >= 0, "mkstemp/dup");
		int level = r.d.log_level;
		fflush(stderr);
		dup2(fd, 2);
		r.d.log_level = ATEL_LOG_WARN;
		steps(&r, 2); /* owner snapshots, first loss readings */
		r.d.log_level = level;
		fflush(stderr);
		dup2(saved, 2);
		close(saved);
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		close(fd);
		unlink(path);
		fputs(buf, stderr);
		{
			const char *a = strstr(buf, "ring 6 (pid ");
			EXPECT(a && strstr(a, "refused: sample's series id is not defined in this generation"),
			       "no log line for ring 6's invalid records:\n%s", buf);
			EXPECT(a && !strstr(a + 1, "ring 6 (pid "), "ring 6's refusals said more than once:\n%s", buf);
		}
	}

	EXPECT(rig_stat(&st->records_implausible) == 5, "records_implausible %llu, expected 5",
	       (unsigned long long)rig_stat(&st->records_implausible));
	EXPECT(rig_stat(&st->records_invalid) >= 4, "records_invalid %llu",
	       (unsigned long long)rig_stat(&st->records_invalid));
	EXPECT(rig_stat(&st->records_drained) >= 5, "records_drained %llu (begin, defs, two good samples)",
	       (unsigned long long)rig_stat(&st->records_drained));

	atomic_store(&atel__seg_desc(r.seg, 1)->drops_full, 10000000000000000000ull);
	atomic_store(&atel__seg_desc(r.seg, 2)->state, 7u);
	atel__seg_desc(r.seg, 3)->owner_pid = 0x3ffffff0;
	atomic_store(&atel__seg_desc(r.seg, 4)->state, (uint32_t)ATEL_RING_DRAINING);
	r.seg->hdr->magic ^= 0xffu;
	steps(&r, 5);

	EXPECT(rig_stat(&st->loss_readings_refused) >= 1, "loss_readings_refused %llu",
	       (unsigned long long)rig_stat(&st->loss_readings_refused));
	EXPECT(rig_stat(&st->drops[ATEL_LOSS_RING_FULL]) == 0, "drops ring_full %llu believed",
	       (unsigned long long)rig_stat(&st->drops[ATEL_LOSS_RING_FULL]));
	EXPECT(atomic_load(&atel__seg_desc(r.seg, 2)->state) == ATEL_RING_QUARANTINED, "ring 2 state %u",
	       atomic_load(&atel__seg_desc(r.seg, 2)->state));
	EXPECT(atomic_load(&atel__seg_desc(r.seg, 3)->state) == ATEL_RING_ACTIVE,
	       "ring 3 (live owner, garbage pid) state %u: taken from its live producer",
	       atomic_load(&atel__seg_desc(r.seg, 3)->state));
	EXPECT(atomic_load(&atel__seg_desc(r.seg, 4)->state) == ATEL_RING_DRAINING,
	       "ring 4 (foreign DRAINING, live owner) state %u: reclaimed under its live producer",
	       atomic_load(&atel__seg_desc(r.seg, 4)->state));
	EXPECT(atomic_load(&atel__seg_desc(r.seg, 5)->state) == ATEL_RING_FREE,
	       "ring 5 (owner provably gone) state %u: not reclaimed", atomic_load(&atel__seg_desc(r.seg, 5)->state));
	EXPECT(rig_stat(&st->producers_reclaimed) == 1, "producers_reclaimed %llu, expected 1 (ring 5)",
	       (unsigned long long)rig_stat(&st->producers_reclaimed));
	EXPECT(rig_stat(&st->rings_damaged) == 3, "rings_damaged %llu, expected 3 (rings 2, 3, 4)",
	       (unsigned long long)rig_stat(&st->rings_damaged));
	EXPECT(rig_stat(&st->segment_header_repairs) == 1, "segment_header_repairs %llu",
	       (unsigned long long)rig_stat(&st->segment_header_repairs));
	EXPECT(r.seg->hdr->magic == ATEL_SHM_MAGIC, "header magic not restored");
	EXPECT(rig_stat(&st->segment_header_ok) == 1, "segment_header_ok %llu",
	       (unsigned long long)rig_stat(&st->segment_header_ok));
	{
		char e2[256];

		EXPECT(atel__segment_check(r.seg->base, r.seg->size, e2, sizeof(e2)) == 0, "header check: %s", e2);
	}

	rig_close(&r);
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	else
		printf("drain_hostile: all scenarios held\n");
	return failures ? 1 : 0;
}
