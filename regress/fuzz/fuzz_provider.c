/*
 * fuzz_provider.c: the provider process's handlers of what its peers
 * send (bridged/provider.c, upstream.c and jobs.c, included whole to
 * reach their static handlers): any message a worker writes, well formed or not,
 * and any job message storage writes on the jobs channel, interleaved
 * with what the upstream transfers report. libcurl's part (xfer.c) is
 * replaced by a list of transfers that the input feeds, finishes or
 * fails in any order: a worker may cancel or vanish at any point.
 * What a worker sends wrong closes its channel, never ends the
 * provider; what storage or control sends wrong ends it (by design: a
 * jump back here).
 */

#include "../../bridged/provider.c"
#include "../../bridged/upstream.c"
#include "../../bridged/jobs.c"

#include <sys/socket.h>

#include "fuzz.h"

/* The transfers the provider started, as xfer.c would hold them. */
static struct xfer_list	 xfers = TAILQ_HEAD_INITIALIZER(xfers);
static int		 nxfers;

/* xfer.c's: nothing to set up. */
void
xfer_init(void (*idle)(void))
{
	(void)idle;
}

/* xfer.c's: a transfer, never sent anywhere. */
struct xfer *
xfer_new(const struct api *api, const struct provider_conf *pc,
    const char *url, const char *key, const struct xfer_ops *ops, void *arg)
{
	struct xfer	*x;

	(void)key;
	if (url == NULL || (x = calloc(1, sizeof(*x))) == NULL)
		abort();
	x->api = api;
	x->pc = pc;
	x->ops = ops;
	x->arg = arg;
	x->stream = ops->text != NULL;
	x->prompt = x->answer = -1;
	if ((x->url = strdup(url)) == NULL ||
	    (x->resp = ibuf_open(0)) == NULL)
		abort();
	TAILQ_INSERT_TAIL(&xfers, x, entry);
	nxfers++;
	return (x);
}

/* xfer.c's: forget a transfer. */
void
xfer_free(struct xfer *x)
{
	if (x == NULL)
		return;
	if (x->body != NULL)
		freezero(x->body, x->bodylen);
	ibuf_free(x->resp);
	free(x->url);
	TAILQ_REMOVE(&xfers, x, entry);
	nxfers--;
	free(x);
}

/* xfer.c's: started; the input decides what happens to it. */
int
xfer_start(struct xfer *x)
{
	x->active = 1;
	return (0);
}

/* xfer.c's: the next page. */
int
xfer_restart(struct xfer *x, const char *url)
{
	free(x->url);
	if ((x->url = strdup(url)) == NULL)
		abort();
	ibuf_reset(x->resp);
	return (xfer_start(x));
}
/* An identity: 64 hex digits, as a SHA-256 in hex. */
#define IDENT	"3f1a9c0b22de0123456789abcdef" \
	    "0123456789abcdef0123456789abcdef4567"
#define IDENT2	"00000000000000000000000000000000" \
	    "000000000000000000000000000000ff"

static int	 peers[16];
static int	 npeers;

/* A worker's channel, as the parent hands it over. */
static void
channel(uint32_t wid)
{
	struct imsg	 imsg;
	struct ibuf	*b;
	int		 sv[2];

	if (npeers == (int)(sizeof(peers) / sizeof(peers[0])))
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	fd_nonblock(sv[0]);
	peers[npeers++] = sv[1];
	if ((b = ibuf_open(16)) == NULL || ibuf_add_u32(b, wid) == -1 ||
	    ibuf_add_str(b, "") == -1)
		abort();
	fuzz_imsg(&imsg, IMSG_PARENT_CHANNEL, ibuf_data(b), ibuf_left(b));
	imsg.fd = sv[0];
	provider_dispatch_parent(NULL, &imsg);
	ibuf_free(b);
}

/* A worker's channel by id. */
static struct peer *
wfind(uint32_t wid)
{
	struct peer	*w;

	TAILQ_FOREACH(w, &pv.chans, entry)
		if (w->wid == wid)
			return (w);
	return (NULL);
}

