/*
 * bench_storage.c: what group commit buys. The storage process of the
 * real bridged binary (bridged -P storage, this program as its parent)
 * serves N concurrent sessions, each with one STORE in flight at a
 * time as a worker has while it waits to say `. OK`; beside it, a
 * plain loop of SQLite inserts, one transaction each, on a database
 * opened with the same code and pragmas (db.c). With -P, the same
 * storage on PostgreSQL (the database of $BRIDGED_TEST_PG, password in
 * $BRIDGED_TEST_PG_PASSFILE: pgserver.py exec gives both) beside a
 * plain libpq loop of the same INSERT into the same table, one
 * synchronous commit each. Figures only: it never passes or fails on
 * time.
 *
 * usage: bench_storage [-P] [-b bridged] [-n sessions] [-t seconds]
 *        [-s normal|full|both] [-z bytes]
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "bridged.h"

#define MAXSESSIONS	1000

struct session {
	struct imsgbuf	 ib;
	char		 identity[IDENTITY_LEN + 1];
	uint64_t	 next;		/* key of the next STORE */
	uint64_t	 conv;		/* its conversation, 0 until made */
	uint32_t	 id;
};

static char	 dir[PATH_MAX];
static char	*text;
static size_t	 textlen = 200;
static char	 password[256];		/* PostgreSQL's, with -P */

/* The options, on a mistake. */
static void __attribute__((__noreturn__))
usage(void)
{
	fprintf(stderr, "usage: bench_storage [-P] [-b bridged]"
	    " [-n sessions] [-t seconds] [-s normal|full|both] [-z bytes]\n");
	exit(1);
}

/* A file in the bench directory. */
static void
dpath(char *buf, size_t len, const char *name)
{
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		errx(1, "path too long");
}

/* Monotonic seconds. */
static double
now_s(void)
{
	return ((double)ev_now_ms() / 1000.0);
}

/* A distinct hex identity per session. */
static void
identity_of(int n, char *out)
{
	char	 seed[32];

	snprintf(seed, sizeof(seed), "bench %d", n);
	sha256_hex(seed, strlen(seed), out);
}

/* Ask for a new unnamed conversation of the session's identity. */
static void
session_conv(struct session *s)
{
	struct ibuf	*b;

	if ((b = imsg_create(&s->ib, IMSG_WORKER_CONV_NEW, 0, 0,
	    64)) == NULL || ibuf_add_u32(b, ++s->id) == -1 ||
	    ibuf_add_str(b, "") == -1 || ibuf_add_str(b, "bench") == -1 ||
	    ibuf_add_str(b, "") == -1 || ibuf_add_str(b, "") == -1 ||
	    imsg_close(&s->ib, b) == -1 || imsg_flush(&s->ib) == -1)
		err(1, "conversation");
}

/* The conversation of an IMSG_STORAGE_CONV answer. */
static uint64_t
conv_of(struct imsg *m)
{
	struct ireader	 ir;
	uint64_t	 conv;

	ir_init(&ir, m);
	(void)ir_u32(&ir);
	conv = ir_u64(&ir);
	if (ir.bad || conv == 0)
		errx(1, "bad conversation answer");
	return (conv);
}

/* Send the next STORE of a session. */
static void
store(struct session *s)
{
	struct ibuf	*b;

	if ((b = imsg_create(&s->ib, IMSG_WORKER_STORE, 0, 0,
	    textlen + 64)) == NULL || ibuf_add_u32(b, ++s->id) == -1 ||
	    ibuf_add_u64(b, s->next++) == -1 ||
	    ibuf_add_u64(b, s->conv) == -1 ||
	    ibuf_add_u32(b, ROLE_USER) == -1 ||
	    ibuf_add_str(b, "bench") == -1 || ibuf_add_u64(b, 0) == -1 ||
	    ibuf_add_data(b, text, textlen) == -1 ||
	    imsg_close(&s->ib, b) == -1 || imsg_flush(&s->ib) == -1)
		err(1, "store");
}

