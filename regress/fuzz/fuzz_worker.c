/*
 * fuzz_worker.c: bridged-worker's handlers (bridged/worker.c, included
 * whole to reach its static handlers) of what its peers send: the
 * parent (a client, AUTH, KILL, anything), storage and the provider
 * (answers to the requests the worker really sent, and anything else),
 * with a plain-TCP client writing any bytes. A malformed message from
 * a peer is fatal to the worker by design: fatal(), exit() and
 * _exit() come back here, and the worker is set up afresh.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <tls.h>
#include <unistd.h>

#include "bridged.h"
#include "fuzz.h"

void	fuzz_exit(int) __attribute__((__noreturn__));
#define exit(s)		fuzz_exit(s)
#define _exit(s)	fuzz_exit(s)

#include "../../bridged/worker.c"

#undef exit
#undef _exit

#ifndef nitems
#define nitems(a)	(sizeof((a)) / sizeof((a)[0]))
#endif

/*
 * An input that ends the worker (exit, fatal) jumps back here past
 * whatever the exiting code held on its stack, which the process's
 * end would have reclaimed: LeakSanitizer looks only at inputs that
 * did not end it. (proto.c's own leaks are fuzz_proto's to find.)
 */
int	__lsan_is_turned_off(void);
static int	 ever_exited, exiting;

/* LeakSanitizer's hook: no leak check after an input that exited. */
int
__lsan_is_turned_off(void)
{
	if (fuzz_fatals > 0)
		ever_exited = 1;	/* fatal() jumps too */
	return (fuzz_fatals > 0 || (exiting && ever_exited));
}

/* The process ends: the check at exit sees what exits left behind. */
static void
mark_exiting(void)
{
	exiting = 1;
}

/* exit(): the worker is over; the target takes over. */
void
fuzz_exit(int status)
{
	(void)status;
	fuzz_fatals++;
	ever_exited = 1;
	if (fuzz_fatal_armed)
		longjmp(fuzz_fatal_jmp, 2);
	abort();
}

/* An identity: 64 hex digits, as a SHA-256 in hex. */
#define IDENT	"3f1a9c0b22de0123456789abcdef" \
	    "0123456789abcdef0123456789abcdef4567"

/* The far ends: parent, storage, provider, client. */
static struct channel	 pchan;
static int		 far_parent = -1, far_storage = -1;
static int		 far_provider = -1, far_client = -1;
/* A message being handled: freed even when the handler jumps out. */
static struct ibuf	*held;
/* The last request ids the worker sent, by type. */
static uint32_t		 last_id[IMSG_MAX];

/* Note the requests a peer got; read and forget the rest. */
static void
far_read(int fd)
{
	struct imsgbuf	 ib;
	struct imsg	 imsg;
	uint32_t	 id;

	if (fd == -1)
		return;
	imsgbuf_init(&ib, fd);
	while (imsg_read(&ib) > 0)
		while (imsg_get(&ib, &imsg) == 1) {
			if (imsg.hdr.type < IMSG_MAX && imsg.datalen >= 4) {
				memcpy(&id, imsg.data, sizeof(id));
				last_id[imsg.hdr.type] = id;
			}
			imsg_free(&imsg);
		}
	/* A message cut in two: its ids are lost, which is fine. */
	imsgbuf_clear(&ib);
}

/* Write what the worker queued and read it at the far ends. */
static void
pump(void)
{
	char	 buf[16384];

	if (!w.storage.dead)
		(void)imsg_write(&w.storage.ibuf);
	if (!w.provider.dead)
		(void)imsg_write(&w.provider.ibuf);
	if (!pchan.dead)
		(void)imsg_write(&pchan.ibuf);
	far_read(far_storage);
	far_read(far_provider);
	far_read(far_parent);
	if (far_client != -1)
		while (read(far_client, buf, sizeof(buf)) > 0)
			;
}

/* A socket pair: the worker's end, the far end (non-blocking). */
static int
pair(int *far)
{
	int	 sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	fd_nonblock(sv[0]);
	fd_nonblock(sv[1]);
	*far = sv[1];
	return (sv[0]);
}