/* A message a worker may send, well formed or not. */
static struct ibuf *
request(struct fin *f, uint32_t *type)
{
	struct ibuf	*b;
	const uint8_t	*p;
	size_t		 n;
	uint32_t	 v;
	int		 k;
	static const char *models[] = { "gemini-2.0-flash", "",
	    "g/gemini-2.0-flash", "o/gpt-4o", "x/y", "models/x" };

	if ((b = ibuf_open(64)) == NULL)
		abort();
	switch (fin_u8(f) % 7) {
	case 0:
		*type = IMSG_WORKER_MODELS;
		ibuf_add_u32(b, fin_u8(f) % 8);
		break;
	case 1:
		*type = IMSG_WORKER_GEN_BEGIN;
		ibuf_add_u32(b, fin_u8(f) % 8);
		ibuf_add_str(b, fin_u8(f) < 200 ? models[fin_u8(f) % 6] :
		    fin_str(f, 140));
		ibuf_add_str(b, fin_str(f, 300));
		ibuf_add_u32(b, fin_u8(f) < 200 ? 0 : fin_u32(f));
		ibuf_add_u32(b, fin_u8(f) < 128 ? GEN_TEMP_NONE : fin_u16(f));
		break;
	case 2:
	case 3:
		/* A request id, then pieces: one, or a few, or a broken one. */
		*type = IMSG_WORKER_GEN_PART;
		ibuf_add_u32(b, fin_u8(f) % 8);
		k = 1 + fin_u8(f) % 4;
		while (k-- > 0) {
			v = fin_u8(f);
			ibuf_add_u32(b, v < 240 ? v % ROLE_MAX : v % 4);
			v = fin_u8(f);
			ibuf_add_u32(b, v < 240 ? v & 1 : v % 3);
			p = fin_bytes(f, 2048, &n);
			ibuf_add_data(b, p, n);
		}
		if (fin_u8(f) < 8)
			ibuf_add_u32(b, fin_u32(f));
		break;
	case 4:
		*type = IMSG_WORKER_GEN_END;
		ibuf_add_u32(b, fin_u8(f) % 8);
		break;
	case 5:
		*type = IMSG_WORKER_CANCEL;
		ibuf_add_u32(b, fin_u8(f) % 8);
		break;
	default:
		ibuf_free(b);
		*type = fin_u8(f) % IMSG_MAX;
		b = fin_payload(f);
		break;
	}
	return (b);
}

/* The upstream does something to one of the transfers. */
static void
upstream(struct fin *f)
{
	struct xfer	*x;
	const uint8_t	*p;
	size_t		 n;
	int		 k;
	static const char *codes[] = { "upstream", "upstream-timeout",
	    "rate-limited", "too-long" };

	if (nxfers == 0)
		return;
	k = fin_u8(f) % nxfers;
	TAILQ_FOREACH(x, &xfers, entry)
		if (k-- == 0)
			break;
	if (x == NULL || !x->active)
		return;
	switch (fin_u8(f) % 5) {
	case 0:
		p = fin_bytes(f, 1024, &n);
		if (x->stream) {
			if (x->ops->queued != NULL)
				(void)x->ops->queued(x->arg);
			x->ops->text(x->arg, (const char *)p, n);
			x->sent += n;
		} else {
			ibuf_reset(x->resp);
			ibuf_add(x->resp, p, n);
		}
		break;
	case 1:
		if (x->stream) {
			strlcpy(x->finish, "STOP", sizeof(x->finish));
			x->prompt = fin_u8(f);
			x->answer = fin_u8(f);
		}
		x->ops->done(x->arg, x, NULL, NULL);
		break;
	case 2:
		x->busy = fin_u8(f) & 1;
		x->ops->done(x->arg, x, codes[fin_u8(f) % 4], "failed");
		break;
	case 3:
		/* A page in the API's own format. */
		if (!x->stream) {
			ibuf_reset(x->resp);
			ibuf_printf(x->resp, "{\"models\":[{\"name\":"
			    "\"models/%s\",\"supportedGenerationMethods\":"
			    "[\"generateContent\"]}]%s}", fin_u8(f) & 1 ?
			    "gemini-2.0-flash" : "m-x", fin_u8(f) & 1 ?
			    ",\"nextPageToken\":\"p2\"" : "");
			x->ops->done(x->arg, x, NULL, NULL);
		}
		break;
	case 4:
		if (x->stream && x->ops->queued != NULL)
			(void)x->ops->queued(x->arg);
		break;
	}
}