/* Start storage on path; its parent channel, once it is ready. */
static pid_t
start_storage(const char *bridged, const char *path, enum sync_mode sync,
    struct imsgbuf *parent)
{
	struct global_conf	 g;
	struct imsg		 m;
	struct ibuf		*b;
	char			 log[PATH_MAX];
	pid_t			 pid;
	int			 sp[2], fd, ready = 0;

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		err(1, "socketpair");
	dpath(log, sizeof(log), "storage.log");
	switch (pid = fork()) {
	case -1:
		err(1, "fork");
	case 0:
		close(sp[0]);
		if (sp[1] != FD_PARENT) {
			dup2(sp[1], FD_PARENT);
			close(sp[1]);
		}
		if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600)) !=
		    -1)
			dup2(fd, 2);
		execl(bridged, "bridged", "-P", "storage", "-d", (char *)NULL);
		_exit(127);
	}
	close(sp[1]);
	imsgbuf_init(parent, sp[0]);
	memset(&g, 0, sizeof(g));
	(void)strlcpy(g.database, path, sizeof(g.database));
	g.summaries_keep = BRIDGED_SUMMARIES;
	g.memory_limit = BRIDGED_MEMLIMIT;
	g.sync = sync;
	if (imsg_compose(parent, IMSG_CFG_GLOBAL, 0, 0, -1, &g,
	    sizeof(g)) == -1)
		err(1, "config");
	/* As the parent does: the password over the channel, never argv. */
	if (*password != '\0' && ((b = imsg_create(parent,
	    IMSG_CFG_DB_PASSWORD, 0, 0, strlen(password) + 8)) == NULL ||
	    ibuf_add_str(b, password) == -1 || imsg_close(parent, b) == -1))
		err(1, "config");
	if (imsg_compose(parent, IMSG_CFG_DONE, 0, 0, -1, NULL, 0) == -1 ||
	    imsg_flush(parent) == -1)
		err(1, "config");
	while (!ready) {
		ssize_t	 n;
		int	 r;

		if ((n = imsg_read(parent)) == 0 || (n == -1 &&
		    errno != EINTR && errno != EAGAIN))
			errx(1, "storage did not start (see %s)", log);
		while ((r = imsg_get(parent, &m)) == 1) {
			if (m.hdr.type == IMSG_CHILD_READY)
				ready = 1;
			imsg_free(&m);
		}
		if (r == -1)
			errx(1, "bad message from storage");
	}
	return (pid);
}

/*
 * Messages per second committed by storage for n sessions, on the
 * SQLite file of this sync mode, or on database (PostgreSQL) if set.
 */
static double
bench_storage(const char *bridged, const char *database,
    enum sync_mode sync, int n, int secs, uint64_t *total)
{
	struct session	*ss;
	struct pollfd	*pfd;
	struct imsgbuf	 parent;
	struct imsg	 m;
	struct ibuf	*b;
	char		 path[PATH_MAX];
	double		 t0, t1 = 0;
	uint64_t	 done = 0;
	pid_t		 pid;
	int		 i, sp[2], r, status, warm = 1;

