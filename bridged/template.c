/*
 * template.c: bridged-worker's main. The parent executes it once as
 * the worker template: it takes the configuration and the TLS material
 * from the parent, sets up libtls (the costly part of a worker), enters
 * its sandbox and then forks one worker each time the parent asks,
 * with the worker's own channel to the parent. It reaps the workers
 * and tells the parent how each one ended. Once retired (SIGTERM) it
 * forks no more and leaves when its last worker has gone.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "bridged.h"

#define TLS_SESSION_LIFETIME	7200		/* s */

/* A worker forked and not yet reaped. */
struct forked {
	TAILQ_ENTRY(forked)	 entry;
	uint32_t		 wid;
	pid_t			 pid;
};

static struct {
	struct bridged_conf	*conf;
	struct tls_material	 tlsm;
	struct tls_config	*tlscfg;
	struct tls		*tlsctx;
	TAILQ_HEAD(, forked)	 workers;
	int			 retiring;
} t;

/* The synopsis of bridged-worker. */
static void
template_usage(void)
{
	extern char	*__progname;

	fprintf(stderr, "usage: %s [-dv]\n", __progname);
	exit(1);
}

/*
 * TLS, set up from memory before the sandbox and once for every worker
 * to come; the key is wiped once libtls holds it.
 */
static void
tls_setup(int certident)
{
	static const unsigned char	 sid[] = "bridged";

	if (!t.tlsm.loaded)
		return;
	if (tls_init() == -1)
		fatalx("%s: tls_init", __func__);
	if ((t.tlscfg = tls_config_new()) == NULL)
		fatalx("%s: tls_config_new", __func__);
	if (tls_config_set_protocols(t.tlscfg, TLS_PROTOCOL_TLSv1_2 |
	    TLS_PROTOCOL_TLSv1_3) == -1 ||
	    tls_config_set_keypair_mem(t.tlscfg, t.tlsm.cert, t.tlsm.certlen,
	    t.tlsm.key, t.tlsm.keylen) == -1 ||
	    tls_config_set_session_lifetime(t.tlscfg,
	    TLS_SESSION_LIFETIME) == -1 ||
	    tls_config_set_session_id(t.tlscfg, sid, sizeof(sid) - 1) == -1 ||
	    tls_config_add_ticket_key(t.tlscfg, 1, t.tlsm.ticket_key,
	    TLS_TICKET_KEY_LEN) == -1)
		fatalx("%s: %s", __func__, tls_config_error(t.tlscfg));
	if (certident) {
		/* Any certificate will do: only its hash is the identity. */
		tls_config_verify_client_optional(t.tlscfg);
		tls_config_insecure_noverifycert(t.tlscfg);
	}
	if ((t.tlsctx = tls_server()) == NULL)
		fatalx("%s: tls_server", __func__);
	if (tls_configure(t.tlsctx, t.tlscfg) == -1)
		fatalx("%s: %s", __func__, tls_error(t.tlsctx));
	tls_ticket_nocache();
	tls_material_wipe(&t.tlsm);
	tls_config_clear_keys(t.tlscfg);
}

#ifdef __GLIBC__
/*
 * Fill the holes of the template's heap, once, before it forks: what
 * a worker then allocates comes from fresh pages at the top of the
 * heap, together, instead of from free chunks scattered over pages it
 * shares with the template, each of which it would have to copy. The
 * fillers are never used or freed; they cost what the holes held.
 */
static void
heap_plug(void)
{
	struct mallinfo2	 mi = mallinfo2();
	char			*top, *p;
	size_t			 sz;

	top = (char *)sbrk(0) - mi.keepcost;
	for (sz = 64 * 1024; sz >= 16; sz /= 2)
		while ((p = malloc(sz)) != NULL) {
			if (p + sz > top) {
				free(p);	/* from the top: no hole left */
				break;
			}
		}
}
#endif

/* Retired and no worker left: nothing more to do. */
static void
template_leave_if_done(void)
{
	if (!t.retiring || !TAILQ_EMPTY(&t.workers))
		return;
	log_debug("retired, no worker left");
	channel_flush(parent_chan);
	_exit(0);
}

