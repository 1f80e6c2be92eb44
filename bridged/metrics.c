/*
 * metrics.c: the parent's counters, gauges and histograms, written in
 * the Prometheus text exposition format for `bridgectl show metrics'.
 * Workers report each generation; the parent counts connections and
 * AUTH failures itself.
 */

#include <sys/types.h>

#include <stdio.h>
#include <string.h>

#include "bridged.h"

#define METRICS_SERIES	256		/* provider/model pairs kept */
#define METRICS_CODES	32		/* error codes, limits kept */
#define METRICS_LABEL	64

static const double buckets[] = {
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300
};
#define NBUCKETS	(sizeof(buckets) / sizeof(buckets[0]))

struct histogram {
	uint64_t	 count[NBUCKETS];	/* at most the bound */
	uint64_t	 n;
	double		 sum;
};

struct series {
	char		 provider[NAME_MAX_LEN];
	char		 model[MODEL_MAX_LEN];
	uint64_t	 n;
};

struct coded {
	char		 code[METRICS_LABEL];
	uint64_t	 n;
};

static struct {
	uint64_t	 accepted;
	uint64_t	 refused;
	uint64_t	 auth_failures;
	uint64_t	 tokens_in;
	uint64_t	 tokens_out;
	struct series	 prompts[METRICS_SERIES];
	size_t		 nprompts;
	struct coded	 errors[METRICS_CODES];
	size_t		 nerrors;
	struct coded	 limits[METRICS_CODES];
	size_t		 nlimits;
	struct histogram first;
	struct histogram answer;
} m;

/* A connection accepted (1) or turned away (0). */
void
metrics_connection(int accepted)
{
	if (accepted)
		m.accepted++;
	else
		m.refused++;
}

/* A token refused, or an AUTH refused to its address. */
void
metrics_auth_failure(void)
{
	m.auth_failures++;
}

/* One duration into a histogram of seconds. */
static void
observe(struct histogram *h, uint64_t ms)
{
	double	 s = (double)ms / 1000.0;
	size_t	 i;

	for (i = 0; i < NBUCKETS; i++)
		if (s <= buckets[i])
			h->count[i]++;
	h->n++;
	h->sum += s;
}

/* Count one more of code in a bounded table; the rest go to "other". */
static void
count_code(struct coded *v, size_t *n, const char *code)
{
	size_t	 i;

	for (i = 0; i < *n; i++)
		if (strcmp(v[i].code, code) == 0)
			break;
	if (i == *n) {
		/* The last place is "other"'s: once it is taken, all go there. */
		if (*n >= METRICS_CODES - 1 && strcmp(code, "other") != 0) {
			count_code(v, n, "other");
			return;
		}
		if (*n == METRICS_CODES)
			return;
		(void)strlcpy(v[i].code, code, sizeof(v[i].code));
		(*n)++;
	}
	v[i].n++;
}

/* A prompt went upstream to a model: counted by provider and model. */
static void
count_prompt(const char *model)
{
	const struct provider_conf	*pc;
	const char			*slash;
	char				 prov[NAME_MAX_LEN];
	size_t				 i;

	if ((slash = strchr(model, '/')) != NULL &&
	    (size_t)(slash - model) < sizeof(prov)) {
		memcpy(prov, model, slash - model);
		prov[slash - model] = '\0';
		model = slash + 1;
	} else if ((pc = TAILQ_FIRST(&parent_conf->providers)) != NULL)
		(void)strlcpy(prov, pc->name, sizeof(prov));
	else
		(void)strlcpy(prov, "-", sizeof(prov));
	for (i = 0; i < m.nprompts; i++)
		if (strcmp(m.prompts[i].provider, prov) == 0 &&
		    strcmp(m.prompts[i].model, model) == 0)
			break;
	if (i == m.nprompts) {
		if (i == METRICS_SERIES - 1)
			model = "other";
		else
			m.nprompts++;
		(void)strlcpy(m.prompts[i].provider, prov,
		    sizeof(m.prompts[i].provider));
		(void)strlcpy(m.prompts[i].model, model,
		    sizeof(m.prompts[i].model));
	}
	m.prompts[i].n++;
}

/* A label value we made sure of: a short word of [a-z0-9-]. */
static int
word_ok(const char *s)
{
	size_t	 len = strlen(s);

	return (len < METRICS_LABEL &&
	    strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == len);
}

/*
 * IMSG_WORKER_METRIC: str model, str code, str limit, u64 tokens in,
 * u64 tokens out, u64 ms to the first byte, u64 ms in all. -1 if it
 * is malformed.
 */
int
metrics_generation(struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*model, *code, *limit;
	uint64_t	 in, out, first, total;

	ir_init(&ir, imsg);
	model = ir_str(&ir);
	code = ir_str(&ir);
	limit = ir_str(&ir);
	in = ir_u64(&ir);
	out = ir_u64(&ir);
	first = ir_u64(&ir);
	total = ir_u64(&ir);
	/* Label values reach Prometheus: names only, nothing to escape. */
	if (ir_end(&ir) == -1 || strlen(model) >= MODEL_MAX_LEN ||
	    strspn(model, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV"
	    "WXYZ0123456789._-/:@") != strlen(model) || !word_ok(code) ||
	    !word_ok(limit))
		return (-1);
	if (*limit != '\0') {
		count_code(m.limits, &m.nlimits, limit);
		return (0);
	}
	if (strcmp(code, "no-model") == 0 || strcmp(code, "storage") == 0)
		return (0);		/* it never went upstream */
	count_prompt(model);
	m.tokens_in += in;
	m.tokens_out += out;
	if (*code != '\0' && strcmp(code, "cancelled") != 0)
		count_code(m.errors, &m.nerrors, code);
	if (first > 0)
		observe(&m.first, first);
	if (*code == '\0' && total > 0)
		observe(&m.answer, total);
	return (0);
}

