/*
 * proc.c: names for processes, roles and message types, so that every
 * log line and trace says what it is about.
 */

#include <sys/types.h>

#include <string.h>
#include <strings.h>

#include "bridged.h"

static const char *proc_names[PROC_MAX] = {
	"parent", "control", "storage", "provider", "worker", "template"
};

static const char *role_names[ROLE_MAX] = {
	"user", "model", "summary"
};

static const char *job_state_names[JOB_STATE_MAX] = {
	"queued", "running", "done", "failed", "cancelled"
};

#define N(x)	[x] = #x
static const char *imsg_names[IMSG_MAX] = {
	N(IMSG_NONE),
	N(IMSG_CFG_GLOBAL), N(IMSG_CFG_PROVIDER), N(IMSG_CFG_ROLE),
	N(IMSG_CFG_TLS),
	N(IMSG_CFG_DONE), N(IMSG_PARENT_VERBOSE),
	N(IMSG_PARENT_CHANNEL), N(IMSG_PARENT_SESSION), N(IMSG_PARENT_CLIENT),
	N(IMSG_PARENT_STORAGE), N(IMSG_PARENT_PROVIDER), N(IMSG_PARENT_KILL),
	N(IMSG_PARENT_AUTH),
	N(IMSG_PARENT_CONTROL),
	N(IMSG_PARENT_FORK), N(IMSG_TEMPLATE_FORKED), N(IMSG_TEMPLATE_ENDED),
	N(IMSG_CHILD_LOG), N(IMSG_CHILD_READY),
	N(IMSG_WORKER_AUTH), N(IMSG_WORKER_IDENTITY),
	N(IMSG_WORKER_STATE), N(IMSG_WORKER_EVENT),
	N(IMSG_WORKER_MODELS), N(IMSG_WORKER_GEN_BEGIN),
	N(IMSG_WORKER_GEN_PART), N(IMSG_WORKER_GEN_END), N(IMSG_WORKER_CANCEL),
	N(IMSG_PROVIDER_MODEL), N(IMSG_PROVIDER_MODELS_END),
	N(IMSG_PROVIDER_CHUNK), N(IMSG_PROVIDER_DONE), N(IMSG_PROVIDER_ERROR),
	N(IMSG_WORKER_STORE), N(IMSG_WORKER_SUMMARY), N(IMSG_WORKER_HISTORY),
	N(IMSG_WORKER_CONTEXT), N(IMSG_WORKER_COUNT), N(IMSG_WORKER_CONV_NEW),
	N(IMSG_WORKER_CONV_LIST), N(IMSG_WORKER_CONV_SET),
	N(IMSG_WORKER_CONV_DELETE), N(IMSG_WORKER_SEARCH),
	N(IMSG_WORKER_EXPORT), N(IMSG_WORKER_IMPORT),
	N(IMSG_STORAGE_STORED), N(IMSG_STORAGE_ITEM), N(IMSG_STORAGE_END),
	N(IMSG_STORAGE_ERROR), N(IMSG_STORAGE_CONV), N(IMSG_STORAGE_MATCH),
	N(IMSG_STORAGE_DELETED), N(IMSG_STORAGE_REFUSED),
	N(IMSG_CTL_STATUS), N(IMSG_CTL_SESSIONS), N(IMSG_CTL_KILL),
	N(IMSG_CTL_RELOAD), N(IMSG_CTL_LOG), N(IMSG_PARENT_MONITOR),
	N(IMSG_PARENT_DATA), N(IMSG_PARENT_END), N(IMSG_PARENT_FAIL),
	N(IMSG_CTL_EXPORT), N(IMSG_CTL_PURGE), N(IMSG_STORAGE_IDENTITY),
	N(IMSG_PARENT_JOBS),
	N(IMSG_WORKER_SUBMIT), N(IMSG_WORKER_JOBS), N(IMSG_WORKER_RESULT),
	N(IMSG_WORKER_UNFOLLOW), N(IMSG_WORKER_KILL),
	N(IMSG_STORAGE_JOB_LINE), N(IMSG_STORAGE_JOB_HEAD),
	N(IMSG_STORAGE_JOB_CHUNK), N(IMSG_STORAGE_JOB_END),
	N(IMSG_STORAGE_JOB_QUEUED), N(IMSG_STORAGE_JOB_SPEC),
	N(IMSG_STORAGE_JOB_PART), N(IMSG_STORAGE_JOB_READY),
	N(IMSG_STORAGE_JOB_GONE), N(IMSG_STORAGE_EVENT),
	N(IMSG_PROVIDER_JOB_LIST), N(IMSG_PROVIDER_JOB_START),
	N(IMSG_PROVIDER_JOB_CHUNK), N(IMSG_PROVIDER_JOB_TURN),
	N(IMSG_PROVIDER_JOB_DONE), N(IMSG_PROVIDER_JOB_FAIL),
	N(IMSG_CTL_JOBS), N(IMSG_CTL_JOBKILL),
	N(IMSG_PARENT_TOKEN), N(IMSG_STORAGE_TOKEN), N(IMSG_PARENT_EVENT),
	N(IMSG_WORKER_ADMIT), N(IMSG_STORAGE_ADMIT), N(IMSG_WORKER_USAGE),
	N(IMSG_WORKER_USAGE_GET), N(IMSG_STORAGE_LINE), N(IMSG_WORKER_METRIC),
	N(IMSG_CTL_METRICS), N(IMSG_CTL_END_SESSIONS), N(IMSG_CTL_TOKEN_ADD),
	N(IMSG_CTL_TOKEN_LIST), N(IMSG_CTL_TOKEN_REVOKE), N(IMSG_CTL_USAGE),
	N(IMSG_CTL_IDENTITIES), N(IMSG_CTL_EVENTS), N(IMSG_CTL_MONITORS),
	N(IMSG_PARENT_CONTROL_SOCKET), N(IMSG_CTL_MODELS),
	N(IMSG_STORAGE_REJECT), N(IMSG_PROVIDER_REJECT),
	N(IMSG_CFG_DB_PASSWORD), N(IMSG_STORAGE_END_SESSIONS),
	N(IMSG_PARENT_MONITORED),
};
#undef N

