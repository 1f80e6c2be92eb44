/*
 * db_sqlite_vfs.c: SQLite's own unix VFS, but a commit's WAL frames go
 * to the file in one write(2). SQLite writes each page of a commit as
 * a 24-byte frame header and then the page, at the offsets that follow
 * one another: two system calls a page, six pages a prompt's commit,
 * the largest part of its cost in the storage process. Here the writes
 * wait in memory while each goes on from where the last ended, and go
 * out together when the frame that commits (a header whose size of the
 * database is not 0) has its page; before any other call on the file
 * (a read, a sync, a truncation, its size), before a write elsewhere in
 * it, and when they pass WAL_HELD_MAX. So what reaches the file, and in
 * which order against reads, syncs and truncations, is what SQLite
 * asked for, and all of a commit is in the file before SQLite marks it
 * committed in the WAL index, where other connections look for it.
 * Only the WAL is wrapped; every other file is the unix VFS's own.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bridged.h"

#define WAL_FRAME_HEADER	24
/* The unix VFS writes less than 128 KiB in one call. */
#define WAL_HELD_MAX		(64 * 1024)

/* A WAL file: the unix VFS's file follows this struct. */
struct walfile {
	sqlite3_file		 base;
	sqlite3_file		*real;
	unsigned char		*held;		/* writes that wait, joined */
	int			 heldsz;	/* room in it */
	int			 heldlen;
	sqlite3_int64		 held_at;	/* where they go in the file */
	int			 commit;	/* the held frame commits */
};

/* Room for the unix VFS's file after ours, aligned as it wants. */
#define WALFILE_SIZE \
	((sizeof(struct walfile) + 15) & ~(size_t)15)

static sqlite3_vfs	*unix_vfs;
static sqlite3_vfs	 wal_vfs;
static uint64_t		 frames_seen, writes_made;

/* Write what waits, in one call. */
static int
wal_release(struct walfile *w)
{
	int	 len = w->heldlen;

	if (len == 0)
		return (SQLITE_OK);
	w->heldlen = 0;
	writes_made++;
	return (w->real->pMethods->xWrite(w->real, w->held, len, w->held_at));
}

/* Hold a write after the ones waiting; 0 if there is no room. */
static int
wal_hold(struct walfile *w, const void *buf, int amt, sqlite3_int64 off)
{
	unsigned char	*p;
	int		 need = w->heldlen + amt;

	if (amt <= 0 || need > WAL_HELD_MAX)
		return (0);
	if (need > w->heldsz) {
		if ((p = sqlite3_realloc(w->held, need)) == NULL)
			return (0);
		w->held = p;
		w->heldsz = need;
	}
	if (w->heldlen == 0)
		w->held_at = off;
	memcpy(w->held + w->heldlen, buf, amt);
	w->heldlen = need;
	return (1);
}

/*
 * A write: held while the writes follow on from each other, out with
 * the page of the frame that commits.
 */
static int
wal_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	struct walfile		*w = (struct walfile *)f;
	const unsigned char	*b = buf;
	int			 rc, commit_page = w->commit;

	/* A frame header's bytes 4-7: the database's size after a commit. */
	w->commit = 0;
	if (amt == WAL_FRAME_HEADER) {
		frames_seen++;
		w->commit = (b[4] | b[5] | b[6] | b[7]) != 0;
	}
	if (w->heldlen > 0 && (off != w->held_at + w->heldlen ||
	    w->heldlen + amt > WAL_HELD_MAX) &&
	    (rc = wal_release(w)) != SQLITE_OK)
		return (rc);
	if (!wal_hold(w, buf, amt, off)) {
		/* Larger than is held, or no memory: as SQLite asked. */
		if ((rc = wal_release(w)) != SQLITE_OK)
			return (rc);
		writes_made++;
		return (w->real->pMethods->xWrite(w->real, buf, amt, off));
	}
	if (commit_page)
		return (wal_release(w));
	return (SQLITE_OK);
}

/* Close: what waits is written, the held copy wiped. */
static int
wal_close(sqlite3_file *f)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc, rc2;

	rc = wal_release(w);
	if (w->held != NULL) {
		explicit_bzero(w->held, w->heldsz);
		sqlite3_free(w->held);
		w->held = NULL;
	}
	rc2 = w->real->pMethods->xClose(w->real);
	return (rc != SQLITE_OK ? rc : rc2);
}
/* The other methods: what waits first, then the unix VFS's. */
static int
wal_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc;

	if ((rc = wal_release(w)) != SQLITE_OK)
		return (rc);
	return (w->real->pMethods->xRead(w->real, buf, amt, off));
}

