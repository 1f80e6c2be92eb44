/*
 * export.c: an identity's stored conversation as JSON or Markdown,
 * written item by item as storage sends them, so no export needs the
 * whole history in memory. Each JSON value is built by jansson.
 */

#include <sys/types.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

/*
 * Before the sandbox: jansson seeds its hash tables from /dev/urandom
 * the first time it builds an object, which the sandbox forbids.
 */
void
export_init(void)
{
	json_object_seed(arc4random() | 1);
}

/* A conversation's header in Markdown. */
static char *
export_md_conv(const char *identity, const struct db_conv *c)
{
	char	*out = NULL;

	if (asprintf(&out, "# bridged conversation %lld %s\n\n"
	    "identity: %s  \nmodel: %s  \nrole: %s%s%s",
	    (long long)c->id, c->name[0] != '\0' ? c->name : "-", identity,
	    c->model[0] != '\0' ? c->model : "-",
	    c->role[0] != '\0' ? c->role : "-",
	    c->system[0] != '\0' ? "\n\n## system\n\n" : "", c->system) == -1)
		return (NULL);
	return (out);
}

/*
 * The opening line(s); the caller sends each line returned. With a
 * conversation (EXPORT of one), its id, name, model, system prompt
 * and role come first, so that IMPORT can make it again.
 */
char *
export_begin(struct export_state *ex, const char *identity,
    const struct db_conv *c)
{
	json_t	*o;
	char	*s, *out = NULL;

	ex->section = 0;
	ex->count = 0;
	if (ex->markdown) {
		if (c != NULL)
			return (export_md_conv(identity, c));
		if (asprintf(&out, "# bridged conversation %s", identity) ==
		    -1)
			return (NULL);
		return (out);
	}
	if (c == NULL)
		o = json_pack("{s:s}", "identity", identity);
	else
		o = json_pack("{s:s,s:{s:I,s:s,s:s,s:s,s:s}}", "identity",
		    identity, "conversation", "id", (json_int_t)c->id, "name",
		    c->name, "model", c->model, "system", c->system, "role",
		    c->role);
	if (o == NULL)
		return (NULL);
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s == NULL)
		return (NULL);
	/* The object stays open for the lists that follow. */
	s[strlen(s) - 1] = '\0';
	if (asprintf(&out, "%s,\"messages\":[", s) == -1)
		out = NULL;
	free(s);
	return (out);
}

/* One stored message or summary. */
char *
export_item(struct export_state *ex, uint64_t rowid, uint64_t t,
    enum msg_role role, const char *text, size_t len)
{
	json_t		*o;
	char		 when[32], *s, *out = NULL;
	const char	*sep;
	int		 section = role == ROLE_SUMMARY ? 2 : 1;

	iso8601(t, when, sizeof(when));
	/* Summaries follow the messages: close one list, open the next. */
	if (section == 2 && ex->section != 2) {
		sep = ex->markdown ? "\n# Summaries\n" : "],\"summaries\":[";
		ex->count = 0;
	} else
		sep = ex->markdown || ex->count == 0 ? "" : ",";
	ex->section = section;
	ex->count++;
	if (ex->markdown) {
		if (asprintf(&out, "%s\n## %s %s\n\n%.*s", sep, when,
		    role_name(role), (int)len, text) == -1)
			return (NULL);
		return (out);
	}
	o = json_pack("{s:I,s:s,s:s,s:s%}", "id", (json_int_t)rowid,
	    "time", when, "role", role_name(role), "content", text, len);
	if (o == NULL)
		return (NULL);
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (s == NULL)
		return (NULL);
	if (asprintf(&out, "%s%s", sep, s) == -1)
		out = NULL;
	free(s);
	return (out);
}

/* The closing line. */
char *
export_end(struct export_state *ex)
{
	if (ex->markdown)
		return (strdup(""));
	if (ex->section == 2)
		return (strdup("]}"));
	return (strdup("],\"summaries\":[]}"));
}

/* "YYYY-MM-DDTHH:MM:SSZ" as EXPORT writes it: epoch s, or -1. */
static int64_t
import_time(const char *s)
{
	struct tm	 tm;
	const char	*end;
	time_t		 t;

	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) == NULL ||
	    *end != '\0' || (t = timegm(&tm)) == (time_t)-1 || t < 0)
		return (-1);
	return ((int64_t)t);
}

/* One message or summary of an import, and where it sorts. */
struct import_item {
	int64_t		 time;
	int		 role;
	size_t		 order;
	const char	*text;
	size_t		 len;
};

/* Oldest first; at one time, messages before summaries, then as given. */
static int
import_cmp(const void *a, const void *b)
{
	const struct import_item	*x = a, *y = b;

	if (x->time != y->time)
		return (x->time < y->time ? -1 : 1);
	if ((x->role == ROLE_SUMMARY) != (y->role == ROLE_SUMMARY))
		return (x->role == ROLE_SUMMARY ? 1 : -1);
	return (x->order < y->order ? -1 : x->order > y->order);
}

/* A string member, "" if absent; -1 if present and not a string. */
static int
import_str(json_t *o, const char *key, const char **out)
{
	json_t	*v;

	*out = "";
	if ((v = json_object_get(o, key)) == NULL || json_is_null(v))
		return (0);
	if (!json_is_string(v))
		return (-1);
	*out = json_string_value(v);
	return (0);
}