/* A job id: one of a few (now and then 0, which is not one), or any. */
static uint64_t
job(struct fin *f)
{
	uint8_t	 v = fin_u8(f);

	return (v < 248 ? v % 8 : fin_u64(f));
}

/* What storage sends on the jobs channel, well formed or not. */
static struct ibuf *
from_storage(struct fin *f, uint32_t *type)
{
	struct ibuf	*b;
	const uint8_t	*p;
	size_t		 n;
	uint32_t	 v;

	if ((b = ibuf_open(64)) == NULL)
		abort();
	switch (fin_u8(f) % 6) {
	case 0:
		*type = IMSG_STORAGE_JOB_QUEUED;
		ibuf_add_u64(b, job(f));
		v = fin_u8(f);
		ibuf_add_str(b, v < 128 ? IDENT : v < 240 ? IDENT2 :
		    fin_str(f, 80));
		v = fin_u8(f);
		ibuf_add_u32(b, v < 240 ? v % 4 : v < 248 ? JOBS_LIMIT_MAX :
		    fin_u32(f));
		break;
	case 1:
		*type = IMSG_STORAGE_JOB_SPEC;
		ibuf_add_u64(b, job(f));
		v = fin_u8(f);
		ibuf_add_u32(b, v < 240 ? v % JOB_KIND_MAX : v % 3);
		v = fin_u8(f);
		ibuf_add_u32(b, v < 240 ? 1 + v % 6 : v % 60);
		ibuf_add_str(b, fin_u8(f) < 200 ? "g/gemini-2.0-flash" :
		    fin_str(f, 140));
		ibuf_add_str(b, fin_u8(f) < 64 ? "" : "o/gpt-4o");
		break;
	case 2:
		*type = IMSG_STORAGE_JOB_PART;
		ibuf_add_u64(b, job(f));
		v = fin_u8(f);
		ibuf_add_u32(b, v < 240 ? v % ROLE_MAX : v % 4);
		p = fin_bytes(f, 2048, &n);
		ibuf_add_data(b, p, n);
		break;
	case 3:
		*type = fin_u8(f) < 192 ? IMSG_STORAGE_JOB_READY :
		    IMSG_STORAGE_JOB_GONE;
		ibuf_add_u64(b, job(f));
		break;
	default:
		ibuf_free(b);
		*type = fin_u8(f) % IMSG_MAX;
		b = fin_payload(f);
		break;
	}
	return (b);
}

static struct channel	 pchan;		/* to the parent */
static int		 far_parent = -1;

/* A jobs channel from the parent, storage at its far end. */
static void
jobs_open(void)
{
	int	 sv[2];

	if (npeers == (int)(sizeof(peers) / sizeof(peers[0])))
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	fd_nonblock(sv[0]);
	peers[npeers++] = sv[1];
	jobs_channel(sv[0]);
}

/* What went to the parent (REJECTs) is read and forgotten. */
static void
parent_drain(void)
{
	char	 buf[4096];

	(void)imsg_write(&pchan.ibuf);
	while (read(far_parent, buf, sizeof(buf)) > 0)
		;
}

