/*
 * bridgectl.h: the one header of bridgectl. It knows the daemon only
 * through lib/control.h.
 */

#ifndef BRIDGECTL_H
#define BRIDGECTL_H

#include "util.h"
#include "control.h"

enum action {
	NONE,
	SHOW_STATUS,
	SHOW_SESSIONS,
	SHOW_MODELS,
	KILL_SESSION,
	RELOAD,
	LOG_VERBOSE,
	LOG_BRIEF,
	MONITOR,
	EXPORT,
	PURGE
};

struct parse_result {
	enum action	 action;
	uint32_t	 session;
	const char	*identity;
	const char	*format;
	int		 force;
};

/* parser.c */
struct parse_result *parse(int, char *[]);

/* client.c */
int	 client_main(int, char *[]);

#endif /* BRIDGECTL_H */
