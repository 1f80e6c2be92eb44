/*
 * t_parent.c: the parent's ends of its children's channels
 * (bridged/parent.c, included whole to reach its static handlers), on
 * real socket pairs driven by the real event loop, with real processes
 * standing for the children so that the SIGKILL is real. A child that
 * sends a malformed message or a broken frame is killed and the parent
 * goes on; storage's and the provider's REJECT end the worker named,
 * and a REJECT that is itself malformed, or from a process that may
 * not send it, ends its sender.
 */

#include "../../bridged/parent.c"

#define WAIT_MS		5000

static int	 failures;

/* One result line: ok, or FAIL with why. */
static void
check(const char *name, int ok, const char *why)
{
	if (ok)
		printf("ok %s\n", name);
	else {
		printf("FAIL %s: %s\n", name, why);
		failures++;
	}
}

/* A child of the given role: a process that waits, on a socket pair. */
static struct child *
kid(enum proc_id id, uint32_t wid, struct imsgbuf *far)
{
	struct child	*c;
	int		 sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1 ||
	    (c = calloc(1, sizeof(*c))) == NULL)
		exit(2);
	switch (c->pid = fork()) {
	case -1:
		exit(2);
	case 0:
		for (;;)
			pause();
	}
	c->id = id;
	c->wid = wid;
	c->ready = 1;
	c->gen = 1;
	imsgbuf_init(far, sp[1]);
	channel_init(&c->chan, sp[0], parent_dispatch_child,
	    parent_child_closed, c);
	TAILQ_INSERT_TAIL(&children, c, entry);
	return (c);
}

/* The timer of run(): the loop ends. */
static void
loop_stop(void *arg)
{
	(void)arg;
	ev_break();
}

/* Run the parent's event loop for ms milliseconds. */
static void
run(int ms)
{
	static struct ev_timer	 t;

	ev_timer_set(&t, loop_stop, NULL);
	ev_timer_add(&t, ms);
	ev_loop();
}

/* How the process ended: its signal, 0 if it still runs after ms. */
static int
killed_by(pid_t pid, int ms)
{
	int	 i, status;

	for (i = 0; i < ms / 10; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return (WIFSIGNALED(status) ? WTERMSIG(status) : -1);
		usleep(10000);
	}
	return (0);
}

/* Send as it is, and let the parent read it. */
static void
send_msg(struct imsgbuf *ib, uint32_t type, const void *data, size_t len)
{
	if (imsg_compose(ib, type, 0, 0, -1, data, len) == -1 ||
	    imsg_flush(ib) == -1)
		exit(2);
	run(200);
}

/* Each child, and whether it must be dead (of SIGKILL) or alive. */
static void
expect(const char *name, struct child *const *kids, const int *dead,
    int n)
{
	static int	 ended[16];	/* the signal of one reaped */
	char		 why[256];
	int		 i, sig, ok = 1;

	why[0] = '\0';
	for (i = 0; i < n; i++) {
		if ((sig = ended[i]) == 0)
			sig = ended[i] = killed_by(kids[i]->pid, dead[i] ?
			    WAIT_MS : 50);
		if (dead[i] ? sig != SIGKILL : sig != 0) {
			ok = 0;
			(void)snprintf(why, sizeof(why), "%s (pid %d): %s",
			    proc_name(kids[i]->id), (int)kids[i]->pid,
			    sig == 0 ? "alive" : "ended otherwise");
		}
	}
	check(name, ok, why);
}

/* metrics_write's lines: counted, and the "other" error code's kept. */
struct metric_lines {
	int		 errors;	/* bridged_upstream_errors_total lines */
	char		 other[128];
};

/* One line of metrics_write. */
static void
metric_line(void *arg, const char *line)
{
	struct metric_lines	*ml = arg;

	if (strncmp(line, "bridged_upstream_errors_total{", 30) != 0)
		return;
	ml->errors++;
	if (strstr(line, "code=\"other\"") != NULL)
		(void)strlcpy(ml->other, line, sizeof(ml->other));
}

/*
 * A worker reporting more error codes than the table keeps: the last
 * place is "other", and it counts the rest.
 */
