/*
 * limits.c: whether an identity may send one more request upstream,
 * from what it used and what it may use; and the UTC day that usage
 * is counted by. No I/O: storage gives the figures.
 */

#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

#define DAY_S		86400
#define MINUTE_MS	60000

/* The UTC day of an epoch time as YYYY-MM-DD. */
void
limits_day(int64_t t, char day[LIMITS_DAY_LEN])
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(day, LIMITS_DAY_LEN, "%Y-%m-%d", &tm) == 0)
		(void)strlcpy(day, "1970-01-01", LIMITS_DAY_LEN);
}

/*
 * NULL when a request may go now; else the name of the limit it is
 * past, with *allowed that limit and *retry the seconds until it may.
 */
const char *
limits_check(const struct limits *l, const struct limit_use *u,
    int64_t now_ms, uint64_t *allowed, uint64_t *retry)
{
	int64_t	 wait;

	if (l->requests > 0 && u->requests >= l->requests) {
		/* The oldest request of the minute leaves the window. */
		wait = u->oldest_ms + MINUTE_MS - now_ms;
		*allowed = l->requests;
		*retry = wait <= 0 ? 1 : (uint64_t)(wait + 999) / 1000;
		return ("requests-per-minute");
	}
	if (l->tokens > 0 && u->tokens >= l->tokens) {
		*allowed = l->tokens;
		*retry = DAY_S - (uint64_t)(now_ms / 1000) % DAY_S;
		return ("tokens-per-day");
	}
	return (NULL);
}

/* The refusal a client reads after `. ERR rate-limited'. */
void
limits_text(char *buf, size_t len, const char *which, uint64_t allowed,
    uint64_t retry)
{
	(void)snprintf(buf, len, "%s limit %llu reached, retry in %llu s",
	    which, (unsigned long long)allowed, (unsigned long long)retry);
}

/* A token's label or model list: letters, digits, ._-@ and extra. */
int
limits_word_valid(const char *s, size_t max, const char *extra)
{
	size_t	 i, len = strlen(s);

	if (len >= max)
		return (0);
	for (i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) &&
		    strchr("._-@", s[i]) == NULL &&
		    strchr(extra, s[i]) == NULL)
			return (0);
	return (1);
}

/* Is model in a token's comma-separated list ("" allows every one)? */
int
limits_model_ok(const char *list, const char *model)
{
	const char	*p, *e, *base;
	size_t		 n;

	if (list == NULL || *list == '\0')
		return (1);
	/* "provider/model" matches an entry of either form. */
	base = strchr(model, '/') != NULL ? strchr(model, '/') + 1 : model;
	for (p = list; *p != '\0'; p = *e == ',' ? e + 1 : e) {
		if ((e = strchr(p, ',')) == NULL)
			e = p + strlen(p);
		n = e - p;
		if ((strlen(model) == n && strncmp(model, p, n) == 0) ||
		    (strlen(base) == n && strncmp(base, p, n) == 0))
			return (1);
	}
	return (0);
}