/* IMSG_PARENT_FORK: a new worker on the channel the parent made. */
static void
template_fork(uint32_t wid, int fd)
{
	struct forked	*f;
	struct ibuf	*b;
	sigset_t	 all, old;
	pid_t		 pid;

	/* Retired: the closed channel tells the parent no worker came. */
	if (t.retiring) {
		close(fd);
		return;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		fatal("%s", __func__);
	/* Signals wait until the worker has its own handlers. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	if ((pid = fork()) == -1) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		log_warn("%s: fork", __func__);
		free(f);
		close(fd);
		return;
	}
	if (pid == 0)
		worker_main(t.conf, t.tlsctx, fd, &old);
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(fd);
	f->wid = wid;
	f->pid = pid;
	TAILQ_INSERT_TAIL(&t.workers, f, entry);
	if ((b = channel_create(parent_chan, IMSG_TEMPLATE_FORKED, 0, 16)) ==
	    NULL || ibuf_add_u32(b, wid) == -1 ||
	    ibuf_add_u32(b, (uint32_t)pid) == -1)
		fatal("%s", __func__);
	channel_send(parent_chan, b);
}

/* Reap the workers that ended and say how each did. */
static void
template_sigchld(int sig, void *arg)
{
	struct forked	*f;
	struct ibuf	*b;
	pid_t		 pid;
	int		 status;

	(void)sig;
	(void)arg;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		TAILQ_FOREACH(f, &t.workers, entry)
			if (f->pid == pid)
				break;
		if (f == NULL)
			continue;
		TAILQ_REMOVE(&t.workers, f, entry);
		if ((b = channel_create(parent_chan, IMSG_TEMPLATE_ENDED, 0,
		    16)) == NULL || ibuf_add_u32(b, f->wid) == -1 ||
		    ibuf_add_u32(b, (uint32_t)pid) == -1 ||
		    ibuf_add_u32(b, (uint32_t)status) == -1)
			fatal("%s", __func__);
		channel_send(parent_chan, b);
		free(f);
	}
	template_leave_if_done();
}

/* Retired: the parent ends our idle workers, the busy ones finish. */
static void
template_sigterm(int sig, void *arg)
{
	(void)sig;
	(void)arg;
	t.retiring = 1;
	template_leave_if_done();
}

/* The parent: a worker to fork (a reload means a new template). */
static void
template_dispatch_parent(struct channel *ch, struct imsg *imsg)
{
	struct ireader	 ir;
	uint32_t	 wid;
	int		 fd;

	(void)ch;
	if (child_imsg(&t.conf, &t.tlsm, imsg) != -1) {
		/* A reload makes a new template; keep what we were made of. */
		tls_material_wipe(&t.tlsm);
		return;
	}
	switch (imsg->hdr.type) {
	case IMSG_PARENT_FORK:
		ir_init(&ir, imsg);
		wid = ir_u32(&ir);
		if (ir_end(&ir) == -1 || imsg->fd == -1)
			break;
		fd = imsg->fd;
		imsg->fd = -1;
		template_fork(wid, fd);
		return;
	}
	child_bad(PROC_PARENT, imsg, NULL);
}

/* bridged-worker: a template that forks the workers of clients. */
int
main(int argc, char *argv[])
{
	struct sandbox_conf	 sc;
	int			 ch, debug = 0, verbose = 0;

#ifndef HAVE_SETPROCTITLE
	setproctitle_init(argc, argv);
#endif
	while ((ch = getopt(argc, argv, "dv")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'v':
			verbose++;
			break;
		default:
			template_usage();
		}
	}
	if (argc != optind)
		template_usage();
	/* A client that vanishes must not kill a worker mid-write. */
	signal(SIGPIPE, SIG_IGN);

	child_init(PROC_TEMPLATE, debug, verbose);
	TAILQ_INIT(&t.workers);
	t.conf = child_config(&t.tlsm);
	tls_setup(t.conf->g.identity == IDENTITY_CERTIFICATE);
	tls_material_wipe(&t.tlsm);
	tls_warm_up(t.tlsctx);

	memset(&sc, 0, sizeof(sc));
	sc.user = t.conf->g.user[0] != '\0' ? t.conf->g.user : NULL;
	sc.chroot = t.conf->g.chroot[0] != '\0' ? t.conf->g.chroot : NULL;
	/* jansson (EXPORT, IMPORT) seeds itself before the sandbox. */
	export_init();
	/* Ready: back to the normal priority (root may; else it stays). */
	(void)setpriority(PRIO_PROCESS, 0, 0);
	if (sandbox_prepare(SANDBOX_WORKER) == -1 ||
	    sandbox_enter(SANDBOX_TEMPLATE, &sc) == -1)
		fatalx("sandbox");
#ifdef __GLIBC__
	/*
	 * Merge the free chunks that setting up TLS left now, once: else
	 * each worker's first larger malloc does it, writing to pages all
	 * over the heap it shares with the template, each one copied.
	 */
	malloc_trim(0);
	heap_plug();
#endif
	ev_signal(SIGCHLD, template_sigchld, NULL);
	ev_signal(SIGTERM, template_sigterm, NULL);
	child_ready();
	child_dispatch(template_dispatch_parent);
	ev_loop();
	fatalx("event loop ended");
}
