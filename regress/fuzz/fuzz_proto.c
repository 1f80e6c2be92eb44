/*
 * fuzz_proto.c: the client protocol state machine (bridged/proto.c
 * and context.c) as bridged-worker drives it. The input is a script:
 * bytes from the TLS client (commands, chat mode, """ blocks, CANCEL)
 * interleaved with what storage and the provider answer, right or
 * wrong, and the clock moving.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"
#include "fuzz.h"

/* What the session asked for last, by kind. */
static struct {
	struct proto	*p;
	uint64_t	 now;
	uint64_t	 rnd;
	int		 down;		/* provider or storage refuses */
	int		 closed;
	uint32_t	 models, gen, cancel;
	uint32_t	 sreq[IMSG_MAX];	/* storage requests by type */
	uint32_t	 slast;			/* the last of them */
	size_t		 out;
} F;

/* Output to the client: counted; none may follow the close. */
static void
f_write(void *arg, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	if (F.closed)
		abort();	/* nothing goes out after close */
	F.out += len;
}

/* The session closes the connection. */
static void
f_close(void *arg)
{
	(void)arg;
	F.closed = 1;
}

/* A models request: refused while the provider is down. */
static int
f_models(void *arg, uint32_t id)
{
	(void)arg;
	if (F.down & 1)
		return (-1);
	F.models = id;
	return (0);
}

/* A generation request: it must be well formed; refused while down. */
static int
f_gen(void *arg, uint32_t id, const struct proto_gen *g)
{
	size_t	 i;

	(void)arg;
	if (F.down & 1)
		return (-1);
	if (strlen(g->model) >= MODEL_MAX_LEN || g->system == NULL)
		abort();
	for (i = 0; i < g->nturns; i++)
		if (g->turns[i].len > 0 && g->turns[i].text == NULL)
			abort();
	F.gen = id;
	return (0);
}

/* A generation cancelled: its id kept. */
static void
f_cancel(void *arg, uint32_t id)
{
	(void)arg;
	F.cancel = id;
}

/* A storage request: its payload must start with its id. */
static int
f_storage(void *arg, uint32_t type, uint32_t id, struct ibuf *b)
{
	uint32_t	 v;

	(void)arg;
	if (ibuf_left(b) < sizeof(v) || type >= IMSG_MAX)
		abort();
	memcpy(&v, ibuf_data(b), sizeof(v));
	if (v != id)
		abort();
	ibuf_free(b);
	if (F.down & 2)
		return (-1);
	F.sreq[type] = F.slast = id;
	return (0);
}

/* The state for the parent: its model name must fit. */
static void
f_state(void *arg, const char *model, uint32_t messages, uint64_t in,
    uint64_t out, int mode, int lazy)
{
	(void)arg;
	(void)lazy;
	(void)messages;
	(void)in;
	(void)out;
	(void)mode;
	if (strlen(model) >= MODEL_MAX_LEN)
		abort();
}

/* A monitor line: it must be a terminated string. */
static void
f_event(void *arg, const char *line)
{
	(void)arg;
	(void)strlen(line);
}

/* The clock, in ms, that the input moves. */
static uint64_t
f_now(void *arg)
{
	(void)arg;
	return (F.now);
}

/* Randomness that repeats, so a crash replays. */
static uint64_t
f_random(void *arg)
{
	(void)arg;
	return (++F.rnd * 0x9e3779b97f4a7c15ULL);
}

/* A token to check: a terminated string; refused when down says so. */
static int
f_auth(void *arg, const char *token)
{
	(void)arg;
	(void)strlen(token);
	return (F.down & 4 ? -1 : 0);
}

/* The session stops following a job: nothing to check. */
static void
f_unfollow(void *arg, uint32_t id)
{
	(void)arg;
	(void)id;
}

static const struct proto_ops fuzz_ops = {
	f_write, f_close, f_models, f_gen, f_cancel, f_storage, f_state,
	f_event, f_now, f_random, f_auth, f_unfollow
};

