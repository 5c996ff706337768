/* SPDX-License-Identifier: MIT */
/*
 * sigbus.h - surviving a truncated shared-memory segment.
 *
 * A process that maps the segment gets SIGBUS when it touches a page that
 * another process cut off with ftruncate(). "Telemetry never breaks the
 * agent" (docs/design.md): libatel and ateld register their mapping here; a
 * SIGBUS whose address lies inside a registered mapping is absorbed: the
 * faulting page is replaced by a private zero page (writes there go
 * nowhere), the mapping is marked truncated and counted, and the faulting
 * instruction resumes. Each side then notices the mark (libatel: stops using
 * the segment and re-attaches; ateld: stops reading it, logs, counts and
 * runs degraded until restarted, consumer/drain.c "truncated segment"). A SIGBUS anywhere else goes to the handler that was installed
 * before ours (or the default action), exactly as if we were not there.
 *
 * The handler is installed on the first registration. A program that installs
 * its own SIGBUS handler later replaces ours: it then receives the signal for
 * our mapping too (documented in atel.h).
 *
 * Registration takes a lock and is not async-signal-safe; the handler is.
 */
#ifndef ATEL_SIGBUS_H
#define ATEL_SIGBUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Registers [base, base + len). @return 0, or -ENOSPC (32 mappings at most) / -errno from sigaction. */
int atel__sigbus_guard(void *base, size_t len);

/* Forgets the mapping at base (call before munmap). */
void atel__sigbus_unguard(void *base);

/* Has a SIGBUS been absorbed inside the mapping at base since it was registered? */
bool atel__sigbus_truncated(const void *base);

/* SIGBUS faults absorbed by this process (all mappings, ever). */
uint64_t atel__sigbus_absorbed(void);

#endif /* ATEL_SIGBUS_H */
