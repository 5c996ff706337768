/* SPDX-License-Identifier: MIT */
/*
 * config.h - ateld configuration: embedded defaults, a JSON file (cJSON), and
 * environment overrides. Exporter sections keep docs/reference.md's keys.
 * Every key, its default and its environment variable are listed in README.md
 * ("Configuration"); keep the two in sync.
 */
#ifndef ATEL_CONFIG_H
#define ATEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "otlp_settings.h"

struct atel_config {
	char *data_dir;                  /* "./var"                      ATEL_DATA_DIR */
	uint32_t export_interval_ms;     /* 15000                        ATEL_EXPORT_INTERVAL_MS */
	char *log_level;                 /* "info" (error|warn|info|debug) ATEL_LOG_LEVEL */

	struct {
		char *name;              /* "atel"                       ATEL_SHM */
		uint32_t rings;          /* 64 */
		uint32_t ring_capacity;  /* 16384 slots (1 MiB per ring) */
		uint32_t mode;           /* 0600 (JSON: "0600" string or number) */
	} shm;

	struct {
		uint64_t rotate_bytes;       /* 64 MiB */
		uint32_t rotate_age_s;       /* 3600 */
		uint32_t fsync_interval_ms;  /* 1000 */
		int zstd_level;              /* 6 */
		int zstd_level_pressure;     /* -7: level while the rings fill faster than they drain */
		char *io;                    /* "auto" | "io_uring" | "pwritev"   ATEL_IO (ATEL_FORCE_PWRITEV=1 forces pwritev) */
		char *encoding;              /* "columns" | "records"             ATEL_ENCODING */
		uint32_t file_mode;          /* 0600: mode of every file ateld writes under data_dir (segments,
					      * telemetry.db and its -wal/-shm, exports, status file); group
					      * bits allowed (0640, 0660), other bits refused */
		/* the compactor (consumer/compactor.h; docs/segment-format.md section 9) */
		bool compact;                /* true                              ATEL_COMPACT (0|1|false|true) */
		int compact_level;           /* 9: zstd level of rewritten files (1..19) */
		uint32_t compact_frame_bytes; /* 4 MiB: decompressed bytes per rewritten frame (64 KiB..16 MiB) */
		uint32_t compact_interval_s; /* 30 */
	} storage;

	struct {
		uint32_t idle_sleep_max_us;  /* 1000 (bound 1..10000) */
		uint32_t batch_records;      /* 4096 per ring per pass */
	} drain;

	struct {
		uint32_t metrics_days;       /* 30 */
		uint32_t traces_days;        /* 7 */
		uint32_t aggregates_days;    /* 90 */
		uint32_t segments_days;      /* 30: whole segment files older than this are deleted */
		uint64_t max_bytes;          /* 0 = no limit: oldest segment files deleted past this many bytes of data_dir */
	} retention;

	struct {
		bool enabled;                /* true */
		uint32_t rollup_interval_s;  /* 60 */
		uint64_t reserve_bytes;      /* 64 MiB: the indexer pauses while the log's file system has less free */
		uint32_t reserve_percent;    /* 0: or this percent of that file system, whichever is larger */
		char *mode;                  /* "compact" | "full" (raw samples and spans in the index too)  ATEL_INDEX_MODE */
	} index;

	struct {
		bool enabled;                /* true */
		char *bind;                  /* "127.0.0.1" */
		uint32_t port;               /* 9464                     ATEL_PROMETHEUS_PORT */
		char *path;                  /* "/metrics" */
		char *bearer_token;          /* NULL: no auth */
		uint32_t series_limit;       /* 10000 per metric */
		uint32_t series_ttl_s;       /* 300: series without a sample this long leave /metrics; 0 never */
		/* the Prometheus query API (/api/v1/..., consumer/promql_api.h) */
		bool query_enabled;          /* true */
		uint32_t query_timeout_ms;   /* 10000 per request */
		uint32_t max_samples;        /* 50000000: samples in memory / loaded per query */
		uint32_t max_series;         /* 100000: series taken from the log per request */
		uint32_t query_resolution_ms; /* 1000: one sample per series per window */
		uint32_t query_carry_ms;     /* 15000: an idle series repeats its value this often (a scrape interval) */
	} prometheus;

	struct {
		bool enabled;                /* false */
		char *outputDir;             /* "<data_dir>/exports" */
		uint64_t rotateInterval;     /* 3600000 ms */
		uint32_t maxFiles;           /* 24 */
	} json;

	struct atel_otlp_config opentelemetry; /* the OTLP exporter's section (otlp_settings.h) */

	struct {                     /* Prometheus remote write (docs/remote-write.md); on when url is set */
		char *url;                   /* NULL */
		char *bearer_token;          /* NULL */
		char *job;                   /* "atel" */
		char *instance;              /* NULL: the host name */
		uint32_t batch;              /* 2000 samples per request */
		uint32_t interval_ms;        /* 1000 */
		uint32_t timeout_ms;         /* 10000 */
		uint32_t backoff_max_ms;     /* 30000 */
		/* extra request headers (values are secrets: never logged or shown); the
		 * ones remote write sets itself are refused (config.c RW_OWN_HEADERS) */
		struct atel_kv headers[ATEL_CFG_HEADERS_MAX];
		uint32_t nheaders;
	} remote_write;

	struct {                     /* the OTLP/HTTP receiver (exporters/otlp_receiver.h; issue 19) */
		bool enabled;                /* false */
		char *bind;                  /* "127.0.0.1" */
		uint32_t port;               /* 4318 (OTLP/HTTP's) */
		uint32_t max_body_bytes;     /* 4 MiB: request bodies, as sent and inflated (413 beyond) */
	} otlp_receiver;
};

/* Fills cfg with the embedded defaults. */
void atel__config_defaults(struct atel_config *cfg);

/*
 * Loads `path` (JSON) over the defaults, then applies environment overrides.
 * path NULL: defaults + environment only.
 * @return 0, or -EINVAL with err naming the file, the key path and the
 * expected form ("ateld.json: prometheus.port: expected an integer 1..65535, got \"abc\"").
 */
int atel__config_load(struct atel_config *cfg, const char *path, char *err, size_t errlen);

/* Parses JSON text (no environment); for tests and the fuzz target. */
int atel__config_parse(struct atel_config *cfg, const char *text, size_t len, const char *origin,
		       char *err, size_t errlen);

/*
 * The effective configuration as a JSON object, from the same key table the
 * parser uses (so every key is there), secrets left out: header values
 * (a count), the bearer token (shown as "auth": true|false), URL
 * credentials. What `ateld --check-config` prints and the status file's
 * "config" (docs/status-file.md). @return the object (cJSON_Delete it) or NULL.
 */
struct cJSON *atel__config_json(const struct atel_config *cfg);

/* Frees owned strings; NULL-safe. */
void atel__config_free(struct atel_config *cfg);

#endif /* ATEL_CONFIG_H */