/* A request id: the one asked for, or any. */
static uint32_t
pick(struct fin *f, uint32_t asked)
{
	uint8_t	 b = fin_u8(f);

	if (b < 224)
		return (asked);
	if (b < 240)
		return (asked + 1);
	return (fin_u32(f));
}

/* The provider answers. */
static void
provider(struct fin *f)
{
	const uint8_t	*p;
	size_t		 n;
	int		 i, k;

	switch (fin_u8(f) % 10) {
	case 8:
		proto_provider_models_note(F.p, pick(f, F.models),
		    fin_str(f, 300));
		break;
	case 9:
		proto_provider_answered(F.p, pick(f, F.gen),
		    fin_str(f, MODEL_MAX_LEN + 8));
		break;
	case 0:
		k = fin_u8(f) % 8;
		for (i = 0; i < k; i++)
			proto_provider_model(F.p, pick(f, F.models),
			    fin_str(f, MODEL_MAX_LEN + 8), fin_u64(f),
			    fin_u64(f));
		proto_provider_models_end(F.p, pick(f, F.models));
		break;
	case 1:
	case 2:
	case 3:
		p = fin_bytes(f, 2048, &n);
		proto_provider_chunk(F.p, pick(f, F.gen), (const char *)p,
		    n);
		break;
	case 4:
	case 5:
		proto_provider_done(F.p, pick(f, F.gen), fin_u64(f),
		    fin_u64(f), fin_str(f, 48));
		break;
	case 6:
		proto_provider_error(F.p, pick(f, F.gen), fin_str(f, 40),
		    fin_str(f, 300));
		break;
	case 7:
		proto_provider_lost(F.p);
		break;
	}
}

/* A conversation as the worker reads it: strings that end. */
static void
fuzz_conv(struct fin *f, struct db_conv *cv)
{
	cv->id = (int64_t)(fin_u64(f) >> 1);
	strlcpy(cv->name, fin_str(f, CONV_NAME_MAX), sizeof(cv->name));
	strlcpy(cv->model, fin_str(f, MODEL_MAX_LEN), sizeof(cv->model));
	strlcpy(cv->role, fin_str(f, NAME_MAX_LEN), sizeof(cv->role));
	strlcpy(cv->system, fin_str(f, 300), sizeof(cv->system));
	cv->created = fin_u32(f);
	cv->last_used = fin_u32(f);
	cv->messages = fin_u16(f);
}

/* A search match as the worker reads it. */
static void
fuzz_match(struct fin *f, struct db_match *mt)
{
	const uint8_t	*p;

	mt->conv = fin_u16(f);
	mt->id = fin_u16(f);
	mt->time = fin_u32(f);
	mt->role = fin_u8(f) % ROLE_MAX;
	p = fin_bytes(f, 512, &mt->len);
	mt->text = mt->len > 0 ? (const char *)p : "";
}