/* Truncate, after what waits. */
static int
wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc;

	if ((rc = wal_release(w)) != SQLITE_OK)
		return (rc);
	return (w->real->pMethods->xTruncate(w->real, size));
}

/* Sync, after what waits. */
static int
wal_sync(sqlite3_file *f, int flags)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc;

	if ((rc = wal_release(w)) != SQLITE_OK)
		return (rc);
	return (w->real->pMethods->xSync(w->real, flags));
}

/* The size, counting what waits. */
static int
wal_size(sqlite3_file *f, sqlite3_int64 *size)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc;

	if ((rc = wal_release(w)) != SQLITE_OK)
		return (rc);
	return (w->real->pMethods->xFileSize(w->real, size));
}

/* Locks, as the unix VFS keeps them. */
static int
wal_lock(sqlite3_file *f, int level)
{
	struct walfile	*w = (struct walfile *)f;

	return (w->real->pMethods->xLock(w->real, level));
}

/* Unlock, as the unix VFS does. */
static int
wal_unlock(sqlite3_file *f, int level)
{
	struct walfile	*w = (struct walfile *)f;

	return (w->real->pMethods->xUnlock(w->real, level));
}

/* A reserved lock, as the unix VFS sees it. */
static int
wal_reserved(sqlite3_file *f, int *out)
{
	struct walfile	*w = (struct walfile *)f;

	return (w->real->pMethods->xCheckReservedLock(w->real, out));
}

/* File controls, after what waits (some sync or size). */
static int
wal_control(sqlite3_file *f, int op, void *arg)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc;

	if ((rc = wal_release(w)) != SQLITE_OK)
		return (rc);
	return (w->real->pMethods->xFileControl(w->real, op, arg));
}

/* The sector size of the unix VFS. */
static int
wal_sector(sqlite3_file *f)
{
	struct walfile	*w = (struct walfile *)f;

	return (w->real->pMethods->xSectorSize(w->real));
}

/* The device's properties, as the unix VFS says. */
static int
wal_device(sqlite3_file *f)
{
	struct walfile	*w = (struct walfile *)f;

	return (w->real->pMethods->xDeviceCharacteristics(w->real));
}

static const sqlite3_io_methods wal_methods = {
	1,			/* no shared memory, no mapping: a WAL */
	wal_close,
	wal_read,
	wal_write,
	wal_truncate,
	wal_sync,
	wal_size,
	wal_lock,
	wal_unlock,
	wal_reserved,
	wal_control,
	wal_sector,
	wal_device,
	NULL, NULL, NULL, NULL, NULL, NULL
};

/* Open a file: a WAL is wrapped, any other is the unix VFS's own. */
static int
wal_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags,
    int *outflags)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc;

	(void)vfs;
	if ((flags & SQLITE_OPEN_WAL) == 0)
		return (unix_vfs->xOpen(unix_vfs, name, f, flags, outflags));
	memset(w, 0, sizeof(*w));
	w->real = (sqlite3_file *)((char *)f + WALFILE_SIZE);
	rc = unix_vfs->xOpen(unix_vfs, name, w->real, flags, outflags);
	/* SQLite closes what has methods, whatever xOpen said. */
	w->base.pMethods = w->real->pMethods != NULL ? &wal_methods : NULL;
	return (rc);
}

/*
 * The name of the VFS to open the database with, registered at the
 * first call; NULL (SQLite's default) if there is no unix VFS.
 */
const char *
sq_vfs(void)
{
	if (wal_vfs.zName != NULL)
		return (wal_vfs.zName);
	if ((unix_vfs = sqlite3_vfs_find("unix")) == NULL ||
	    unix_vfs->iVersion < 1)
		return (NULL);
	wal_vfs = *unix_vfs;
	wal_vfs.pNext = NULL;
	wal_vfs.szOsFile = (int)WALFILE_SIZE + unix_vfs->szOsFile;
	wal_vfs.zName = "bridged-wal";
	wal_vfs.xOpen = wal_open;
	if (sqlite3_vfs_register(&wal_vfs, 0) != SQLITE_OK) {
		wal_vfs.zName = NULL;
		return (NULL);
	}
	return (wal_vfs.zName);
}

/* How many frames SQLite wrote to a WAL, for the tests. */
uint64_t
sq_vfs_frames(void)
{
	return (frames_seen);
}

/* How many writes a WAL had, for the tests: one a commit. */
uint64_t
sq_vfs_writes(void)
{
	return (writes_made);
}