/* HELP and TYPE of one metric. */
static void
head(void (*out)(void *, const char *), void *arg, const char *name,
    const char *type, const char *help)
{
	char	 line[256];

	(void)snprintf(line, sizeof(line), "# HELP %s %s", name, help);
	out(arg, line);
	(void)snprintf(line, sizeof(line), "# TYPE %s %s", name, type);
	out(arg, line);
}

/* One sample; label is "" or `name="value"'. */
static void
sample(void (*out)(void *, const char *), void *arg, const char *name,
    const char *label, uint64_t v)
{
	char	 line[512];

	(void)snprintf(line, sizeof(line), "%s%s%s%s %llu", name,
	    *label != '\0' ? "{" : "", label, *label != '\0' ? "}" : "",
	    (unsigned long long)v);
	out(arg, line);
}

/* The samples of a counter by code or limit. */
static void
coded_write(void (*out)(void *, const char *), void *arg, const char *name,
    const char *labelname, const struct coded *v, size_t n)
{
	char	 label[128];
	size_t	 i;

	for (i = 0; i < n; i++) {
		(void)snprintf(label, sizeof(label), "%s=\"%s\"", labelname,
		    v[i].code);
		sample(out, arg, name, label, v[i].n);
	}
}

/* The buckets, sum and count of a histogram. */
static void
histogram_write(void (*out)(void *, const char *), void *arg,
    const char *name, const struct histogram *h)
{
	char	 line[256];
	size_t	 i;

	for (i = 0; i < NBUCKETS; i++) {
		(void)snprintf(line, sizeof(line), "%s_bucket{le=\"%g\"} %llu",
		    name, buckets[i], (unsigned long long)h->count[i]);
		out(arg, line);
	}
	(void)snprintf(line, sizeof(line), "%s_bucket{le=\"+Inf\"} %llu",
	    name, (unsigned long long)h->n);
	out(arg, line);
	(void)snprintf(line, sizeof(line), "%s_sum %.3f", name, h->sum);
	out(arg, line);
	(void)snprintf(line, sizeof(line), "%s_count %llu", name,
	    (unsigned long long)h->n);
	out(arg, line);
}

/* Every metric, line by line, through out(arg, line). */
void
metrics_write(const struct metrics_gauges *g,
    void (*out)(void *, const char *), void *arg)
{
	char	 label[MODEL_MAX_LEN + NAME_MAX_LEN + 32];
	size_t	 i;

	head(out, arg, "bridged_connections_total", "counter",
	    "Client connections by outcome.");
	sample(out, arg, "bridged_connections_total", "outcome=\"accepted\"",
	    m.accepted);
	sample(out, arg, "bridged_connections_total", "outcome=\"refused\"",
	    m.refused);
	head(out, arg, "bridged_auth_failures_total", "counter",
	    "Wrong or refused AUTH tokens.");
	sample(out, arg, "bridged_auth_failures_total", "", m.auth_failures);
	head(out, arg, "bridged_prompts_total", "counter",
	    "Generations sent upstream, by provider and model.");
	for (i = 0; i < m.nprompts; i++) {
		(void)snprintf(label, sizeof(label),
		    "provider=\"%s\",model=\"%s\"", m.prompts[i].provider,
		    m.prompts[i].model);
		sample(out, arg, "bridged_prompts_total", label,
		    m.prompts[i].n);
	}
	head(out, arg, "bridged_tokens_total", "counter",
	    "Tokens the upstreams counted, prompt (in) and answer (out).");
	sample(out, arg, "bridged_tokens_total", "direction=\"in\"",
	    m.tokens_in);
	sample(out, arg, "bridged_tokens_total", "direction=\"out\"",
	    m.tokens_out);
	head(out, arg, "bridged_upstream_errors_total", "counter",
	    "Generations that failed upstream, by error code.");
	coded_write(out, arg, "bridged_upstream_errors_total", "code",
	    m.errors, m.nerrors);
	head(out, arg, "bridged_limits_hit_total", "counter",
	    "Prompts refused by a limit of bridged, by limit.");
	coded_write(out, arg, "bridged_limits_hit_total", "limit", m.limits,
	    m.nlimits);
	head(out, arg, "bridged_sessions", "gauge", "Client sessions now.");
	sample(out, arg, "bridged_sessions", "", g->sessions);
	head(out, arg, "bridged_idle_workers", "gauge",
	    "Workers ready for a client.");
	sample(out, arg, "bridged_idle_workers", "", g->idle_workers);
	head(out, arg, "bridged_jobs_queued", "gauge", "Jobs waiting.");
	sample(out, arg, "bridged_jobs_queued", "", g->jobs_queued);
	head(out, arg, "bridged_jobs_running", "gauge", "Jobs running.");
	sample(out, arg, "bridged_jobs_running", "", g->jobs_running);
	head(out, arg, "bridged_first_byte_seconds", "histogram",
	    "Time from sending a prompt upstream to the first answer byte.");
	histogram_write(out, arg, "bridged_first_byte_seconds", &m.first);
	head(out, arg, "bridged_answer_seconds", "histogram",
	    "Time from sending a prompt upstream to the end of its answer.");
	histogram_write(out, arg, "bridged_answer_seconds", &m.answer);
}
