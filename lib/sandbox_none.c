/*
 * sandbox_none.c: systems without a sandbox this code knows. Refusing
 * is better than pretending: every role fails to start.
 */

#include "util.h"

/* No sandbox on this system: say so and fail. */
int
sandbox_enter(enum sandbox_role role, const struct sandbox_conf *sc)
{
	(void)sc;
	log_warnx("%s: no sandbox for role %d on this system", __func__,
	    role);
	return (-1);
}

/* Nor can a forked worker be narrowed. */
int
sandbox_narrow(enum sandbox_role role)
{
	log_warnx("%s: no sandbox for role %d on this system", __func__,
	    role);
	return (-1);
}

/* Nor prepared. */
int
sandbox_prepare(enum sandbox_role role)
{
	log_warnx("%s: no sandbox for role %d on this system", __func__,
	    role);
	return (-1);
}
