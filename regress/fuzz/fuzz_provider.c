/*
 * fuzz_provider.c: the provider process's handlers of what workers
 * send (bridged/provider.c, included whole to reach its static
 * handlers), interleaved with what the upstream transfers report.
 * libcurl's part (xfer.c) is replaced by a list of transfers that the
 * input finishes, feeds or fails in any order: a worker may cancel or
 * vanish at any point, and may send anything at all.
 */

#include "../../bridged/provider.c"

#include <sys/socket.h>

#include "fuzz.h"

int	sandbox_enter(enum sandbox_role, const struct sandbox_conf *);

/* The sandbox is not what is fuzzed here. */
int
sandbox_enter(enum sandbox_role role, const struct sandbox_conf *sc)
{
	(void)role;
	(void)sc;
	return (0);
}

/* The transfers the provider started, as xfer.c would hold them. */
static struct xfer_list	 xfers = TAILQ_HEAD_INITIALIZER(xfers);
static int		 nxfers;

/* xfer.c's: nothing to set up. */
void
xfer_init(const struct provider_conf *pc)
{
	(void)pc;
}

/* xfer.c's: a transfer, never sent anywhere. */
struct xfer *
xfer_new(enum xfer_kind kind, const char *url, const char *key)
{
	struct xfer	*x;

	if (url == NULL || key == NULL || (x = calloc(1, sizeof(*x))) == NULL)
		abort();
	x->kind = kind;
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
	free(x->models);
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
static struct wchan *
wfind(uint32_t wid)
{
	struct wchan	*w;

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
	static const char *models[] = { "gemini-2.0-flash", "", "a/b",
	    "models/x" };

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
		ibuf_add_str(b, fin_u8(f) < 200 ? models[fin_u8(f) % 4] :
		    fin_str(f, 140));
		ibuf_add_str(b, fin_str(f, 300));
		break;
	case 2:
	case 3:
		*type = IMSG_WORKER_GEN_PART;
		ibuf_add_u32(b, fin_u8(f) % 8);
		ibuf_add_u32(b, fin_u8(f) % 4);
		ibuf_add_u32(b, fin_u8(f) % 3);
		p = fin_bytes(f, 2048, &n);
		ibuf_add_data(b, p, n);
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
	switch (fin_u8(f) % 4) {
	case 0:
		p = fin_bytes(f, 1024, &n);
		if (x->kind == XFER_GEN && x->req != NULL)
			gen_chunk(x, (const char *)p, n);
		else if (x->kind == XFER_MODELS) {
			ibuf_reset(x->resp);
			ibuf_add(x->resp, p, n);
		}
		break;
	case 1:
		if (x->kind == XFER_MODELS)
			listing_page(x);
		else {
			strlcpy(x->finish, "STOP", sizeof(x->finish));
			gen_end(x, NULL, NULL);
		}
		break;
	case 2:
		if (x->kind == XFER_MODELS)
			listing_end(codes[fin_u8(f) % 4], "failed");
		else
			gen_end(x, codes[fin_u8(f) % 4], "failed");
		break;
	case 3:
		if (x->kind == XFER_GEN && x->req != NULL)
			gen_fail(x, "upstream-timeout", "no time left");
		break;
	}
}

/* One-time set-up: state as provider_main() leaves it. */
static void
setup(void)
{
	fuzz_quiet(0);
	TAILQ_INIT(&pv.chans);
	TAILQ_INIT(&pv.dead);
	TAILQ_INIT(&pv.waiters);
	ev_timer_set(&pv.reap_timer, wchan_reap, NULL);
	if ((pv.conf = config_new()) == NULL)
		abort();
	pv.conf->g.memory_limit = 4096;
	pv.conf->g.models_cache = 300;
	strlcpy(pv.pc.url, "http://127.0.0.1:1/v1beta", sizeof(pv.pc.url));
	pv.pc.timeout = 300;
	pv.have_pc = 1;
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	struct fin	 f;
	struct wchan	*w;
	struct ibuf	*b;
	struct imsg	 imsg;
	uint32_t	 type;
	int		 i, steps = 0;

	if (!init) {
		setup();
		init = 1;
	}
	fin_init(&f, data, size);
	if ((pv.key = strdup("fuzz-key")) == NULL)
		abort();
	pv.keylen = strlen(pv.key);
	channel(1);
	channel(2);

	while (f.left > 0 && steps++ < 256) {
		switch (fin_u8(&f) % 8) {
		case 0:
			channel(fin_u8(&f) % 4);
			break;
		case 1:
		case 2:
			upstream(&f);
			break;
		case 3:
			if (ev_timer_pending(&pv.reap_timer)) {
				ev_timer_del(&pv.reap_timer);
				wchan_reap(NULL);
			}
			if (fin_u8(&f) & 1)
				models_forget();
			break;
		default:
			if ((w = wfind(fin_u8(&f) % 4)) == NULL)
				break;
			b = request(&f, &type);
			fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
			provider_dispatch_worker(&w->ch, &imsg);
			ibuf_free(b);
			break;
		}
	}
	/* Every worker goes: every request and transfer must go too. */
	while ((w = TAILQ_FIRST(&pv.chans)) != NULL)
		wchan_drop(w);
	if (pv.listing != NULL)
		listing_end("upstream", "over");
	ev_timer_del(&pv.reap_timer);
	wchan_reap(NULL);
	if (nxfers != 0 || !TAILQ_EMPTY(&pv.waiters))
		abort();
	models_forget();
	key_wipe();
	for (i = 0; i < npeers; i++)
		close(peers[i]);
	npeers = 0;
	return (0);
}