	if (database != NULL)
		(void)strlcpy(path, database, sizeof(path));
	else
		dpath(path, sizeof(path), sync == SYNC_FULL ?
		    "storage-full.db" : "storage-normal.db");
	pid = start_storage(bridged, path, sync, &parent);
	if ((ss = calloc(n, sizeof(*ss))) == NULL ||
	    (pfd = calloc(n, sizeof(*pfd))) == NULL)
		err(1, NULL);
	for (i = 0; i < n; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
			err(1, "socketpair");
		imsgbuf_init(&ss[i].ib, sp[1]);
		identity_of(i, ss[i].identity);
		if ((b = imsg_create(&parent, IMSG_PARENT_CHANNEL, 0, 0,
		    128)) == NULL || ibuf_add_u32(b, i + 1) == -1 ||
		    ibuf_add_str(b, ss[i].identity) == -1)
			err(1, "channel");
		b->fd = sp[0];
		if (imsg_close(&parent, b) == -1 || imsg_flush(&parent) == -1)
			err(1, "channel");
		pfd[i].fd = sp[1];
		pfd[i].events = POLLIN;
	}
	/* Each session makes its conversation, then stores in it. */
	for (i = 0; i < n; i++)
		session_conv(&ss[i]);
	/* The first second warms up; then count for secs seconds. */
	t0 = now_s() + 1;
	for (;;) {
		if (poll(pfd, n, 1000) == -1 && errno != EINTR)
			err(1, "poll");
		for (i = 0; i < n; i++) {
			if ((pfd[i].revents & (POLLIN | POLLHUP)) == 0)
				continue;
			if (imsg_read(&ss[i].ib) <= 0 && errno != EAGAIN)
				errx(1, "storage closed session %d", i);
			while ((r = imsg_get(&ss[i].ib, &m)) == 1) {
				if (m.hdr.type == IMSG_STORAGE_CONV &&
				    ss[i].conv == 0)
					ss[i].conv = conv_of(&m);
				else if (m.hdr.type != IMSG_STORAGE_STORED)
					errx(1, "session %d: answer type %u",
					    i, m.hdr.type);
				else if (!warm)
					done++;
				imsg_free(&m);
				store(&ss[i]);
			}
			if (r == -1)
				errx(1, "bad message from storage");
		}
		if (warm && now_s() >= t0) {
			warm = 0;
			t0 = now_s();
		} else if (!warm && (t1 = now_s()) - t0 >= secs)
			break;
	}
	for (i = 0; i < n; i++) {
		close(ss[i].ib.fd);
		imsgbuf_clear(&ss[i].ib);
	}
	close(parent.fd);
	imsgbuf_clear(&parent);
	waitpid(pid, &status, 0);
	free(ss);
	free(pfd);
	*total = done;
	return ((double)done / (t1 - t0));
}

/*
 * Messages per second of a plain loop, one transaction per insert,
 * over the same n identities in turn (so the same index pages), each
 * with its conversation as in storage.
 */
static double
bench_loop(enum sync_mode sync, int n, int secs, uint64_t *total)
{
	struct db	*db;
	struct db_conv	 c;
	char		 path[PATH_MAX], (*ids)[IDENTITY_LEN + 1];
	double		 t0, t1;
	int64_t		 rowid, *convs;
	uint64_t	 key = 0, done = 0;
	int		 i;

	dpath(path, sizeof(path), sync == SYNC_FULL ? "loop-full.db" :
	    "loop-normal.db");
	if ((db = db_open(path, sync)) == NULL)
		errx(1, "db_open %s", path);
	if ((ids = calloc(n, sizeof(*ids))) == NULL ||
	    (convs = calloc(n, sizeof(*convs))) == NULL)
		err(1, NULL);
	for (i = 0; i < n; i++) {
		identity_of(i, ids[i]);
		if (db_conv_new(db, ids[i], "", "bench", "", "", 0, &c) != 0)
			errx(1, "db_conv_new");
		convs[i] = c.id;
	}
	t0 = now_s();
	do {
		i = done % n;
		if (db_begin(db) == -1 || db_store(db, ids[i], convs[i],
		    key++, ROLE_USER, "bench", 0, text, textlen, 0,
		    &rowid) != 0 || db_commit(db) == -1)
			errx(1, "db_store");
		done++;
	} while ((t1 = now_s()) - t0 < secs);
	free(convs);
	free(ids);
	db_close(db);
	*total = done;
	return ((double)done / (t1 - t0));
}