/* A worker as main() leaves it, then handed a client. */
static void
start(struct fin *f)
{
	struct imsg	 imsg;
	struct ibuf	*b;

	memset(&w, 0, sizeof(w));
	memset(last_id, 0, sizeof(last_id));
	w.fd = -1;
	w.state = W_IDLE;
	TAILQ_INIT(&w.sreqs);
	w.storage.dead = w.provider.dead = 1;
	ev_timer_set(&w.handshake_timer, handshake_timeout, NULL);
	ev_timer_set(&w.idle_timer, idle_timeout, NULL);
	ev_timer_set(&w.storage_timer, storage_check, NULL);
	ev_timer_set(&w.close_timer, close_timeout, NULL);
	ev_timer_set(&w.read_timer, read_again, NULL);
	if ((w.conf = config_new()) == NULL)
		abort();
	w.conf->g.timeout = 300;
	w.conf->g.handshake_timeout = 10;
	w.conf->g.identity = fin_u8(f) % 3 == 2 ? IDENTITY_TOKEN :
	    IDENTITY_IP;
	w.conf->g.line_max = 64 + fin_u16(f);
	w.conf->g.memory_limit = 1024 + fin_u16(f) * 16;
	channel_init(&pchan, pair(&far_parent), NULL, NULL, NULL);
	parent_chan = &pchan;
	worker_storage_open(pair(&far_storage));
	worker_provider_open(pair(&far_provider));

	if ((b = held = ibuf_open(128)) == NULL)
		abort();
	ibuf_add_u32(b, 7);
	ibuf_add_str(b, "192.0.2.7");
	ibuf_add_u32(b, 50123);
	ibuf_add_str(b, "192.0.2.10");
	ibuf_add_u32(b, 65432);
	ibuf_add_str(b, w.conf->g.identity == IDENTITY_TOKEN ? "" : IDENT);
	ibuf_add_u64(b, 1700000000);
	ibuf_add_str(b, fin_u8(f) == 0xff ? "too many clients" : "");
	ibuf_add_u32(b, 0);
	fuzz_imsg(&imsg, IMSG_PARENT_CLIENT, ibuf_data(b), ibuf_left(b));
	imsg.fd = pair(&far_client);
	worker_dispatch_parent(&pchan, &imsg);
	ibuf_free(b);
	held = NULL;
}

/* Everything the worker held goes, as its exit would free it. */
static void
stop(void)
{
	struct sreq	*r;

	ev_timer_del(&w.handshake_timer);
	ev_timer_del(&w.idle_timer);
	ev_timer_del(&w.storage_timer);
	ev_timer_del(&w.close_timer);
	ev_timer_del(&w.read_timer);
	proto_free(w.proto);
	ibuf_free(w.out);
	if (w.fd != -1) {
		ev_del(w.fd);
		close(w.fd);
	}
	if (!w.storage.dead)
		channel_shutdown(&w.storage);
	if (!w.provider.dead)
		channel_shutdown(&w.provider);
	if (!pchan.dead)
		channel_shutdown(&pchan);
	while ((r = TAILQ_FIRST(&w.sreqs)) != NULL) {
		TAILQ_REMOVE(&w.sreqs, r, entry);
		ibuf_free(r->payload);
		free(r);
	}
	config_free(w.conf);
	tls_material_wipe(&w.tlsm);
	memset(&w, 0, sizeof(w));
	close(far_parent);
	close(far_storage);
	close(far_provider);
	close(far_client);
	far_parent = far_storage = far_provider = far_client = -1;
}

/* An id: the one the worker used for this type, or another. */
static uint32_t
pick(struct fin *f, uint32_t type)
{
	uint8_t	 b = fin_u8(f);

	if (b < 200)
		return (last_id[type]);
	return (b < 230 ? last_id[type] + 1 : fin_u32(f));
}

