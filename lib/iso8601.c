/*
 * iso8601.c: times as bridged shows them everywhere, in tables, on
 * the monitor and in exports: ISO 8601 in UTC, to the second.
 */

#include <sys/types.h>

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* An epoch time as 2026-12-05T17:30:00Z, or "unknown" if it is none. */
void
iso8601(uint64_t t, char *buf, size_t len)
{
	struct tm	 tm;
	time_t		 tt = (time_t)t;

	if (t > INT64_MAX || gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		strlcpy(buf, "unknown", len);
}