/* One statement on c, or exit saying why. */
static void
pg_must(PGconn *c, const char *sql)
{
	PGresult	*r;

	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK)
		errx(1, "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

/*
 * Messages per second of a plain libpq loop on database: the INSERT
 * storage makes, into the same table (made by storage before), one
 * statement and so one synchronous commit each, over n identities in
 * turn, each with a conversation of its own.
 */
static double
bench_pg_loop(const char *database, int n, int secs, uint64_t *total)
{
	static const char	*keys[] = { "dbname", "password", NULL };
	const char		*vals[3], *args[8];
	char			 id[IDENTITY_LEN + 1], (*convs)[24], key[24];
	char			 now[24];
	PGconn			*c;
	PGresult		*r;
	double			 t0, t1;
	uint64_t		 done = 0, k = (uint64_t)1 << 40;
	int			 i;

	vals[0] = database;
	vals[1] = password;
	vals[2] = NULL;
	c = PQconnectdbParams(keys, vals, 1);
	if (PQstatus(c) != CONNECTION_OK)
		errx(1, "connect: %s", PQerrorMessage(c));
	pg_must(c, "SET synchronous_commit = on");
	if ((convs = calloc(n, sizeof(*convs))) == NULL)
		err(1, NULL);
	for (i = 0; i < n; i++) {
		identity_of(i, id);
		args[0] = id;
		r = PQexecParams(c, "INSERT INTO conversations (client_id,"
		    " model, created_at, last_used) VALUES ($1, 'bench', 0, 0)"
		    " RETURNING id", 1, NULL, args, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_TUPLES_OK)
			errx(1, "conversation: %s", PQerrorMessage(c));
		(void)strlcpy(convs[i], PQgetvalue(r, 0, 0),
		    sizeof(convs[i]));
		PQclear(r);
	}
	t0 = now_s();
	do {
		i = done % n;
		identity_of(i, id);
		snprintf(key, sizeof(key), "%llu", (unsigned long long)k++);
		snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
		args[0] = id;
		args[1] = "user";
		args[2] = text;
		args[3] = now;
		args[4] = "bench";
		args[5] = NULL;
		args[6] = key;
		args[7] = convs[i];
		r = PQexecParams(c, "INSERT INTO messages (client_id, role,"
		    " content, timestamp, model, tokens, msgkey,"
		    " conversation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		    8, NULL, args, NULL, NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			errx(1, "insert: %s", PQerrorMessage(c));
		PQclear(r);
		done++;
	} while ((t1 = now_s()) - t0 < secs);
	free(convs);
	PQfinish(c);
	*total = done;
	return ((double)done / (t1 - t0));
}

/* The password of $BRIDGED_TEST_PG_PASSFILE, its first line. */
static void
read_password(void)
{
	const char	*pf;
	FILE		*f;

	if ((pf = getenv("BRIDGED_TEST_PG_PASSFILE")) == NULL)
		errx(1, "-P: BRIDGED_TEST_PG_PASSFILE is not set (run it with"
		    " pgserver.py exec)");
	if ((f = fopen(pf, "r")) == NULL)
		err(1, "%s", pf);
	if (fgets(password, sizeof(password), f) == NULL)
		errx(1, "%s: empty", pf);
	fclose(f);
	password[strcspn(password, "\r\n")] = '\0';
}

/* PostgreSQL: storage, then the plain libpq loop, then the ratio. */
static void
bench_pg(const char *bridged, int n, int secs)
{
	const char	*database;
	double		 rs, rl;
	uint64_t	 ns, nl;

	if ((database = getenv("BRIDGED_TEST_PG")) == NULL)
		errx(1, "-P: BRIDGED_TEST_PG is not set (run it with"
		    " pgserver.py exec)");
	read_password();
	rs = bench_storage(bridged, database, SYNC_NORMAL, n, secs, &ns);
	rl = bench_pg_loop(database, n, secs, &nl);
	printf("storage postgresql sessions=%d bytes=%zu: %.0f msgs/s"
	    " (%llu in %d s)\n", n, textlen, rs, (unsigned long long)ns,
	    secs);
	printf("libpq loop, one synchronous commit per insert: %.0f msgs/s"
	    " (%llu in %d s)\n", rl, (unsigned long long)nl, secs);
	printf("ratio storage/loop postgresql: %.2f (target at least 0.5)\n",
	    rl > 0 ? rs / rl : 0);
	fflush(stdout);
}

/* Each sync level: storage, then the plain loop, then the ratio. */
int
main(int argc, char *argv[])
{
	char		 bridged[PATH_MAX], cmd[PATH_MAX + 16];
	const char	*errstr, *tmp, *modes = "both";
	double		 rs, rl;
	uint64_t	 ns, nl;
	int		 ch, n = 100, secs = 3, m, pg = 0;

	if (realpath("../bridged/bridged", bridged) == NULL)
		(void)strlcpy(bridged, "../bridged/bridged", sizeof(bridged));
	while ((ch = getopt(argc, argv, "Pb:n:s:t:z:")) != -1) {
		switch (ch) {
		case 'P':
			pg = 1;
			break;
		case 'b':
			(void)strlcpy(bridged, optarg, sizeof(bridged));
			break;
		case 'n':
			n = strtonum(optarg, 1, MAXSESSIONS, &errstr);
			if (errstr != NULL)
				errx(1, "sessions %s: %s", optarg, errstr);
			break;
		case 's':
			modes = optarg;
			break;
		case 't':
			secs = strtonum(optarg, 1, 600, &errstr);
			if (errstr != NULL)
				errx(1, "seconds %s: %s", optarg, errstr);
			break;
		case 'z':
			textlen = strtonum(optarg, 1, 1024 * 1024, &errstr);
			if (errstr != NULL)
				errx(1, "bytes %s: %s", optarg, errstr);
			break;
		default:
			usage();
		}
	}
	if (strcmp(modes, "normal") != 0 && strcmp(modes, "full") != 0 &&
	    strcmp(modes, "both") != 0)
		usage();
	log_init(1, LOG_DAEMON);
	log_setverbose(0);
	signal(SIGPIPE, SIG_IGN);
	if ((text = malloc(textlen)) == NULL)
		err(1, NULL);
	memset(text, 'm', textlen);
	if ((tmp = getenv("TMPDIR")) == NULL)
		tmp = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/bench_storage.XXXXXX",
	    tmp) >= sizeof(dir) || mkdtemp(dir) == NULL)
		err(1, "mkdtemp");

	if (pg) {
		bench_pg(bridged, n, secs);
		modes = "";
	}
	for (m = SYNC_NORMAL; m <= SYNC_FULL && *modes != '\0'; m++) {
		if ((m == SYNC_NORMAL && strcmp(modes, "full") == 0) ||
		    (m == SYNC_FULL && strcmp(modes, "normal") == 0))
			continue;
		rs = bench_storage(bridged, NULL, m, n, secs, &ns);
		rl = bench_loop(m, n, secs, &nl);
		printf("storage sync=%s sessions=%d bytes=%zu: %.0f msgs/s"
		    " (%llu in %d s)\n", m == SYNC_FULL ? "full" : "normal", n,
		    textlen, rs, (unsigned long long)ns, secs);
		printf("sqlite loop sync=%s, one transaction per insert:"
		    " %.0f msgs/s (%llu in %d s)\n",
		    m == SYNC_FULL ? "full" : "normal", rl,
		    (unsigned long long)nl, secs);
		printf("ratio storage/loop sync=%s: %.2f\n",
		    m == SYNC_FULL ? "full" : "normal", rl > 0 ? rs / rl : 0);
		fflush(stdout);
	}
	if (getenv("BENCH_KEEP") == NULL) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void)system(cmd);
	} else
		printf("kept %s\n", dir);
	return (0);
}
