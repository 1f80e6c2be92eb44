/*
 * db_sqlite_vfs.c: SQLite's own unix VFS, but a WAL frame goes to the
 * file in one write(2) instead of two. SQLite writes each page of a
 * commit as a 24-byte frame header and then the page, at the offset
 * right after it: two system calls a page, the largest part of a
 * commit's cost in the storage process. Here the header waits for its
 * page and both go in one call. Any other call on the file writes a
 * waiting header first, so what reaches the file, and in which order
 * against reads, syncs and truncations, is what SQLite asked for.
 * Only the WAL is wrapped; every other file is the unix VFS's own.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "bridged.h"

#define WAL_FRAME_HEADER	24
#define WAL_PAGE_MAX		65536

/* A WAL file: the unix VFS's file follows this struct. */
struct walfile {
	sqlite3_file		 base;
	sqlite3_file		*real;
	sqlite3_int64		 held_at;	/* offset of a waiting header */
	int			 held;
	unsigned char		 header[WAL_FRAME_HEADER];
	unsigned char		*frame;		/* header and page, joined */
	int			 framesz;
};

/* Room for the unix VFS's file after ours, aligned as it wants. */
#define WALFILE_SIZE \
	((sizeof(struct walfile) + 15) & ~(size_t)15)

static sqlite3_vfs	*unix_vfs;
static sqlite3_vfs	 wal_vfs;
static uint64_t		 frames_joined;

/* Write a waiting header as it came. */
static int
wal_release(struct walfile *w)
{
	if (!w->held)
		return (SQLITE_OK);
	w->held = 0;
	return (w->real->pMethods->xWrite(w->real, w->header,
	    WAL_FRAME_HEADER, w->held_at));
}

/* A write: a frame header waits for its page, a page joins it. */
static int
wal_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
	struct walfile	*w = (struct walfile *)f;
	unsigned char	*p;
	int		 rc;

	if (w->held && off == w->held_at + WAL_FRAME_HEADER && amt > 0 &&
	    amt <= WAL_PAGE_MAX) {
		if (w->framesz < WAL_FRAME_HEADER + amt) {
			/* No memory: the two writes SQLite asked for. */
			if ((p = sqlite3_realloc(w->frame,
			    WAL_FRAME_HEADER + amt)) == NULL) {
				if ((rc = wal_release(w)) != SQLITE_OK)
					return (rc);
				return (w->real->pMethods->xWrite(w->real,
				    buf, amt, off));
			}
			w->frame = p;
			w->framesz = WAL_FRAME_HEADER + amt;
		}
		memcpy(w->frame, w->header, WAL_FRAME_HEADER);
		memcpy(w->frame + WAL_FRAME_HEADER, buf, amt);
		w->held = 0;
		frames_joined++;
		return (w->real->pMethods->xWrite(w->real, w->frame,
		    WAL_FRAME_HEADER + amt, w->held_at));
	}
	if ((rc = wal_release(w)) != SQLITE_OK)
		return (rc);
	if (amt == WAL_FRAME_HEADER) {
		memcpy(w->header, buf, WAL_FRAME_HEADER);
		w->held_at = off;
		w->held = 1;
		return (SQLITE_OK);
	}
	return (w->real->pMethods->xWrite(w->real, buf, amt, off));
}

/* Close: what waits is written, the joined copy wiped. */
static int
wal_close(sqlite3_file *f)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc, rc2;

	rc = wal_release(w);
	if (w->frame != NULL) {
		explicit_bzero(w->frame, w->framesz);
		sqlite3_free(w->frame);
		w->frame = NULL;
	}
	rc2 = w->real->pMethods->xClose(w->real);
	return (rc != SQLITE_OK ? rc : rc2);
}

/* The other methods: the waiting header first, then the unix VFS's. */
static int
wal_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc;

	if ((rc = wal_release(w)) != SQLITE_OK)
		return (rc);
	return (w->real->pMethods->xRead(w->real, buf, amt, off));
}

/* Truncate, after the waiting header. */
static int
wal_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc;

	if ((rc = wal_release(w)) != SQLITE_OK)
		return (rc);
	return (w->real->pMethods->xTruncate(w->real, size));
}

/* Sync, after the waiting header. */
static int
wal_sync(sqlite3_file *f, int flags)
{
	struct walfile	*w = (struct walfile *)f;
	int		 rc;

	if ((rc = wal_release(w)) != SQLITE_OK)
		return (rc);
	return (w->real->pMethods->xSync(w->real, flags));
}

/* The size, counting the waiting header. */
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

/* File controls, after the waiting header (some sync or size). */
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

/* How many WAL frames went out whole, for the tests. */
uint64_t
sq_vfs_frames(void)
{
	return (frames_joined);
}