/* What storage says: answers to what the worker asked, or anything. */
static struct ibuf *
from_storage(struct fin *f, uint32_t *type)
{
	static const uint32_t asked[] = { IMSG_WORKER_STORE,
	    IMSG_WORKER_SUMMARY, IMSG_WORKER_HISTORY, IMSG_WORKER_CONTEXT,
	    IMSG_WORKER_COUNT, IMSG_WORKER_SUBMIT, IMSG_WORKER_JOBS,
	    IMSG_WORKER_RESULT, IMSG_WORKER_KILL, IMSG_WORKER_ADMIT,
	    IMSG_WORKER_CONV_NEW, IMSG_WORKER_CONV_LIST,
	    IMSG_WORKER_CONV_SET, IMSG_WORKER_CONV_DELETE,
	    IMSG_WORKER_SEARCH, IMSG_WORKER_EXPORT, IMSG_WORKER_IMPORT,
	    IMSG_WORKER_USAGE, IMSG_WORKER_USAGE_GET };
	static const uint32_t convs[] = { IMSG_WORKER_CONTEXT,
	    IMSG_WORKER_CONV_NEW, IMSG_WORKER_CONV_LIST,
	    IMSG_WORKER_EXPORT, IMSG_WORKER_IMPORT };
	static const char *codes[] = { "", "rate-limited", "quota",
	    "not-allowed", "no-such-conversation", "bad-argument" };
	struct ibuf	*b;
	const uint8_t	*p;
	size_t		 n;
	uint32_t	 id;

	id = pick(f, asked[fin_u8(f) % nitems(asked)]);
	if ((b = ibuf_open(64)) == NULL)
		abort();
	switch (fin_u8(f) % 15) {
	case 5:
		*type = IMSG_STORAGE_JOB_LINE;
		ibuf_add_u32(b, id);
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u32(b, fin_u8(f) % (JOB_STATE_MAX + 1));
		ibuf_add_str(b, fin_str(f, 140));
		ibuf_add_u64(b, fin_u64(f));
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_str(b, IDENT);
		ibuf_add_str(b, fin_str(f, 300));
		break;
	case 6:
		*type = IMSG_STORAGE_JOB_HEAD;
		ibuf_add_u32(b, id);
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u32(b, fin_u8(f) % (JOB_STATE_MAX + 1));
		break;
	case 7:
		*type = IMSG_STORAGE_JOB_CHUNK;
		ibuf_add_u32(b, id);
		ibuf_add_u32(b, fin_u8(f) % (CHUNK_KIND_MAX + 1));
		p = fin_bytes(f, 2048, &n);
		ibuf_add_data(b, p, n);
		break;
	case 8:
		*type = IMSG_STORAGE_JOB_END;
		ibuf_add_u32(b, id);
		ibuf_add_u32(b, fin_u8(f) % (JOB_STATE_MAX + 1));
		ibuf_add_str(b, fin_str(f, 140));
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_str(b, fin_str(f, 40));
		ibuf_add_str(b, fin_str(f, 40));
		ibuf_add_str(b, fin_str(f, 300));
		break;
	case 9:
		*type = IMSG_STORAGE_ADMIT;
		ibuf_add_u32(b, pick(f, IMSG_WORKER_ADMIT));
		ibuf_add_str(b, fin_u8(f) < 200 ? codes[fin_u8(f) % 3] :
		    fin_str(f, 40));
		ibuf_add_str(b, fin_text(f, 200));
		break;
	case 10:
		*type = IMSG_STORAGE_LINE;
		ibuf_add_u32(b, fin_u8(f) & 1 ? pick(f, IMSG_WORKER_USAGE_GET) :
		    id);
		ibuf_add_str(b, fin_text(f, 300));
		break;
	case 11:
		*type = IMSG_STORAGE_REFUSED;
		ibuf_add_u32(b, id);
		ibuf_add_str(b, codes[fin_u8(f) % nitems(codes)]);
		ibuf_add_str(b, fin_text(f, 200));
		break;
	case 12:
		*type = IMSG_STORAGE_DELETED;
		ibuf_add_u32(b, fin_u8(f) & 1 ?
		    pick(f, IMSG_WORKER_CONV_DELETE) : id);
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u64(b, fin_u8(f) < 200 ? fin_u8(f) : fin_u64(f));
		break;
	case 13:
		*type = IMSG_STORAGE_CONV;
		ibuf_add_u32(b, fin_u8(f) < 200 ?
		    pick(f, convs[fin_u8(f) % nitems(convs)]) : id);
		ibuf_add_u64(b, 1 + fin_u8(f) % 16);
		ibuf_add_u64(b, fin_u8(f) < 200 ? 1700000000 + fin_u16(f) :
		    fin_u64(f));
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_str(b, fin_u8(f) & 1 ? "" : fin_text(f, 40));
		ibuf_add_str(b, fin_u8(f) & 1 ? "g/gemini-2.0-flash" :
		    fin_text(f, 140));
		ibuf_add_str(b, fin_u8(f) & 1 ? "" : fin_text(f, 40));
		ibuf_add_str(b, fin_u8(f) < 240 ? fin_text(f, 300) :
		    fin_str(f, 300));
		break;
	case 14:
		*type = IMSG_STORAGE_MATCH;
		ibuf_add_u32(b, fin_u8(f) < 200 ?
		    pick(f, IMSG_WORKER_SEARCH) : id);
		ibuf_add_u64(b, 1 + fin_u8(f) % 16);
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u64(b, 1700000000 + fin_u16(f));
		ibuf_add_u32(b, fin_u8(f) % (ROLE_MAX + 1));
		p = fin_bytes(f, 512, &n);
		ibuf_add_data(b, p, n);
		break;
	case 0:
		*type = IMSG_STORAGE_STORED;
		ibuf_add_u32(b, id);
		ibuf_add_u64(b, fin_u8(f));
		break;
	case 1:
		*type = IMSG_STORAGE_ITEM;
		ibuf_add_u32(b, id);
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u64(b, fin_u64(f));
		ibuf_add_u32(b, fin_u8(f) % 4);
		p = fin_bytes(f, 2048, &n);
		ibuf_add_data(b, p, n);
		break;
	case 2:
		*type = IMSG_STORAGE_END;
		ibuf_add_u32(b, id);
		ibuf_add_u64(b, fin_u8(f) < 200 ? fin_u8(f) : fin_u64(f));
		break;
	case 3:
		*type = IMSG_STORAGE_ERROR;
		ibuf_add_u32(b, id);
		ibuf_add_str(b, fin_str(f, 300));
		break;
	default:
		ibuf_free(b);
		*type = fin_u8(f) % IMSG_MAX;
		b = fin_payload(f);
		break;
	}
	return (b);
}

