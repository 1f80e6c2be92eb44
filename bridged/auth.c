/*
 * auth.c: the parent's side of `identity token`: the tokens of the
 * file, read as root and kept only as SHA-256 hashes; issued tokens,
 * which storage checks by their hash; and the limit on wrong tokens
 * from one address. The identity is the token's hash.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bridged.h"

#define TOKENS_MAX	100000
#define FAIL_SLOTS	1024		/* addresses remembered */
#define FAIL_WINDOW	60000		/* ms */

/* Wrong tokens from one address in the current minute. */
struct fail_slot {
	char		 addr[NI_MAXHOST];
	uint64_t	 start;		/* ms, the first of the minute */
	int		 count;
};

static struct fail_slot	 fails[FAIL_SLOTS];

static char	(*hashes)[IDENTITY_LEN + 1];
static size_t	 nhashes;

/* qsort(3) and bsearch(3) order of token hashes. */
static int
hash_cmp(const void *a, const void *b)
{
	return (strcmp(a, b));
}

/*
 * Read the token file; the running set stays if it cannot be read.
 * No file ("") means issued tokens only.
 */
int
auth_load(const char *path)
{
	char		(*new)[IDENTITY_LEN + 1] = NULL;
	uint8_t		*buf;
	char		*line, *next, *end;
	size_t		 len, n = 0;

	if (*path == '\0') {
		freezero(hashes, nhashes * sizeof(*hashes));
		hashes = NULL;
		nhashes = 0;
		return (0);
	}
	if (read_file(path, &buf, &len) == -1)
		return (-1);
	if ((new = calloc(TOKENS_MAX, sizeof(*new))) == NULL)
		fatal("%s", __func__);
	for (line = (char *)buf; line < (char *)buf + len; line = next) {
		if ((end = memchr(line, '\n', (char *)buf + len - line)) ==
		    NULL)
			end = (char *)buf + len;
		next = end + 1;
		if (end > line && end[-1] == '\r')
			end--;
		if (end == line || *line == '#')
			continue;
		if (n == TOKENS_MAX) {
			log_warnx("%s: more than %d tokens", path, TOKENS_MAX);
			break;
		}
		sha256_hex(line, end - line, new[n++]);
	}
	freezero(buf, len);
	if (n == 0) {
		log_warnx("%s: no tokens", path);
		free(new);
		return (-1);
	}
	qsort(new, n, sizeof(*new), hash_cmp);
	freezero(hashes, nhashes * sizeof(*hashes));
	hashes = new;
	nhashes = n;
	return (0);
}

/* The slot of an address, or the oldest one to reuse for it. */
static struct fail_slot *
fail_slot(const char *addr, uint64_t now)
{
	struct fail_slot	*f, *old = &fails[0];
	size_t			 i;

	for (i = 0; i < FAIL_SLOTS; i++) {
		f = &fails[i];
		if (strcmp(f->addr, addr) == 0) {
			if (now - f->start >= FAIL_WINDOW) {
				f->start = now;
				f->count = 0;
			}
			return (f);
		}
		if (f->start < old->start)
			old = f;
	}
	(void)strlcpy(old->addr, addr, sizeof(old->addr));
	old->start = now;
	old->count = 0;
	return (old);
}

/* Has this address used up its wrong tokens for the minute? */
static int
auth_banned(const char *addr)
{
	struct fail_slot	*f = fail_slot(addr, ev_now_ms());

	return (f->count >= parent_conf->g.auth_failures);
}

/* Tell the worker; storage first hears of an accepted identity. */
static void
auth_reply(struct child *c, uint32_t verdict, const char *models)
{
	struct ibuf	*b;

	if (verdict == AUTH_ACCEPTED)
		storage_session(c);
	if ((b = channel_create(&c->chan, IMSG_PARENT_AUTH, 0, 128 +
	    strlen(models))) == NULL ||
	    ibuf_add_u32(b, verdict) == -1 ||
	    ibuf_add_str(b, c->identity) == -1 ||
	    ibuf_add_str(b, models) == -1)
		fatal("%s", __func__);
	channel_send(&c->chan, b);
}

/* The verdict on a token; a wrong one counts against its address. */
static void
auth_done(struct child *c, int ok, const char *hash, const char *models)
{
	struct fail_slot	*f;
	uint32_t		 verdict = AUTH_ACCEPTED;

	c->auth_pending = 0;
	if (ok)
		(void)strlcpy(c->identity, hash, sizeof(c->identity));
	else {
		c->identity[0] = '\0';
		f = fail_slot(c->addr, ev_now_ms());
		f->count++;
		verdict = f->count >= parent_conf->g.auth_failures ?
		    AUTH_BANNED : AUTH_REFUSED;
		metrics_auth_failure();
		log_info("session %u: unknown token from %s", c->sid, c->addr);
		parent_event(NULL, "session %u: auth refused from %s%s",
		    c->sid, c->addr, verdict == AUTH_BANNED ?
		    " (too many wrong tokens)" : "");
	}
	auth_reply(c, verdict, ok ? models : "");
}

/*
 * A token from a client: one of the file's, else one storage may
 * know as issued. An address past its wrong tokens of the minute is
 * turned away without a look at the token.
 */
void
auth_check(struct child *c, const char *token)
{
	struct child	*storage;
	struct ibuf	*b;
	char		 hash[IDENTITY_LEN + 1];

	if (auth_banned(c->addr)) {
		metrics_auth_failure();
		parent_event(NULL, "session %u: auth refused from %s (too"
		    " many wrong tokens)", c->sid, c->addr);
		auth_reply(c, AUTH_BANNED, "");
		return;
	}
	sha256_hex(token, strlen(token), hash);
	if (nhashes > 0 && bsearch(hash, hashes, nhashes, sizeof(*hashes),
	    hash_cmp) != NULL) {
		auth_done(c, 1, hash, "");
		return;
	}
	if ((storage = parent_storage()) == NULL) {
		auth_done(c, 0, hash, "");
		return;
	}
	c->auth_pending = 1;
	if ((b = channel_create(&storage->chan, IMSG_PARENT_TOKEN, 0,
	    IDENTITY_LEN + 16)) == NULL || ibuf_add_u32(b, c->wid) == -1 ||
	    ibuf_add_str(b, hash) == -1)
		fatal("%s", __func__);
	channel_send(&storage->chan, b);
	explicit_bzero(hash, sizeof(hash));
}

/* IMSG_STORAGE_TOKEN: u32 worker id, u32 valid, str hash, str models. */
int
auth_storage(struct imsg *imsg)
{
	struct ireader	 ir;
	struct child	*c;
	const char	*hash, *models;
	uint32_t	 wid, ok;

	ir_init(&ir, imsg);
	wid = ir_u32(&ir);
	ok = ir_u32(&ir);
	hash = ir_str(&ir);
	models = ir_str(&ir);
	if (ir_end(&ir) == -1 || ok > 1 || strlen(hash) != IDENTITY_LEN ||
	    strlen(models) >= TOKEN_MODELS_MAX)
		return (-1);
	TAILQ_FOREACH(c, &children, entry)
		if (c->id == PROC_WORKER && c->wid == wid)
			break;
	/* The worker may have gone, or been asked again meanwhile. */
	if (c == NULL || !c->auth_pending || c->chan.dead)
		return (0);
	auth_done(c, ok, hash, models);
	return (0);
}

/* Storage went away: what waited on it is refused. */
void
auth_storage_lost(void)
{
	struct child	*c;

	TAILQ_FOREACH(c, &children, entry)
		if (c->id == PROC_WORKER && c->auth_pending && !c->chan.dead)
			auth_done(c, 0, "", "");
}
