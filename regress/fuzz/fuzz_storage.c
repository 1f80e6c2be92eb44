/*
 * fuzz_storage.c: the storage process's handlers of what its peers
 * send (bridged/storage.c, included whole to reach its static
 * dispatchers, which call the storage_*.c handlers it links): any
 * message a worker or control can write, well formed or not, in any
 * order, with the parent naming and renaming sessions. Now and then
 * the search index is compared with the messages it should hold.
 * A compromised worker may get its channel closed, never crash
 * storage; what control or the provider sends wrong ends storage (by
 * design: a jump back here). The database is a real SQLite file (bridged/db.c).
 */

#include "../../bridged/storage.c"

#include <sys/socket.h>

#include <stdio.h>

#include <sqlite3.h>

#include "fuzz.h"
#include "../unit/fts_check.h"

#define IDENT_A	"3f1a9c0b22de0123456789abcdef0123456789abcdef0123456789abcdef0123"
#define IDENT_B	"00000000000000000000000000000000000000000000000000000000000000ff"

static char	 dbpath[PATH_MAX];
static struct channel pchan;		/* to the parent */
static int	 far_parent = -1;
static int	 peers[16];
static int	 npeers;

/* A fresh database now and then, so the runs stay alike. */
static void
db_fresh(void)
{
	char	 p[PATH_MAX + 8];

	if (stor.jdb != NULL)
		jdb_close(stor.jdb);
	if (stor.db != NULL)
		db_close(stor.db);
	unlink(dbpath);
	snprintf(p, sizeof(p), "%s-wal", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", dbpath);
	unlink(p);
	if ((stor.db = db_open(dbpath, SYNC_NORMAL)) == NULL ||
	    (stor.jdb = jdb_open(stor.db)) == NULL)
		abort();
}

/* One-time set-up: state as storage_main() leaves it. */
static void
setup(void)
{
	char	 dir[] = "/tmp/fuzz_storage.XXXXXX";

	fuzz_quiet(0);
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(dbpath, sizeof(dbpath), "%s/bridged.db", dir);
	storage_init();
	if ((stor.conf = config_new()) == NULL)
		abort();
	stor.conf->g.summaries_keep = 3;
	(void)strlcpy(stor.database, dbpath, sizeof(stor.database));
	db_fresh();
	/* Storage tells the parent of job events. */
	{
		int	 sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
			abort();
		fd_nonblock(sv[0]);
		fd_nonblock(sv[1]);
		far_parent = sv[1];
		channel_init(&pchan, sv[0], NULL, NULL, NULL);
		parent_chan = &pchan;
	}
}

/* A channel from the parent: a worker's, control's or the jobs'. */
static struct wchan *
channel(uint32_t wid, const char *identity, int control)
{
	int	 sv[2];

	if (npeers == (int)(sizeof(peers) / sizeof(peers[0])))
		return (NULL);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	fd_nonblock(sv[0]);
	peers[npeers++] = sv[1];
	if (control == 2)
		return (wchan_new(sv[0], 0, "", 0, 1,
		    storage_dispatch_jobs));
	if (control) {
		if (stor.ctl != NULL)
			wchan_drop(stor.ctl);
		return (stor.ctl = wchan_new(sv[0], 0, "", 1, 0,
		    storage_dispatch_control));
	}
	return (wchan_new(sv[0], wid, identity, 0, 0,
	    storage_dispatch_worker));
}

/* The provider's jobs channel, if it is open. */
static struct wchan *
jobs_chan(void)
{
	struct wchan	*w;

	TAILQ_FOREACH(w, &stor.chans, entry)
		if (w->jobs && !w->gone)
			return (w);
	return (NULL);
}

/* What the event loop would run next: the round's end, the queues. */
static void
timers(void)
{
	char	 buf[16384];

	/* What went to the parent is read and forgotten. */
	(void)imsg_write(&pchan.ibuf);
	while (read(far_parent, buf, sizeof(buf)) > 0)
		;
	if (ev_timer_pending(&stor.round_end)) {
		ev_timer_del(&stor.round_end);
		storage_round_end(NULL);
	}
	if (ev_timer_pending(&stor.queue_poll)) {
		ev_timer_del(&stor.queue_poll);
		storage_queue_poll(NULL);
	}
}

/* A conversation as a client names it: a few ids and names. */
static const char *
conv_ref(struct fin *f)
{
	static const char *const refs[] = { "1", "2", "3", "4", "a", "b",
	    "" };

	return (refs[fin_u8(f) % (sizeof(refs) / sizeof(refs[0]))]);
}

/* Words a message may hold and a search may look for. */
static const char *
words(struct fin *f)
{
	static const char *const w[] = { "kiwi", "wombat burrow",
	    "kiwi and wombat", "quokka", "" };

	return (w[fin_u8(f) % (sizeof(w) / sizeof(w[0]))]);
}

/*
 * A conversation id: mostly the identity's last used (ids only grow,
 * so a small number soon names nobody's), else a small one.
 */
static uint64_t
conv_id(struct fin *f, const char *identity)
{
	struct db_conv	 c;

	if (fin_u8(f) & 3 && *identity != '\0' &&
	    db_conv_last(stor.db, identity, &c) == DB_FOUND)
		return ((uint64_t)c.id);
	return (fin_u8(f) % 6);
}

/* A well-formed request of a worker (of identity), or control's. */
static struct ibuf *
request(struct fin *f, uint32_t *type, const char *identity)
{
	struct ibuf	*b;
	const uint8_t	*p;
	const char	*t;
	size_t		 n;

	if ((b = ibuf_open(64)) == NULL)
		abort();
	switch (fin_u8(f) % 17) {
	case 7:
		*type = IMSG_WORKER_SUBMIT;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u32(b, fin_u8(f) % 3);
		ibuf_add_u32(b, fin_u8(f) % 60);
		ibuf_add_str(b, fin_u8(f) & 1 ? "gemini-2.0-flash" :
		    fin_str(f, 140));
		ibuf_add_str(b, fin_u8(f) & 1 ? "" : fin_str(f, 140));
		p = fin_bytes(f, 2048, &n);
		ibuf_add_data(b, p, n);
		break;
	case 8:
		*type = fin_u8(f) & 1 ? IMSG_WORKER_JOBS : IMSG_CTL_JOBS;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_u32(b, fin_u8(f));
		break;
	case 9:
		*type = fin_u8(f) % 3 == 0 ? IMSG_WORKER_RESULT :
		    fin_u8(f) & 1 ? IMSG_WORKER_KILL : IMSG_CTL_JOBKILL;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_u64(b, fin_u8(f) % 8);
		break;
	case 10:
		*type = IMSG_WORKER_UNFOLLOW;
		ibuf_add_u32(b, fin_u8(f));
		break;
	case 11:
		*type = fin_u8(f) & 1 ? IMSG_PROVIDER_JOB_LIST :
		    IMSG_PROVIDER_JOB_START;
		if (*type == IMSG_PROVIDER_JOB_START)
			ibuf_add_u64(b, fin_u8(f) % 8);
		break;
	case 12:
		*type = fin_u8(f) & 1 ? IMSG_PROVIDER_JOB_CHUNK :
		    IMSG_PROVIDER_JOB_TURN;
		ibuf_add_u64(b, fin_u8(f) % 8);
		if (*type == IMSG_PROVIDER_JOB_CHUNK) {
			ibuf_add_u32(b, fin_u8(f) % 4);
			p = fin_bytes(f, 2048, &n);
			ibuf_add_data(b, p, n);
		} else {
			ibuf_add_u32(b, fin_u8(f));
			ibuf_add_str(b, fin_str(f, 140));
			ibuf_add_u64(b, fin_u8(f));
		}
		break;
	case 13:
		*type = fin_u8(f) & 1 ? IMSG_PROVIDER_JOB_DONE :
		    IMSG_PROVIDER_JOB_FAIL;
		ibuf_add_u64(b, fin_u8(f) % 8);
		if (*type == IMSG_PROVIDER_JOB_DONE) {
			ibuf_add_u64(b, fin_u8(f));
			ibuf_add_u64(b, fin_u8(f));
			ibuf_add_u64(b, fin_u8(f));
			ibuf_add_str(b, fin_str(f, 40));
		} else {
			ibuf_add_str(b, fin_str(f, 40));
			ibuf_add_str(b, fin_str(f, 300));
		}
		break;
	case 0:
		*type = IMSG_WORKER_STORE;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u64(b, conv_id(f, identity));
		ibuf_add_u32(b, fin_u8(f) % 3);
		ibuf_add_str(b, fin_str(f, 140));
		ibuf_add_u64(b, fin_u8(f) < 250 ? fin_u8(f) : fin_u64(f));
		if (fin_u8(f) & 1) {
			p = fin_bytes(f, 2048, &n);
			ibuf_add_data(b, p, n);
		} else {
			t = words(f);
			ibuf_add_data(b, t, strlen(t));
		}
		break;
	case 1:
		*type = IMSG_WORKER_SUMMARY;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u64(b, conv_id(f, identity));
		p = fin_bytes(f, 2048, &n);
		ibuf_add_data(b, p, n);
		break;
	case 2:
		*type = IMSG_WORKER_HISTORY;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_u64(b, conv_id(f, identity));
		ibuf_add_u32(b, fin_u8(f) % 3);
		ibuf_add_u32(b, fin_u8(f) < 250 ? fin_u8(f) : fin_u32(f));
		break;
	case 3:
		*type = IMSG_WORKER_CONTEXT;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_str(b, conv_ref(f));
		ibuf_add_str(b, fin_u8(f) & 1 ? "gemini-2.0-flash" : "");
		break;
	case 4:
		*type = IMSG_WORKER_COUNT;
		ibuf_add_u32(b, fin_u8(f));
		break;
	case 5:
		*type = fin_u8(f) & 1 ? IMSG_CTL_EXPORT : IMSG_CTL_PURGE;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_str(b, fin_u8(f) & 1 ? fin_str(f, 70) :
		    fin_u8(f) & 1 ? IDENT_A : "3f1a");
		break;
	case 14:
		*type = IMSG_WORKER_SEARCH;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_str(b, fin_u8(f) & 1 ? fin_str(f, 40) : words(f));
		break;
	case 15:
		*type = IMSG_WORKER_CONV_NEW;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_str(b, fin_u8(f) & 1 ? "" : conv_ref(f));
		ibuf_add_str(b, "");
		ibuf_add_str(b, "");
		ibuf_add_str(b, "");
		break;
	case 16:
		*type = IMSG_WORKER_CONV_DELETE;
		ibuf_add_u32(b, fin_u8(f));
		ibuf_add_str(b, conv_ref(f));
		break;
	default:
		ibuf_free(b);
		*type = fin_u8(f) % IMSG_MAX;
		b = fin_payload(f);
		break;
	}
	return (b);
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init, runs;
	struct fin	 f;
	struct wchan	*w;
	struct ibuf	*b;
	struct imsg	 imsg;
	uint32_t	 type, wid;
	int		 i, steps = 0;

	if (!init) {
		setup();
		init = 1;
	}
	if (++runs % 500 == 0)
		db_fresh();
	fin_init(&f, data, size);
	(void)channel(1, IDENT_A, 0);
	(void)channel(2, "", 0);
	(void)channel(0, "", 1);
	(void)channel(0, "", 2);

	while (f.left > 0 && steps++ < 256) {
		uint8_t	 op = fin_u8(&f);

		switch (op % 8) {
		case 0:
			/* The parent: a new channel, or a session begins. */
			wid = fin_u8(&f) % 4;
			if (fin_u8(&f) & 1)
				(void)channel(wid, fin_u8(&f) & 1 ? IDENT_A :
				    IDENT_B, 0);
			else if ((w = wchan_find(wid)) != NULL) {
				(void)strlcpy(w->identity, fin_u8(&f) & 1 ?
				    IDENT_A : IDENT_B, sizeof(w->identity));
				wchan_update(w);
			}
			break;
		case 1:
			timers();
			break;
		case 3:
			if (jobs_chan() == NULL)
				(void)channel(0, "", 2);
			if ((w = jobs_chan()) == NULL)
				break;
			b = request(&f, &type, "");
			fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
			/* The provider's bad message ends storage: a jump. */
			fuzz_fatal_armed = 1;
			if (setjmp(fuzz_fatal_jmp) == 0)
				storage_dispatch_jobs(&w->ch, &imsg);
			fuzz_fatal_armed = 0;
			ibuf_free(b);
			break;
		case 2:
			if (stor.ctl == NULL)
				(void)channel(0, "", 1);
			if ((w = stor.ctl) == NULL)
				break;
			b = request(&f, &type, "");
			fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
			/* So does control's; a worker's may not. */
			fuzz_fatal_armed = 1;
			if (setjmp(fuzz_fatal_jmp) == 0)
				storage_dispatch_control(&w->ch, &imsg);
			fuzz_fatal_armed = 0;
			ibuf_free(b);
			break;
		default:
			/* Control's and the jobs' channels are not workers'. */
			if ((w = wchan_find(fin_u8(&f) % 4)) == NULL ||
			    w->control || w->jobs)
				break;
			b = request(&f, &type, w->identity);
			fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
			storage_dispatch_worker(&w->ch, &imsg);
			ibuf_free(b);
			break;
		}
	}
	timers();
	/* Every channel goes; nothing may be left behind. */
	while ((w = TAILQ_FIRST(&stor.chans)) != NULL)
		wchan_drop(w);
	timers();
	if (!TAILQ_EMPTY(&stor.round) || !TAILQ_EMPTY(&stor.dead) ||
	    stor.ctl != NULL || stor.writes != 0)
		abort();
	/* The search index is the messages at or below the mark, exactly. */
	if (runs % 50 == 0 && fts_in_step(dbpath) != 1)
		abort();
	for (i = 0; i < npeers; i++)
		close(peers[i]);
	npeers = 0;
	return (0);
}