/* What the provider says. */
static struct ibuf *
from_provider(struct fin *f, uint32_t *type)
{
	struct ibuf	*b;
	const uint8_t	*p;
	size_t		 n;

	if ((b = ibuf_open(64)) == NULL)
		abort();
	switch (fin_u8(f) % 6) {
	case 0:
		*type = IMSG_PROVIDER_MODEL;
		ibuf_add_u32(b, pick(f, IMSG_WORKER_MODELS));
		ibuf_add_str(b, fin_str(f, 140));
		ibuf_add_u64(b, fin_u64(f));
		ibuf_add_u64(b, fin_u64(f));
		break;
	case 1:
		*type = IMSG_PROVIDER_MODELS_END;
		ibuf_add_u32(b, pick(f, IMSG_WORKER_MODELS));
		ibuf_add_str(b, fin_str(f, 200));
		break;
	case 2:
		*type = IMSG_PROVIDER_CHUNK;
		ibuf_add_u32(b, pick(f, IMSG_WORKER_GEN_END));
		p = fin_bytes(f, 2048, &n);
		ibuf_add_data(b, p, n);
		break;
	case 3:
		*type = IMSG_PROVIDER_DONE;
		ibuf_add_u32(b, pick(f, IMSG_WORKER_GEN_END));
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_u64(b, fin_u8(f));
		ibuf_add_str(b, fin_str(f, 48));
		ibuf_add_str(b, fin_u8(f) & 1 ? "g/gemini-2.0-flash" :
		    fin_str(f, 140));
		break;
	case 4:
		*type = IMSG_PROVIDER_ERROR;
		ibuf_add_u32(b, pick(f, IMSG_WORKER_GEN_END));
		ibuf_add_str(b, fin_str(f, 40));
		ibuf_add_str(b, fin_str(f, 300));
		break;
	default:
		ibuf_free(b);
		*type = fin_u8(f) % IMSG_MAX;
		b = fin_payload(f);
		break;
	}
	return (b);
}