/* Check one list of an import into items; NULL, or what is wrong. */
static const char *
import_list(json_t *list, int summaries, struct import_item *v, size_t *n,
    char *why, size_t whylen)
{
	json_t		*o;
	const char	*role, *when, *text;
	size_t		 i;
	int64_t		 t;

	json_array_foreach(list, i, o) {
		if (!json_is_object(o) || import_str(o, "role", &role) == -1 ||
		    import_str(o, "time", &when) == -1 ||
		    !json_is_string(json_object_get(o, "content"))) {
			snprintf(why, whylen, "%s %zu is not an object with"
			    " string role, time and content", summaries ?
			    "summary" : "message", i + 1);
			return (why);
		}
		text = json_string_value(json_object_get(o, "content"));
		if ((t = import_time(when)) == -1) {
			snprintf(why, whylen, "%s %zu: time is not"
			    " YYYY-MM-DDTHH:MM:SSZ", summaries ? "summary" :
			    "message", i + 1);
			return (why);
		}
		v[*n].time = t;
		v[*n].order = *n;
		v[*n].text = text;
		v[*n].len = json_string_length(json_object_get(o, "content"));
		if (summaries && strcmp(role, "summary") == 0 &&
		    v[*n].len > 0)
			v[*n].role = ROLE_SUMMARY;
		else if (!summaries && strcmp(role, "user") == 0)
			v[*n].role = ROLE_USER;
		else if (!summaries && strcmp(role, "model") == 0)
			v[*n].role = ROLE_MODEL;
		else {
			snprintf(why, whylen, "%s %zu: role must be %s",
			    summaries ? "summary" : "message", i + 1,
			    summaries ? "summary, with text" : "user or model");
			return (why);
		}
		if (v[*n].len > DB_TEXT_MAX ||
		    memchr(text, '\0', v[*n].len) != NULL) {
			snprintf(why, whylen, "%s %zu is too long or holds a"
			    " NUL", summaries ? "summary" : "message", i + 1);
			return (why);
		}
		(*n)++;
	}
	return (NULL);
}

/*
 * An export (as EXPORT writes it) checked whole and turned into the
 * rest of an IMSG_WORKER_IMPORT after its request id: str name,
 * str model, str role, str system, u32 count, then per item (oldest
 * first) u32 role, u64 time, data text. NULL, or what is wrong.
 */
const char *
import_build(const char *text, size_t len, struct ibuf *b, char *why,
    size_t whylen)
{
	json_t			*root, *conv, *msgs, *sums;
	json_error_t		 err;
	struct import_item	*v = NULL;
	const char		*name = "", *model = "", *role = "", *sys = "";
	const char		*bad = NULL;
	size_t			 n = 0, total, i;

	if ((root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err)) ==
	    NULL) {
		snprintf(why, whylen, "not JSON: %.120s (line %d)", err.text,
		    err.line);
		return (why);
	}
	conv = json_object_get(root, "conversation");
	msgs = json_object_get(root, "messages");
	sums = json_object_get(root, "summaries");
	if (!json_is_object(root) || !json_is_array(msgs) ||
	    (sums != NULL && !json_is_array(sums)) ||
	    (conv != NULL && !json_is_object(conv))) {
		bad = "not an export: an object with a messages list is"
		    " expected";
		goto done;
	}
	if (conv != NULL && (import_str(conv, "name", &name) == -1 ||
	    import_str(conv, "model", &model) == -1 ||
	    import_str(conv, "role", &role) == -1 ||
	    import_str(conv, "system", &sys) == -1)) {
		bad = "conversation: name, model, role and system must be"
		    " strings";
		goto done;
	}
	if ((*name != '\0' && !conv_name_valid(name)) ||
	    strlen(model) >= MODEL_MAX_LEN || strlen(role) >= NAME_MAX_LEN ||
	    strlen(sys) >= CONV_SYSTEM_MAX) {
		bad = "conversation: a bad name, or a model, role or system"
		    " prompt too long";
		goto done;
	}
	total = json_array_size(msgs) + (sums != NULL ? json_array_size(sums) :
	    0);
	if (total > IMPORT_ITEMS_MAX) {
		snprintf(why, whylen, "more than %d messages and summaries",
		    IMPORT_ITEMS_MAX);
		bad = why;
		goto done;
	}
	if ((v = calloc(total + 1, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	if ((bad = import_list(msgs, 0, v, &n, why, whylen)) != NULL ||
	    (sums != NULL &&
	    (bad = import_list(sums, 1, v, &n, why, whylen)) != NULL))
		goto done;
	qsort(v, n, sizeof(*v), import_cmp);
	if (ibuf_add_str(b, name) == -1 || ibuf_add_str(b, model) == -1 ||
	    ibuf_add_str(b, role) == -1 || ibuf_add_str(b, sys) == -1 ||
	    ibuf_add_u32(b, (uint32_t)n) == -1)
		fatal("%s", __func__);
	for (i = 0; i < n; i++)
		if (ibuf_add_u32(b, (uint32_t)v[i].role) == -1 ||
		    ibuf_add_u64(b, (uint64_t)v[i].time) == -1 ||
		    ibuf_add_data(b, v[i].text, v[i].len) == -1)
			fatal("%s", __func__);
 done:
	free(v);
	json_decref(root);
	return (bad);
}