/* Storage answers (states and kinds in range: the worker checks). */
static void
storage(struct fin *f)
{
	static const uint32_t types[] = { IMSG_WORKER_STORE,
	    IMSG_WORKER_SUMMARY, IMSG_WORKER_HISTORY, IMSG_WORKER_CONTEXT,
	    IMSG_WORKER_COUNT, IMSG_WORKER_SUBMIT, IMSG_WORKER_JOBS,
	    IMSG_WORKER_RESULT, IMSG_WORKER_KILL };
	struct db_conv	 cv;
	struct db_match	 mt;
	const uint8_t	*p;
	uint32_t	 id;
	size_t		 n;
	uint8_t		 k;

	k = fin_u8(f);
	id = k < 128 ? F.slast : F.sreq[types[k % 9]];
	id = pick(f, id);
	switch (fin_u8(f) % 13) {
	case 0:
		proto_storage_stored(F.p, id, fin_u64(f));
		break;
	case 1:
		p = fin_bytes(f, 2048, &n);
		proto_storage_item(F.p, id, fin_u64(f), fin_u64(f),
		    fin_u8(f) % 4, (const char *)p, n);
		break;
	case 2:
		proto_storage_end(F.p, id, fin_u8(f) < 128 ? fin_u8(f) :
		    fin_u64(f));
		break;
	case 3:
		proto_storage_error(F.p, id, fin_str(f, 300));
		break;
	case 4:
		proto_storage_job_line(F.p, id, fin_u64(f),
		    fin_u8(f) % JOB_STATE_MAX, fin_str(f, 140), fin_u64(f),
		    fin_u64(f), fin_str(f, 300));
		break;
	case 5:
		proto_storage_job_head(F.p, id, fin_u64(f),
		    fin_u8(f) % JOB_STATE_MAX);
		break;
	case 6:
		p = fin_bytes(f, 2048, &n);
		proto_storage_job_chunk(F.p, id, fin_u8(f) % CHUNK_KIND_MAX,
		    (const char *)p, n);
		break;
	case 7:
		proto_storage_job_end(F.p, id, fin_u8(f) % JOB_STATE_MAX,
		    fin_str(f, 140), fin_u64(f), fin_u64(f), fin_u64(f),
		    fin_str(f, 40), fin_str(f, 40), fin_str(f, 300));
		break;
	case 8:
		memset(&cv, 0, sizeof(cv));
		fuzz_conv(f, &cv);
		proto_storage_conv(F.p, id, &cv);
		break;
	case 9:
		memset(&mt, 0, sizeof(mt));
		fuzz_match(f, &mt);
		proto_storage_match(F.p, id, &mt);
		break;
	case 10:
		proto_storage_deleted(F.p, id, fin_u64(f), fin_u64(f));
		break;
	case 11:
		proto_storage_refused(F.p, id, fin_str(f, 40),
		    fin_str(f, 300));
		break;
	case 12:
		proto_storage_line(F.p, id, fin_str(f, 300));
		break;
	}
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int		 init;
	struct proto_session	 s;
	struct fin		 f;
	const uint8_t		*p;
	size_t			 n;
	uint64_t		 in, out;
	int			 steps = 0;

	if (!init) {
		fuzz_quiet(0);
		init = 1;
	}
	memset(&F, 0, sizeof(F));
	F.now = 1000;
	fin_init(&f, data, size);

	memset(&s, 0, sizeof(s));
	s.identity_mode = fin_u8(&f) % 3;
	if (s.identity_mode != IDENTITY_TOKEN)
		strlcpy(s.identity, "3f1a9c0b22de0123456789abcdef0123456789"
		    "abcdef0123456789abcdef", sizeof(s.identity));
	strlcpy(s.ip, "192.0.2.7", sizeof(s.ip));
	s.port = 50123;
	strlcpy(s.local, fin_u8(&f) & 1 ? "::1" : "192.0.2.10",
	    sizeof(s.local));
	s.lport = 65432;
	s.connected = 1700000000;
	s.line_max = 16 + fin_u16(&f);
	s.memory_limit = 64 + fin_u16(&f) * 16;
	strlcpy(s.model, "gemini-2.0-flash", sizeof(s.model));
	if ((F.p = proto_new(&fuzz_ops, NULL, &s)) == NULL)
		abort();
	proto_start(F.p);

	while (f.left > 0 && steps++ < 4096) {
		switch (fin_u8(&f) % 12) {
		case 0:
		case 1:
		case 2:
		case 3:
		case 4:
			p = fin_bytes(&f, 1024, &n);
			proto_input(F.p, (const char *)p, n);
			break;
		case 5:
		case 6:
			provider(&f);
			break;
		case 7:
		case 8:
			storage(&f);
			break;
		case 9:
			F.now += fin_u16(&f) * 10;
			F.down = fin_u8(&f) & 7;
			break;
		case 10:
			proto_auth(F.p, fin_u8(&f) & 1, fin_str(&f, 80),
			    fin_str(&f, 300));
			break;
		case 11:
			if (fin_u8(&f) & 1)
				proto_eof(F.p);
			else
				proto_bye(F.p, fin_str(&f, 80));
			break;
		}
		(void)proto_busy(F.p);
		(void)proto_queued(F.p);
		if (proto_closed(F.p))
			break;
	}
	proto_counters(F.p, &in, &out);
	proto_free(F.p);
	return (0);
}