/* The name of a message type, for logs. */
const char *
imsg_type_name(uint32_t type)
{
	if (type >= IMSG_MAX || imsg_names[type] == NULL)
		return ("IMSG_UNKNOWN");
	return (imsg_names[type]);
}

/* The name of a process role, as its title shows it. */
const char *
proc_name(enum proc_id id)
{
	if ((unsigned)id >= PROC_MAX)
		return ("unknown");
	return (proc_names[id]);
}

/* The name of a message role, or "unknown". */
const char *
role_name(enum msg_role role)
{
	if ((unsigned)role >= ROLE_MAX)
		return ("unknown");
	return (role_names[role]);
}

/* The word JOBS and the database use for a job's state. */
const char *
job_state_name(int state)
{
	if (state < 0 || state >= JOB_STATE_MAX)
		return ("unknown");
	return (job_state_names[state]);
}

/* The message role of a name, in any case, or -1. */
int
role_from_name(const char *name)
{
	int	 i;

	for (i = 0; i < ROLE_MAX; i++)
		if (strcasecmp(name, role_names[i]) == 0)
			return (i);
	return (-1);
}

/* The process role of a -P name, or -1. */
int
proc_from_name(const char *name)
{
	int	 i;

	for (i = 0; i < PROC_MAX; i++)
		if (strcmp(name, proc_names[i]) == 0)
			return (i);
	return (-1);
}

/*
 * Whether the event log keeps a session's event (by its first word):
 * its connection and its authentication. The rest (prompts, answers,
 * models, conversations) is for monitors alone.
 */
int
event_stored(const char *text)
{
	static const char	*stored[] = { "connect", "disconnect", "auth" };
	size_t			 i, n = strcspn(text, " ");

	for (i = 0; i < sizeof(stored) / sizeof(stored[0]); i++)
		if (n == strlen(stored[i]) &&
		    strncmp(text, stored[i], n) == 0)
			return (1);
	return (0);
}

/* A conversation name: 1 to CONV_NAME_MAX of A-Za-z0-9._- */
int
conv_name_valid(const char *name)
{
	size_t	 len = strlen(name);

	return (len >= 1 && len <= CONV_NAME_MAX &&
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789._-") == len);
}