/* What the parent says to a worker in session. */
static struct ibuf *
from_parent(struct fin *f, uint32_t *type)
{
	struct ibuf	*b;
	uint32_t	 v;
	static const char *models[] = { "", "gemini-2.0-flash",
	    "g/gemini-2.0-flash,o/gpt-4o", "o/*" };

	if ((b = ibuf_open(64)) == NULL)
		abort();
	switch (fin_u8(f) % 5) {
	case 0:
		*type = IMSG_PARENT_AUTH;
		v = fin_u8(f);
		v = v < 160 ? AUTH_ACCEPTED : v < 240 ? AUTH_REFUSED :
		    v % 4;
		ibuf_add_u32(b, v);
		ibuf_add_str(b, v == AUTH_ACCEPTED || fin_u8(f) < 16 ?
		    IDENT : "");
		ibuf_add_str(b, fin_u8(f) < 200 ? models[fin_u8(f) % 4] :
		    fin_text(f, 200));
		break;
	case 1:
		*type = IMSG_PARENT_KILL;
		ibuf_add_str(b, fin_str(f, 80));
		break;
	case 2:
		*type = IMSG_PARENT_MONITORED;
		v = fin_u8(f);
		ibuf_add_u32(b, v < 250 ? v & 1 : v);
		break;
	default:
		ibuf_free(b);
		*type = fin_u8(f) % IMSG_MAX;
		b = fin_payload(f);
		break;
	}
	return (b);
}

/* Fire a timer the event loop would fire. */
static void
fire(struct ev_timer *t)
{
	if (ev_timer_pending(t)) {
		ev_timer_del(t);
		t->cb(t->arg);
	}
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	static struct fin f;
	static int	 steps;
	struct ibuf	*b;
	struct imsg	 imsg;
	const uint8_t	*p;
	uint32_t	 type;
	size_t		 n;
	int		 mark, fd;

	if (!init) {
		fuzz_quiet(0);
		signal(SIGPIPE, SIG_IGN);
		atexit(mark_exiting);
		init = 1;
	}
	if ((fd = dup(0)) == -1)
		abort();
	close(fd);
	mark = fd;
	fin_init(&f, data, size);
	steps = 0;
	fuzz_fatals = 0;
	fuzz_fatal_armed = 1;
	if (setjmp(fuzz_fatal_jmp) != 0)
		goto done;
	start(&f);
	pump();

	while (f.left > 0 && steps++ < 256) {
		held = b = NULL;
		switch (fin_u8(&f) % 10) {
		case 0:
		case 1:
		case 2:
			p = fin_bytes(&f, 1024, &n);
			if (n > 0)
				(void)write(far_client, p, n);
			else {
				shutdown(far_client, SHUT_WR);
			}
			if (w.fd != -1)
				client_event(w.fd, EV_READ, NULL);
			break;
		case 3:
		case 4:
			held = b = from_storage(&f, &type);
			fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
			worker_dispatch_storage(&w.storage, &imsg);
			break;
		case 5:
		case 6:
			held = b = from_provider(&f, &type);
			fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
			worker_dispatch_provider(&w.provider, &imsg);
			break;
		case 7:
			held = b = from_parent(&f, &type);
			fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
			worker_dispatch_parent(&pchan, &imsg);
			break;
		case 8:
			switch (fin_u8(&f) % 5) {
			case 0:
				fire(&w.idle_timer);
				break;
			case 1:
				fire(&w.storage_timer);
				break;
			case 2:
				fire(&w.close_timer);
				break;
			case 3:
				fire(&w.read_timer);
				break;
			case 4:
				worker_sigterm(SIGTERM, NULL);
				break;
			}
			break;
		case 9:
			/* A peer restarts: its channel closes, a new one comes. */
			if (fin_u8(&f) & 1) {
				if (!w.storage.dead) {
					worker_storage_closed(&w.storage);
					channel_shutdown(&w.storage);
				}
				close(far_storage);
				worker_storage_open(pair(&far_storage));
			} else {
				if (!w.provider.dead) {
					channel_shutdown(&w.provider);
					worker_provider_closed(&w.provider);
				}
				close(far_provider);
				worker_provider_open(pair(&far_provider));
			}
			break;
		}
		ibuf_free(b);
		held = NULL;
		pump();
	}
 done:
	fuzz_fatal_armed = 0;
	ibuf_free(held);
	held = NULL;
	stop();
	if ((fd = dup(0)) == -1)
		abort();
	close(fd);
	if (fd != mark)
		abort();	/* a descriptor leaked */
	return (0);
}
