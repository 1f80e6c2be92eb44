/*
 * lib/ctl.h: the control protocol between bridgectl and bridged's
 * control process, over the control socket in imsg framing. Every
 * request carries CTL_VERSION in the header's peerid; a daemon of
 * another version answers CTL_FAIL.
 */

#ifndef BRIDGE_CONTROL_H
#define BRIDGE_CONTROL_H

#define CTL_VERSION	1
#define CTL_LIMIT_INHERIT	UINT64_MAX

enum ctl_type {
	CTL_NONE,
	/* requests */
	CTL_STATUS,		/* empty */
	CTL_SESSIONS,		/* empty */
	CTL_MODELS,		/* empty */
	CTL_KILL,		/* u32 session id */
	CTL_RELOAD,		/* empty */
	CTL_LOG,		/* u32: 1 verbose, 0 brief */
	CTL_MONITOR,		/* empty: events follow until closed */
	CTL_EXPORT,		/* str identity, str format */
	CTL_PURGE,		/* str identity */
	CTL_JOBS,		/* empty: every identity's last jobs */
	CTL_JOBKILL,		/* u64 job id */
	CTL_METRICS,		/* empty */
	CTL_TOKEN_ADD,		/* str label, u32 days (0 never expires),
				   str models ("" all), u64 requests a
				   minute, u64 tokens a day, u64 jobs
				   (CTL_LIMIT_INHERIT: the global limit);
				   DATA the token, END its id */
	CTL_TOKEN_LIST,		/* empty */
	CTL_TOKEN_REVOKE,	/* u32 token id */
	CTL_USAGE,		/* str identity or "" (all), u32 days */
	CTL_IDENTITIES,		/* empty */
	CTL_EVENTS,		/* str identity or "" (all), u32 count */
	/* answers */
	CTL_DATA,		/* str line */
	CTL_END,		/* str text: success, the answer is complete */
	CTL_FAIL,		/* str text: failure */
	CTL_MAX
};

#endif /* BRIDGE_CONTROL_H */