static void
t_metric_codes(void)
{
	struct imsgbuf		 fw;
	struct metric_lines	 ml;
	struct child		*w;
	struct ibuf		*b;
	char			 code[16];
	int			 i;

	w = kid(PROC_WORKER, 14, &fw);
	w->busy = 1;			/* a worker speaks of its client */
	for (i = 0; i < 40; i++) {
		(void)snprintf(code, sizeof(code), "code-%d", i);
		if ((b = ibuf_open(64)) == NULL ||
		    ibuf_add_str(b, "gemini-2.0-flash") == -1 ||
		    ibuf_add_str(b, code) == -1 || ibuf_add_str(b, "") == -1 ||
		    ibuf_add_u64(b, 1) == -1 || ibuf_add_u64(b, 1) == -1 ||
		    ibuf_add_u64(b, 5) == -1 || ibuf_add_u64(b, 9) == -1 ||
		    imsg_compose(&fw, IMSG_WORKER_METRIC, 0, 0, -1,
		    ibuf_data(b), ibuf_left(b)) == -1)
			exit(2);
		ibuf_free(b);
	}
	if (imsg_flush(&fw) == -1)
		exit(2);
	run(300);
	memset(&ml, 0, sizeof(ml));
	metrics_write(&(struct metrics_gauges){ 0 }, metric_line, &ml);
	check("parent-metric-codes", !w->chan.dead && ml.errors == 32 &&
	    strstr(ml.other, "} 9") != NULL, "more codes than the table"
	    " keeps were not counted as other");
	kill(w->pid, SIGKILL);
	(void)killed_by(w->pid, WAIT_MS);
}

/* Children that misbehave are killed one by one; the rest are served. */
int
main(void)
{
	struct imsgbuf	 fs, fp, fc, ft, fw1, fw2, fw3;
	struct child	*k[7];
	struct child	*c;
	uint32_t	 v;
	int		 dead[7] = { 0 };

	log_init(1, LOG_DAEMON);
	log_setverbose(0);
	signal(SIGPIPE, SIG_IGN);
	ev_init();
	if ((parent_conf = config_new()) == NULL)
		exit(2);
	parent_conf->g.prefork = 1;
	parent_conf->g.max_clients = 4;
	ev_timer_set(&restart_timer, parent_roles_update, NULL);
	ev_timer_set(&stop_timer, parent_kill_all, NULL);

	k[0] = kid(PROC_STORAGE, 0, &fs);
	k[1] = kid(PROC_PROVIDER, 0, &fp);
	k[2] = kid(PROC_CONTROL, 0, &fc);
	k[3] = kid(PROC_TEMPLATE, 0, &ft);
	k[4] = kid(PROC_WORKER, 11, &fw1);
	k[5] = kid(PROC_WORKER, 12, &fw2);
	k[6] = kid(PROC_WORKER, 13, &fw3);

	/* A worker's STATE cut short: that worker, no one else. */
	send_msg(&fw1, IMSG_WORKER_STATE, "\1\0", 2);
	dead[4] = 1;
	expect("parent-worker-malformed", k, dead, 7);

	/* Storage closed worker 12's channel: the parent ends it. */
	v = 12;
	send_msg(&fs, IMSG_STORAGE_REJECT, &v, sizeof(v));
	dead[5] = 1;
	expect("parent-storage-reject", k, dead, 7);

	/* And the provider worker 13's. */
	v = 13;
	send_msg(&fp, IMSG_PROVIDER_REJECT, &v, sizeof(v));
	dead[6] = 1;
	expect("parent-provider-reject", k, dead, 7);

	/* The template may not reject anyone: it is its own fault. */
	v = 11;
	send_msg(&ft, IMSG_PROVIDER_REJECT, &v, sizeof(v));
	dead[3] = 1;
	expect("parent-template-wrong-type", k, dead, 7);

	/* A REJECT cut short is storage's own bad message. */
	send_msg(&fs, IMSG_STORAGE_REJECT, "\1\0", 2);
	dead[0] = 1;
	expect("parent-storage-malformed", k, dead, 7);

	/* A broken frame from control: a header of length 4. */
	{
		struct imsg_hdr	 hdr;

		memset(&hdr, 0, sizeof(hdr));
		hdr.type = IMSG_CTL_STATUS;
		hdr.len = 4;
		if (write(fc.fd, &hdr, sizeof(hdr)) != sizeof(hdr))
			exit(2);
		run(200);
	}
	dead[2] = 1;
	expect("parent-control-framing", k, dead, 7);

	t_metric_codes();

	/* The provider, untouched all along, is still served. */
	check("parent-goes-on", !k[1]->chan.dead, "the provider's channel "
	    "was closed");
	kill(k[1]->pid, SIGKILL);
	(void)killed_by(k[1]->pid, WAIT_MS);
	while ((c = TAILQ_FIRST(&children)) != NULL) {
		TAILQ_REMOVE(&children, c, entry);
		if (!c->chan.dead)
			channel_shutdown(&c->chan);
		free(c);
	}
	config_free(parent_conf);
	return (failures != 0);
}
