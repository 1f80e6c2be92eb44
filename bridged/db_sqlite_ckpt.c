/*
 * db_sqlite_ckpt.c: the WAL's checkpoints in a thread of their own.
 *
 * SQLite checkpoints in the connection that commits, once the WAL has
 * grown past 1000 pages: that commit's answers then wait while the WAL
 * is synced and copied back into the database (14-15 ms here, most of
 * it fdatasync), and so does every request that comes meanwhile. In
 * storage a second connection, used by one thread only, checkpoints
 * instead when the first says the WAL has grown: PASSIVE, so it never
 * makes the writer wait.
 *
 * The writer starts the WAL over only when a checkpoint has copied all
 * of it before the writer's next transaction, which one running beside
 * a busy writer never has. So once the WAL holds CKPT_RESTART pages,
 * the thread checkpoints until it is at most CKPT_CATCHUP pages behind,
 * and then the writer checkpoints once itself: those few pages, the
 * WAL synced since the thread synced it, and the WAL starts over. A
 * writer faster than the thread's checkpoints (they sync, it does not)
 * does that at CKPT_WAL_MAX pages whatever is left to copy, as SQLite
 * would have at every 1000.
 *
 * The thread logs nothing (the log goes through the event loop's
 * channel): the committing thread reports a failed checkpoint.
 */

#include <sys/types.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bridged.h"

#define CKPT_FRAMES	1000	/* WAL pages written between checkpoints */
#define CKPT_RESTART	4000	/* WAL pages before it starts over */
#define CKPT_CATCHUP	256	/* pages the writer's checkpoint copies */
#define CKPT_WAL_MAX	16000	/* pages, 64 MB: the writer's own at last */

struct sq_ckpt {
	pthread_t	 thread;
	pthread_mutex_t	 lock;
	pthread_cond_t	 cond;
	sqlite3		*sq;		/* the thread's own connection */
	int		 want;		/* the WAL has grown: checkpoint */
	int		 running;	/* the thread is checkpointing */
	int		 stop;
	int		 asked;		/* WAL pages when last asked */
	int		 copied;	/* WAL pages copied by the last one */
	int		 failed;	/* SQLite's code, for the log */
	uint64_t	 done;		/* checkpoints that copied */
};

/* The thread: a checkpoint each time it is asked, until told to stop. */
static void *
ckpt_run(void *arg)
{
	struct sq_ckpt	*c = arg;
	int		 rc, log, copied;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->want && !c->stop)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->stop)
			break;
		c->want = 0;
		c->running = 1;
		pthread_mutex_unlock(&c->lock);
		rc = sqlite3_wal_checkpoint_v2(c->sq, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
		pthread_mutex_lock(&c->lock);
		c->running = 0;
		if (rc == SQLITE_OK && copied >= 0) {
			c->copied = copied;
			c->done++;
		} else if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			c->failed = rc;	/* BUSY: sqlite3(1) checkpointing */
	}
	pthread_mutex_unlock(&c->lock);
	return (NULL);
}

/*
 * After each commit of the storage connection, with the pages in the
 * WAL: ask the thread for a checkpoint every CKPT_FRAMES of them, and
 * past CKPT_RESTART until it has caught up; then run the last one here.
 */
static int
ckpt_wal_hook(void *arg, sqlite3 *sq, const char *name, int frames)
{
	struct sq_ckpt	*c = arg;
	int		 failed, restart, rc, log, copied;

	restart = 0;
	pthread_mutex_lock(&c->lock);
	if (frames < c->asked || frames < c->copied)
		c->asked = c->copied = 0;	/* started over */
	if (!c->running && !c->want) {
		if ((frames >= CKPT_RESTART &&
		    frames - c->copied <= CKPT_CATCHUP) ||
		    frames >= CKPT_WAL_MAX)
			restart = 1;
		else if (frames >= CKPT_RESTART ||
		    frames - c->asked >= CKPT_FRAMES) {
			c->asked = frames;
			c->want = 1;
			pthread_cond_signal(&c->cond);
		}
	}
	failed = c->failed;
	c->failed = 0;
	pthread_mutex_unlock(&c->lock);
	if (failed != 0)
		log_warnx("database checkpoint: %s", sqlite3_errstr(failed));
	if (restart) {
		rc = sqlite3_wal_checkpoint_v2(sq, name,
		    SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_warnx("database checkpoint: %s",
			    sqlite3_errstr(rc));
	}
	return (SQLITE_OK);
}

/*
 * Checkpoint the database of sq (open on path) in a thread from now
 * on; NULL if that cannot be (logged): sq then checkpoints as SQLite
 * does by itself.
 */
struct sq_ckpt *
sq_ckpt_start(struct sqlite3 *sq, const char *path)
{
	struct sq_ckpt	*c;
	int		 rc;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("%s", __func__);
		return (NULL);
	}
	/*
	 * A connection that has read nothing does not know the file is
	 * in WAL mode, and its checkpoints do nothing: read the schema.
	 */
	if (sqlite3_open_v2(path, &c->sq, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, sq_vfs()) != SQLITE_OK ||
	    sqlite3_exec(c->sq, "SELECT count(*) FROM sqlite_master", NULL,
	    NULL, NULL) != SQLITE_OK) {
		log_warnx("database %s: checkpoint connection: %s", path,
		    c->sq != NULL ? sqlite3_errmsg(c->sq) : "no memory");
		sqlite3_close(c->sq);
		free(c);
		return (NULL);
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	if ((rc = pthread_create(&c->thread, NULL, ckpt_run, c)) != 0) {
		log_warnx("database %s: no checkpoint thread: %s", path,
		    strerror(rc));
		sqlite3_close(c->sq);
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->cond);
		free(c);
		return (NULL);
	}
	/* Replaces SQLite's own checkpoint after a commit. */
	sqlite3_wal_hook(sq, ckpt_wal_hook, c);
	return (c);
}

/* How many checkpoints the thread has run to their end. */
uint64_t
sq_ckpt_count(struct sq_ckpt *c)
{
	uint64_t	 n;

	if (c == NULL)
		return (0);
	pthread_mutex_lock(&c->lock);
	n = c->done;
	pthread_mutex_unlock(&c->lock);
	return (n);
}

/*
 * Before sq closes: stop the thread (a checkpoint under way ends
 * first) and close its connection; sq checkpoints by itself again.
 */
void
sq_ckpt_stop(struct sqlite3 *sq, struct sq_ckpt *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	sqlite3_close(c->sq);
	sqlite3_wal_autocheckpoint(sq, CKPT_FRAMES);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}
