/* SPDX-License-Identifier: MIT */
/*
 * util.h - the helpers room (shm/util/): small functions that know nothing
 * of records, rings or metrics and that every other room uses (shm, libatel,
 * the log, the index, the exporters, ateld, the CLI). One copy of each: use
 * these rather than a private version.
 *
 * No state, no locks: every function is thread-safe. Functions return 0 or
 * a negative errno unless said otherwise. The growable byte buffer and the
 * JSON string writer are in buf.h.
 *
 * libatel links this room statically; its version script (producer/libatel.map)
 * keeps these atel__ symbols out of the shared library's exports.
 */
#ifndef ATEL_UTIL_H
#define ATEL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- error strings ------------------------------------------------------- */

/* snprintf into a caller's error buffer; err NULL or errlen 0: nothing. */
void atel__seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- clocks -------------------------------------------------------------- */

/* CLOCK_REALTIME in ns (vDSO; no system call with the tsc clocksource):
 * timestamps that leave the process (records, files, exports). */
uint64_t atel__now_ns(void);

/* CLOCK_MONOTONIC in ns: intervals, timeouts, rate limits. */
uint64_t atel__mono_ns(void);

/* ---- files --------------------------------------------------------------- */

/* mkdir -p: creates dir and its missing parents with `mode` (existing ones
 * are left as they are). @return 0 or -errno (-ENAMETOOLONG past PATH_MAX). */
int atel__mkdir_p(const char *dir, unsigned mode);

/* fsync of a file or a directory by name (a directory: so that a rename or
 * a create in it is durable). */
int atel__fsync_path(const char *path);
/* The same, refusing anything but a directory (-ENOTDIR). */
int atel__fsync_dir(const char *dir);

/*
 * Reads the whole regular file `path` into *out (malloc'd, NUL-terminated;
 * *len excludes the NUL). Files larger than max bytes are refused.
 * @return 0, or -errno with err (may be NULL) saying what failed, in the form
 * "<path>: cannot open: <reason>", "<path>: not a regular file",
 * "<path>: larger than <max> bytes", "<path>: read error: <reason>",
 * "<path>: out of memory".
 */
int atel__read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);

/*
 * Writes `len` bytes to `path` atomically and durably: a hidden temporary
 * file beside it (".<name>.tmp", so directory scans never see a partial
 * file), fsync, rename over path, fsync of the directory. Readers see the old
 * or the new content, never a mix. mode: permission bits of a new file.
 * @return 0 or -errno (the temporary file is removed on failure).
 */
int atel__write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* The same without fsync: readers never see a partial file and a process
 * crash keeps the old or the new one, but after a power loss either may be
 * what is on disk (for state rewritten per request, where fsync costs too much). */
int atel__write_file_replace(const char *path, const void *data, size_t len, unsigned mode);

/* ---- file mode policy (hardening, issue 12) ------------------------------ */

/*
 * The process-wide mode of the files ateld writes (storage.file_mode; 0600
 * until set). atel__file_mode_set also sets the umask to match, so files
 * created by libraries (SQLite's database, -wal and -shm) get no more than
 * it either. Set once at start-up, before threads; reads are lock-free.
 */
void atel__file_mode_set(unsigned mode);
unsigned atel__file_mode(void);
/* The mode for directories: the file mode plus x where r is set (0600 -> 0700, 0640 -> 0750). */
unsigned atel__dir_mode(void);
/* fchmod(fd, atel__file_mode()), so neither the umask nor an older file widens it. @return 0 or -errno. */
int atel__fchmod_policy(int fd);
/* chmod of path to atel__file_mode() if it exists (ENOENT is 0). @return 0 or -errno. */
int atel__chmod_policy(const char *path);

/* ---- text ---------------------------------------------------------------- */

/*
 * Length of the valid UTF-8 sequence at s (1..4), reading at most n bytes;
 * 0 if invalid (overlong, surrogate, above U+10FFFF, truncated) or n is 0.
 * For a NUL-terminated string n may be SIZE_MAX: a NUL never passes as a
 * continuation byte, so nothing past it is read.
 */
size_t atel__utf8_len(const unsigned char *s, size_t n);

/* True if s[0..n) is entirely valid UTF-8. */
bool atel__utf8_valid(const unsigned char *s, size_t n);

/* Room for atel__fmt_double's text and its NUL. */
#define ATEL_FMT_DOUBLE_MAX 32

/*
 * The shortest decimal text that reads back (strtod) as the finite double v:
 * exactly what the first of "%.15g", "%.16g", "%.17g" that round-trips
 * prints ("0.1", "1e+15", "-0", "3.14159"), computed without printf or
 * strtod for integers below 1e15 and for short decimals, which are most
 * values in telemetry. NaN and infinities are the caller's business (each
 * format spells them differently). @return the text's length.
 */
size_t atel__fmt_double(char out[ATEL_FMT_DOUBLE_MAX], double v);

/* Lowercase hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void atel__hex(const void *bytes, size_t n, char *out);

/*
 * Parses 2n hex digits at s into n bytes. upper: also accept A-F (W3C
 * traceparent ids are lowercase only). @return 0, or -EINVAL (out partly
 * written) on any other character.
 */
int atel__unhex(const char *s, size_t n, uint8_t *out, bool upper);

#endif /* ATEL_UTIL_H */
