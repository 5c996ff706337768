/* SPDX-License-Identifier: MIT */
/*
 * daemon.c - where ateld's configuration meets the rooms below it
 * (daemon.h): the shared state set up from cfg, and the exporters started
 * with the options cfg asks for. The rooms below never read struct
 * atel_config themselves.
 */
#include <stdio.h>

#include "daemon.h"
#include "exporters.h"
#include "promql_api.h"

int atel__daemon_init(struct atel_daemon *d, const struct atel_config *cfg)
{
	int rc = atel__state_init(d, cfg ? cfg->data_dir : NULL, cfg ? cfg->log_level : NULL);

	d->cfg = cfg;
	return rc;
}

void atel__daemon_fini(struct atel_daemon *d)
{
	atel__state_fini(d);
}

int atel__daemon_exporters_start(struct atel_exporters **out, struct atel_daemon *d, char *err, size_t errlen)
{
	const struct atel_config *cfg = d->cfg;
	struct atel_exporters_opts o = { 0 };
	struct atel_rw_opts rw = { 0 };
	char state[4200], json_dir[4200];

	snprintf(state, sizeof(state), "%s/state", cfg->data_dir ? cfg->data_dir : ".");
	o.segments_dir = d->segments_dir[0] ? d->segments_dir : NULL;
	o.state_dir = state;
	o.series_limit = cfg->prometheus.series_limit;
	o.series_ttl_s = cfg->prometheus.series_ttl_s;
	o.export_interval_ms = cfg->export_interval_ms;
	o.prometheus = cfg->prometheus.enabled;
	o.http.bind = cfg->prometheus.bind;
	o.http.port = (uint16_t)cfg->prometheus.port;
	o.http.metrics_path = cfg->prometheus.path;
	o.http.bearer_token = cfg->prometheus.bearer_token;
	o.http.conns_evicted = &d->stats.http_conns_evicted;             /* hardening (issue 12) */
	o.http.conns_refused_remote = &d->stats.http_conns_refused_remote;
	if (cfg->prometheus.query_enabled && o.segments_dir) {
		/* the query API reads the log itself; one ateld per process, so one static block */
		static struct atel_promql_api api;
		struct atel_promql_self *history = api.self; /* kept across a restart of the exporters */
		struct atel_logprom_cache *qcache = api.cache; /* likewise (it checks the directory) */
		api = (struct atel_promql_api){ .segments_dir = d->segments_dir,
						.timeout_ms = cfg->prometheus.query_timeout_ms,
						.max_samples = cfg->prometheus.max_samples,
						.max_series = cfg->prometheus.max_series,
						.resolution_ms = cfg->prometheus.query_resolution_ms,
						.carry_ms = cfg->prometheus.query_carry_ms,
						.self = history,
						.cache = qcache,
						.files_skipped = &d->stats.promql_files_skipped };
		o.http.api = atel__promql_api_handle;
		o.http.api_arg = &api;
		o.http.api_tick = atel__promql_api_tick; /* atel_* self-metrics history */
		o.http.api_tick_ms = 5000;
	}
	if (cfg->json.enabled) {
		if (cfg->json.outputDir && *cfg->json.outputDir)
			snprintf(json_dir, sizeof(json_dir), "%s", cfg->json.outputDir);
		else
			snprintf(json_dir, sizeof(json_dir), "%s/exports", cfg->data_dir ? cfg->data_dir : ".");
		o.json_dir = json_dir;
		o.json_rotate_ms = cfg->json.rotateInterval;
		o.json_max_files = cfg->json.maxFiles;
	}
	o.otlp = cfg->opentelemetry.enabled ? &cfg->opentelemetry : NULL;
	if (cfg->remote_write.url && *cfg->remote_write.url) {
		rw.url = cfg->remote_write.url;
		rw.bearer_token = cfg->remote_write.bearer_token;
		rw.headers = cfg->remote_write.headers;
		rw.nheaders = cfg->remote_write.nheaders;
		rw.job = cfg->remote_write.job;
		rw.instance = cfg->remote_write.instance;
		rw.batch = cfg->remote_write.batch;
		rw.interval_ms = cfg->remote_write.interval_ms;
		rw.timeout_ms = cfg->remote_write.timeout_ms;
		rw.backoff_max_ms = cfg->remote_write.backoff_max_ms;
		o.remote_write = &rw;
	}
	return atel__exporters_start_opts(out, d, &o, err, errlen);
}