/* One-time set-up: state as provider_main() leaves it. */
static void
setup(void)
{
	struct provider_conf	*pc;
	int			 i, sv[2];

	fuzz_quiet(0);
	/* The provider tells the parent of the workers it drops. */
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	fd_nonblock(sv[0]);
	fd_nonblock(sv[1]);
	far_parent = sv[1];
	channel_init(&pchan, sv[0], NULL, NULL, NULL);
	parent_chan = &pchan;
	signal(SIGPIPE, SIG_IGN);
	setenv("FUZZ_KEY", "fuzz-key-0123", 1);
	TAILQ_INIT(&pv.chans);
	TAILQ_INIT(&pv.dead);
	TAILQ_INIT(&pv.waiters);
	ev_timer_set(&pv.reap_timer, peer_reap, NULL);
	jobs_init();
	if ((pv.conf = config_new()) == NULL)
		abort();
	pv.conf->g.memory_limit = 4096;
	pv.conf->g.models_cache = 300;
	/* A Gemini block falling back on an OpenAI-compatible one. */
	for (i = 0; i < 2; i++) {
		if ((pc = calloc(1, sizeof(*pc))) == NULL)
			abort();
		strlcpy(pc->name, i == 0 ? "g" : "o", sizeof(pc->name));
		pc->type = i == 0 ? PROVIDER_GEMINI : PROVIDER_OPENAI;
		strlcpy(pc->url, "http://127.0.0.1:1/v1/", sizeof(pc->url));
		strlcpy(pc->key_env, "FUZZ_KEY", sizeof(pc->key_env));
		strlcpy(pc->model, i == 0 ? "gemini-2.0-flash" : "gpt-4o",
		    sizeof(pc->model));
		if (i == 0)
			strlcpy(pc->fallback, "o/gpt-4o",
			    sizeof(pc->fallback));
		pc->timeout = 300;
		TAILQ_INSERT_TAIL(&pv.conf->providers, pc, entry);
	}
	provider_config(1);
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	struct fin	 f;
	struct peer	*w;
	struct ibuf	*b;
	struct imsg	 imsg;
	struct pvd	*p;
	uint32_t	 type;
	int		 i, steps = 0;

	if (!init) {
		setup();
		init = 1;
	}
	fin_init(&f, data, size);
	channel(1);
	channel(2);
	jobs_open();

	while (f.left > 0 && steps++ < 256) {
		switch (fin_u8(&f) % 10) {
		case 0:
			channel(fin_u8(&f) % 4);
			break;
		case 8:
			if (!jb.have || jb.ch.dead)
				jobs_open();
			b = from_storage(&f, &type);
			fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
			/* Storage's bad message ends the provider: a jump. */
			fuzz_fatal_armed = 1;
			if (setjmp(fuzz_fatal_jmp) == 0)
				provider_dispatch_jobs(&jb.ch, &imsg);
			fuzz_fatal_armed = 0;
			ibuf_free(b);
			break;
		case 1:
		case 2:
			upstream(&f);
			break;
		case 3:
			if (ev_timer_pending(&pv.reap_timer)) {
				ev_timer_del(&pv.reap_timer);
				peer_reap(NULL);
			}
			if (fin_u8(&f) & 1)
				TAILQ_FOREACH(p, &up.pvds, entry)
					models_forget(p);
			break;
		default:
			if ((w = wfind(fin_u8(&f) % 4)) == NULL)
				break;
			b = request(&f, &type);
			if (w->wid == 0 && type == IMSG_WORKER_MODELS)
				type = IMSG_CTL_MODELS;
			fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
			/* Control's (id 0) ends it too; a worker's may not. */
			fuzz_fatal_armed = w->wid == 0;
			if (setjmp(fuzz_fatal_jmp) == 0)
				provider_dispatch_worker(&w->ch, &imsg);
			fuzz_fatal_armed = 0;
			ibuf_free(b);
			parent_drain();
			break;
		}
	}
	/* Every peer goes: every request and transfer must go too. */
	while ((w = TAILQ_FIRST(&pv.chans)) != NULL)
		peer_drop(w);
	if (jb.have && !jb.ch.dead)
		channel_shutdown(&jb.ch);
	jobs_closed(&jb.ch);
	jb.have = 0;
	TAILQ_FOREACH(p, &up.pvds, entry) {
		if (p->listing != NULL)
			listing_end(p, "upstream", "over");
		models_forget(p);
	}
	ev_timer_del(&pv.reap_timer);
	peer_reap(NULL);
	if (nxfers != 0 || !TAILQ_EMPTY(&pv.waiters) ||
	    !TAILQ_EMPTY(&up.gens))
		abort();
	for (i = 0; i < npeers; i++)
		close(peers[i]);
	npeers = 0;
	return (0);
}
