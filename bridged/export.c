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

static void
iso_time(uint64_t t, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

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

	iso_time(t, when, sizeof(when));
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
