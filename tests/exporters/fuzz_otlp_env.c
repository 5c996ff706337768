/* SPDX-License-Identifier: MIT */
/*
 * fuzz_otlp_env: the OTLP exporter's parsers of untrusted text.
 * First byte selects: 0 OTEL_EXPORTER_OTLP_HEADERS, 1 OTEL_RESOURCE_ATTRIBUTES,
 * 2 Retry-After, 3 a protobuf response body, 4 a JSON response body,
 * 5 the whole settings resolution with the rest split on '\n' into the
 * OTEL_EXPORTER_OTLP_* variables. Checks invariants beyond "no crash".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp_export.h"

static int check_kv(void *arg, const char *key, const char *value)
{
	(void)arg;
	if (!*key || strpbrk(key, "\r\n") || strpbrk(value, "\r\n"))
		abort();
	return 0;
}

static const char *g_vals[9];
static const char *const g_names[9] = {
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
	"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
};

static const char *env(const char *name)
{
	for (int i = 0; i < 9; i++)
		if (!strcmp(name, g_names[i]))
			return g_vals[i];
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256], msg[128];
	char *s;
	int64_t rej;
	uint32_t ms;

	if (size < 1 || size > 65536)
		return 0;
	s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	err[0] = '\0';
	switch (data[0] % 6) {
	case 0:
	case 1:
		if (atel__otlp_parse_kv_list(s, strlen(s), data[0] % 6 == 0, "X", check_kv, NULL, err, sizeof(err)) &&
		    !err[0])
			abort(); /* every failure explains itself */
		break;
	case 2:
		if (!atel__otlp_parse_retry_after(s, strlen(s), 1700000000, &ms) && ms > 3600000)
			abort();
		break;
	case 3:
	case 4:
		if (!atel__otlp_parse_response(data + 1, size - 1, data[0] % 6 == 4, &rej, msg, sizeof(msg)) && rej < 0)
			abort();
		if (strlen(msg) >= sizeof(msg))
			abort();
		break;
	default: {
		struct atel_otlp_settings st;
		char *p = s;

		for (int i = 0; i < 9; i++) {
			g_vals[i] = p;
			p = strchr(p, '\n');
			if (!p) {
				for (int k = i + 1; k < 9; k++)
					g_vals[k] = NULL;
				break;
			}
			*p++ = '\0';
		}
		if (!atel__otlp_settings_resolve(&st, NULL, env, err, sizeof(err))) {
			if (strncmp(st.traces.url, "http", 4) || strncmp(st.metrics.url, "http", 4) || !st.service_name)
				abort();
			atel__otlp_settings_free(&st);
		} else if (!err[0]) {
			abort();
		}
		break;
	}
	}
	free(s);
	return 0;
}
