/*
 * t_proto.c: the session state machine of bridged-worker
 * (bridged/proto.c) driven without I/O: lines in, replies out, with a
 * fake storage and provider that record every request so each case
 * can answer them in the order it wants.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridged.h"

static int	 failures;

/* What the session asked for, and what it wrote. */
struct fake {
	struct proto	*p;
	struct ibuf	*out;
	struct ibuf	*calls;
	struct ibuf	*events;
	int		 closed;
	uint64_t	 now;
	uint64_t	 rnd;
	int		 prov_down;
	int		 stor_down;
	uint32_t	 models_id;
	int		 nmodels;
	uint32_t	 gen_id;
	int		 ngen;
	char		 gen_model[MODEL_MAX_LEN];
	char		 gen_sys[4096];
	char		 gen_turns[8192];
	uint32_t	 cancel_id;
	int		 ncancel;
	uint32_t	 ustore_id;
	uint32_t	 mstore_id;
	int		 nstore;
	uint64_t	 store_key;
	char		 store_text[4096];
	char		 store_model[MODEL_MAX_LEN];
	uint64_t	 store_tokens;
	uint32_t	 summary_id;
	char		 summary_text[4096];
	uint32_t	 history_id;
	int		 history_kind;
	uint32_t	 history_count;
	uint32_t	 context_id;
	uint32_t	 count_id;
	uint32_t	 usage_id;
	uint32_t	 conv_id;	/* the last conversation request */
	uint32_t	 set_id;
	uint64_t	 store_conv;
	uint64_t	 submit_conv;
	uint64_t	 summary_conv;
	uint32_t	 gen_temperature;
	uint32_t	 gen_max_tokens;
	int		 nstate;
	char		 state_model[MODEL_MAX_LEN];
	uint32_t	 state_messages;
	int		 state_mode;
	int		 state_lazy;	/* the last state may wait */
	uint64_t	 state_in;
	uint64_t	 state_out;
	uint32_t	 job_req;	/* SUBMIT, JOBS, RESULT, KILL */
	uint64_t	 job_id;
	int		 unfollowed;
};

static struct fake	 F;

/* Test bookkeeping: a case passes when no check in it failed. */
static const char	*tname;
static char		 twhy[1024];
static int		 tbad;

/* Start a case: its name, no failure yet. */
static void
begin(const char *name)
{
	tname = name;
	tbad = 0;
	twhy[0] = '\0';
}

/* End a case: ok, or FAIL with its first failed check. */
static void
end(void)
{
	if (tbad) {
		printf("FAIL %s: %s\n", tname, twhy);
		failures++;
	} else
		printf("ok %s\n", tname);
}

/* Record the case's first failed check, with its line. */
static void
check(int cond, int line, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	if (cond || tbad)
		return;
	tbad = 1;
	n = snprintf(twhy, sizeof(twhy), "line %d: ", line);
	va_start(ap, fmt);
	vsnprintf(twhy + n, sizeof(twhy) - n, fmt, ap);
	va_end(ap);
}
#define CHECK(c)	check((c), __LINE__, "%s", #c)

/* Add formatted text to a buffer (the call log, the events). */
static void
append(struct ibuf *b, const char *fmt, ...)
{
	va_list	 ap;
	char	 buf[16384];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (ibuf_add(b, buf, strlen(buf)) == -1)
		abort();
}

/* A buffer's text so far, then empty it. */
static char *
take(struct ibuf *b)
{
	static char	*s;
	size_t		 n = ibuf_left(b);

	free(s);
	if ((s = malloc(n + 1)) == NULL)
		abort();
	memcpy(s, ibuf_data(b), n);
	s[n] = '\0';
	ibuf_reset(b);
	return (s);
}

/* The output must be exactly want. */
static void
out_is(int line, const char *want)
{
	char	*got = take(F.out);

	check(strcmp(got, want) == 0, line, "output \"%s\", want \"%s\"",
	    got, want);
}
#define OUT(w)	out_is(__LINE__, (w))

/* The output must contain want. */
static void
out_has(int line, const char *want)
{
	char	*got = take(F.out);

	check(strstr(got, want) != NULL, line,
	    "output \"%s\" lacks \"%s\"", got, want);
}
#define HAS(w)	out_has(__LINE__, (w))

/* The call log must contain want. */
static void
calls_has(int line, const char *want)
{
	const char	*got = ibuf_data(F.calls);
	char		*s;

	s = strndup(got, ibuf_left(F.calls));
	check(s != NULL && strstr(s, want) != NULL, line,
	    "calls \"%s\" lack \"%s\"", s, want);
	free(s);
}
#define CALLED(w)	calls_has(__LINE__, (w))

/* The call log must not contain want. */
static void
calls_lack(int line, const char *want)
{
	char	*s;

	s = strndup(ibuf_data(F.calls), ibuf_left(F.calls));
	check(s != NULL && strstr(s, want) == NULL, line,
	    "calls \"%s\" hold \"%s\"", s, want);
	free(s);
}
#define NOTCALLED(w)	calls_lack(__LINE__, (w))

/*
 * The fake worker.
 */

/* The session's output to the client, kept for OUT and HAS. */
static void
f_write(void *arg, const void *data, size_t len)
{
	(void)arg;
	if (ibuf_add(F.out, data, len) == -1)
		abort();
}

/* The session closed the connection: counted. */
static void
f_close(void *arg)
{
	(void)arg;
	F.closed++;
}

/* A models request, logged; refused while the provider is down. */
static int
f_models(void *arg, uint32_t id)
{
	(void)arg;
	if (F.prov_down)
		return (-1);
	F.models_id = id;
	F.nmodels++;
	append(F.calls, "models %u\n", id);
	return (0);
}

/* A generation request: its model, system text and turns, logged. */
static int
f_gen(void *arg, uint32_t id, const struct proto_gen *g)
{
	const struct proto_turn	*t = g->turns;
	const char		*model = g->model, *sys = g->system;
	size_t			 i, len = 0, n = g->nturns;

	(void)arg;
	F.gen_temperature = g->temperature;
	F.gen_max_tokens = g->max_tokens;
	if (F.prov_down)
		return (-1);
	F.gen_id = id;
	F.ngen++;
	strlcpy(F.gen_model, model, sizeof(F.gen_model));
	strlcpy(F.gen_sys, sys, sizeof(F.gen_sys));
	F.gen_turns[0] = '\0';
	for (i = 0; i < n; i++)
		len += snprintf(F.gen_turns + len, sizeof(F.gen_turns) - len,
		    "%s%c:%.*s", i > 0 ? "|" : "",
		    t[i].role == ROLE_USER ? 'u' : 'm', (int)t[i].len,
		    t[i].text);
	append(F.calls, "gen %u %s\n", id, model);
	return (0);
}

/* The session cancels a generation: logged. */
static void
f_cancel(void *arg, uint32_t id)
{
	(void)arg;
	F.cancel_id = id;
	F.ncancel++;
	append(F.calls, "cancel %u\n", id);
}

/* A STORE request: half of a prompt, its text and model, logged. */
static int
f_store(uint32_t id, struct ireader *ir)
{
	const char	*model, *text;
	uint64_t	 key, tokens;
	uint32_t	 role;
	size_t		 len;

	key = ir_u64(ir);
	F.store_conv = ir_u64(ir);
	role = ir_u32(ir);
	model = ir_str(ir);
	tokens = ir_u64(ir);
	text = ir_data(ir, &len);
	if (ir_end(ir) == -1)
		abort();
	if (role == ROLE_USER)
		F.ustore_id = id;
	else
		F.mstore_id = id;
	F.nstore++;
	F.store_key = key;
	F.store_tokens = tokens;
	strlcpy(F.store_model, model, sizeof(F.store_model));
	snprintf(F.store_text, sizeof(F.store_text), "%.*s", (int)len, text);
	append(F.calls, "store %u %s %.*s\n", id,
	    role == ROLE_USER ? "user" : "model", (int)len, text);
	return (0);
}

/* A SUMMARY request: its conversation and text, logged. */
static int
f_summary(uint32_t id, struct ireader *ir)
{
	const char	*text;
	size_t		 len;

	(void)ir_u64(ir);
	F.summary_conv = ir_u64(ir);
	text = ir_data(ir, &len);
	if (ir_end(ir) == -1)
		abort();
	F.summary_id = id;
	snprintf(F.summary_text, sizeof(F.summary_text), "%.*s", (int)len,
	    text);
	append(F.calls, "summary %u %.*s\n", id, (int)len, text);
	return (0);
}

/* The fake storage: what each request carries, in the call log. */
static int
f_storage(void *arg, uint32_t type, uint32_t id, struct ibuf *b)
{
	struct ireader	 ir;
	struct imsg	 m;
	const char	*s1, *s2, *s3, *s4;
	uint64_t	 v;
	uint32_t	 a1, a2;
	size_t		 len;
	int		 rv = 0;

	(void)arg;
	if (F.stor_down) {
		ibuf_free(b);
		return (-1);
	}
	memset(&m, 0, sizeof(m));
	m.hdr.type = type;
	m.data = ibuf_data(b);
	m.datalen = ibuf_left(b);
	m.fd = -1;
	ir_init(&ir, &m);
	if (ir_u32(&ir) != id)
		abort();
	switch (type) {
	case IMSG_WORKER_STORE:
		rv = f_store(id, &ir);
		break;
	case IMSG_WORKER_SUMMARY:
		rv = f_summary(id, &ir);
		break;
	case IMSG_WORKER_HISTORY:
		v = ir_u64(&ir);
		a1 = ir_u32(&ir);
		a2 = ir_u32(&ir);
		F.history_id = id;
		F.history_kind = a1;
		F.history_count = a2;
		append(F.calls, "history %u %d %u conv %llu\n", id, a1, a2,
		    (unsigned long long)v);
		break;
	case IMSG_WORKER_CONTEXT:
		s1 = ir_str(&ir);
		s2 = ir_str(&ir);
		F.context_id = id;
		append(F.calls, "context %u %s %s\n", id, s1, s2);
		break;
	case IMSG_WORKER_COUNT:
		F.count_id = id;
		append(F.calls, "count %u\n", id);
		break;
	case IMSG_WORKER_CONV_NEW:
		s1 = ir_str(&ir);
		s2 = ir_str(&ir);
		s3 = ir_str(&ir);
		s4 = ir_str(&ir);
		F.conv_id = id;
		append(F.calls, "new %u [%s] %s [%s] [%s]\n", id, s1, s2, s3,
		    s4);
		break;
	case IMSG_WORKER_CONV_LIST:
		a1 = ir_u32(&ir);
		F.conv_id = id;
		append(F.calls, "list %u %u\n", id, a1);
		break;
	case IMSG_WORKER_CONV_SET:
		v = ir_u64(&ir);
		a1 = ir_u32(&ir);
		s1 = ir_str(&ir);
		s2 = ir_str(&ir);
		s3 = ir_str(&ir);
		F.set_id = id;
		append(F.calls, "set %u conv %llu mask %u [%s] [%s] [%s]\n",
		    id, (unsigned long long)v, a1, s1, s2, s3);
		break;
	case IMSG_WORKER_SUBMIT:
		(void)ir_u64(&ir);
		v = ir_u64(&ir);
		a1 = ir_u32(&ir);
		a2 = ir_u32(&ir);
		s1 = ir_str(&ir);
		s2 = ir_str(&ir);
		s3 = ir_data(&ir, &len);
		F.job_req = id;
		F.submit_conv = v;
		append(F.calls, "submit %u %u %s %s %.*s\n", a1, a2, s1,
		    s2[0] != '\0' ? s2 : "-", (int)len, s3);
		break;
	case IMSG_WORKER_JOBS:
		a1 = ir_u32(&ir);
		F.job_req = id;
		append(F.calls, "jobs %u\n", a1);
		break;
	case IMSG_WORKER_USAGE_GET:
		a1 = ir_u32(&ir);
		F.usage_id = id;
		append(F.calls, "usage %u\n", a1);
		break;
	case IMSG_WORKER_RESULT:
	case IMSG_WORKER_KILL:
		v = ir_u64(&ir);
		F.job_req = id;
		if (type == IMSG_WORKER_RESULT)
			F.job_id = v;
		append(F.calls, "%s %llu\n", type == IMSG_WORKER_RESULT ?
		    "result" : "kill", (unsigned long long)v);
		break;
	case IMSG_WORKER_CONV_DELETE:
	case IMSG_WORKER_SEARCH:
	case IMSG_WORKER_EXPORT:
		s1 = ir_str(&ir);
		F.conv_id = id;
		append(F.calls, "%s %u [%s]\n", type == IMSG_WORKER_SEARCH ?
		    "search" : type == IMSG_WORKER_EXPORT ? "export" :
		    "delete", id, s1);
		break;
	default:
		abort();
	}
	if (ir_end(&ir) == -1)
		abort();
	ibuf_free(b);
	return (rv);
}

/* The state the session reports to the parent, kept for checks. */
static void
f_state(void *arg, const char *model, uint32_t messages, uint64_t in,
    uint64_t out, int mode, int lazy)
{
	(void)arg;
	F.nstate++;
	F.state_lazy = lazy;
	strlcpy(F.state_model, model, sizeof(F.state_model));
	F.state_messages = messages;
	F.state_in = in;
	F.state_out = out;
	F.state_mode = mode;
}

/* A monitor line for the parent, kept in the event log. */
static void
f_event(void *arg, const char *line)
{
	(void)arg;
	append(F.events, "%s\n", line);
}

/* The fake clock, in ms, that the cases move. */
static uint64_t
f_now(void *arg)
{
	(void)arg;
	return (F.now);
}

/* Randomness that repeats, so outputs can be compared. */
static uint64_t
f_random(void *arg)
{
	(void)arg;
	return (++F.rnd * 0x9e3779b97f4a7c15ULL);
}

/* A token to check, logged; the case gives the verdict. */
static int
f_auth(void *arg, const char *token)
{
	(void)arg;
	append(F.calls, "auth %s\n", token);
	return (0);
}

/* The session stops following a job's RESULT: counted, logged. */
static void
f_unfollow(void *arg, uint32_t id)
{
	(void)arg;
	F.unfollowed++;
	append(F.calls, "unfollow %u\n", id);
}

static const struct proto_ops fake_ops = {
	f_write, f_close, f_models, f_gen, f_cancel, f_storage, f_state,
	f_event, f_now, f_random, f_auth, f_unfollow
};

/*
 * Sessions.
 */

struct opts {
	const char		*model;
	size_t			 line_max;
	uint64_t		 memory_limit;
	enum identity_mode	 identity;
	int			 raw;		/* leave the start be */
	const struct role_list	*roles;
	const char		*local;
};

/* End the session and clear the fake for the next case. */
static void
teardown(void)
{
	proto_free(F.p);
	ibuf_free(F.out);
	ibuf_free(F.calls);
	ibuf_free(F.events);
	memset(&F, 0, sizeof(F));
}

static const char *default_models[] = {
	"gemini-2.5-pro", "gemini-2.0-flash", "gemini-2.5-flash", NULL
};

/* Two providers, as the provider names their models. */
static const char *provider_models[] = {
	"a/gemini-2.0-flash", "a/same", "b/claude-x", "b/same", NULL
};

/* The provider answers a models request with these names. */
static void
answer_models(uint32_t id, const char **names, uint64_t limit)
{
	size_t	 i;

	for (i = 0; names[i] != NULL; i++)
		proto_provider_model(F.p, id, names[i], limit, 8192);
	proto_provider_models_end(F.p, id);
}

/* Storage answers a request with a conversation. */
static void
conv_answer(uint32_t id, int64_t conv, const char *name, const char *model,
    const char *system)
{
	static struct db_conv	 c;

	memset(&c, 0, sizeof(c));
	c.id = conv;
	c.last_used = 1700000000 + conv;
	c.messages = conv * 2;
	strlcpy(c.name, name, sizeof(c.name));
	strlcpy(c.model, model, sizeof(c.model));
	strlcpy(c.system, system, sizeof(c.system));
	proto_storage_conv(F.p, id, &c);
}

/* A session, greeted, context loaded (empty) and models listed. */
static void
setup(const struct opts *o)
{
	struct proto_session	 s;
	static const struct opts def;

	if (o == NULL)
		o = &def;
	memset(&F, 0, sizeof(F));
	if ((F.out = ibuf_open(1024)) == NULL ||
	    (F.calls = ibuf_open(1024)) == NULL ||
	    (F.events = ibuf_open(1024)) == NULL)
		abort();
	F.now = 1000;
	memset(&s, 0, sizeof(s));
	/* With identity token there is none until AUTH. */
	if (o->identity != IDENTITY_TOKEN)
		strlcpy(s.identity, "3f1a9c0b22de0123456789abcdef0123456789"
		    "abcdef0123456789abcdef", sizeof(s.identity));
	strlcpy(s.ip, "192.0.2.7", sizeof(s.ip));
	s.port = 50123;
	strlcpy(s.local, o->local != NULL ? o->local : "192.0.2.10",
	    sizeof(s.local));
	s.lport = 65432;
	s.connected = 1700000000;
	strlcpy(s.tls, "TLSv1.3 TLS_AES_256_GCM_SHA384", sizeof(s.tls));
	s.identity_mode = o->identity;
	s.line_max = o->line_max != 0 ? o->line_max : 64;
	s.memory_limit = o->memory_limit != 0 ? o->memory_limit : 1000000;
	strlcpy(s.model, o->model != NULL ? o->model : "gemini-2.0-flash",
	    sizeof(s.model));
	s.roles = o->roles;
	if ((F.p = proto_new(&fake_ops, NULL, &s)) == NULL)
		abort();
	proto_start(F.p);
	/* Storage names the conversation first: number 1, unnamed. */
	if (o->identity != IDENTITY_TOKEN)
		conv_answer(F.context_id, 1, "", "", "");
	if (o->raw)
		return;
	proto_storage_end(F.p, F.context_id, 0);
	answer_models(F.models_id, default_models, 1000000);
	take(F.out);
	take(F.calls);
}

/* Bytes from the client, as one read. */
static void
input(const char *s)
{
	proto_input(F.p, s, strlen(s));
}

/* Storage acknowledges both halves of the last prompt. */
static void
stored(void)
{
	proto_storage_stored(F.p, F.ustore_id, 1);
	proto_storage_stored(F.p, F.mstore_id, 2);
}

/* The provider answers the last request with text in one chunk. */
static void
answer(const char *text, uint64_t in, uint64_t out)
{
	proto_provider_chunk(F.p, F.gen_id, text, strlen(text));
	proto_provider_done(F.p, F.gen_id, in, out, "STOP");
}

/* One whole exchange in chat mode or with ASK. */
static void
exchange(const char *line, const char *reply)
{
	input(line);
	answer(reply, 3, 4);
	stored();
}

/*
 * Cases.
 */

/* The greeting: identity, local address, context and models asked. */
static void
t_greeting(void)
{
	struct opts	 o = { .raw = 1 };

	begin("greeting");
	setup(&o);
	OUT("ID:3f1a9c0b22de\nConnected to 192.0.2.10:65432\n"
	    ". OK bridged/" BRIDGE_VERSION " ready\n");
	CALLED("context ");
	CALLED("models ");
	CHECK(F.nstate >= 1);
	teardown();
	end();

	begin("greeting_ipv6_local");
	o.local = "::1";
	setup(&o);
	HAS("Connected to [::1]:65432\n");
	teardown();
	end();
}

/* HELP in any case and spacing; it takes no argument. */
static void
t_help(void)
{
	begin("help");
	setup(NULL);
	input("HELP\n");
	HAS("LIST-MODELS");
	input("HELP\n");
	HAS("\n. OK\n");
	input("help\n");
	HAS("CHANGE-MODEL");
	input("HeLp\r\n");
	HAS("SUMMARIES");
	input("  help  \n");
	HAS("EXIT, QUIT");
	teardown();
	end();

	begin("help_takes_no_argument");
	setup(NULL);
	input("HELP me\n");
	OUT(". ERR bad-argument HELP takes no argument\n");
	teardown();
	end();
}

/* Unknown commands, empty lines, chat words in command mode. */
static void
t_unknown(void)
{
	begin("unknown_command");
	setup(NULL);
	input("FROB x y\n");
	OUT(". ERR unknown-command FROB, try HELP\n");
	input("\n");
	OUT(". ERR unknown-command empty line, try HELP\n");
	input("   \n");
	OUT(". ERR unknown-command empty line, try HELP\n");
	input("BACK\n");
	HAS(". ERR unknown-command BACK");
	input("CANCEL\n");
	HAS(". ERR unknown-command CANCEL");
	input("\"\"\"\n");
	HAS(". ERR unknown-command");
	teardown();
	end();
}

/* INFO, with storage answering, failing or down. */
static void
t_info(void)
{
	begin("info");
	setup(NULL);
	input("INFO\n");
	CALLED("count ");
	OUT("");
	proto_storage_end(F.p, F.count_id, 42);
	OUT("id: 3f1a9c0b22de\nip: 192.0.2.7\nport: 50123\n"
	    "connected: 2023-11-14T22:13:20Z\nmodel: gemini-2.0-flash\n"
	    "tls: TLSv1.3 TLS_AES_256_GCM_SHA384\nmessages: 42\n"
	    "conversation: 1 -\nrole: -\n. OK\n");
	teardown();
	end();

	begin("info_storage_error");
	setup(NULL);
	input("info\n");
	proto_storage_error(F.p, F.count_id, "database locked");
	HAS("messages: unknown\nconversation: 1 -\nrole: -\n. OK\n");
	teardown();
	end();

	begin("info_storage_down");
	setup(NULL);
	F.stor_down = 1;
	input("INFO\n");
	HAS("messages: unknown\nconversation: 1 -\nrole: -\n. OK\n");
	teardown();
	end();
}

/* LIST-MODELS: sorted, bad names left out, errors, provider gone. */
static void
t_list_models(void)
{
	static const char *names[] = { "zeta", "alpha", "gemini-2.0-flash",
	    "bad name", "", NULL };

	begin("list_models");
	setup(NULL);
	input("LIST-MODELS\n");
	OUT("");
	answer_models(F.models_id, names, 100);
	OUT("1. alpha\n2. gemini-2.0-flash (current)\n3. zeta\n"
	    ". OK 3 models, current gemini-2.0-flash\n");
	teardown();
	end();

	begin("list_models_empty");
	setup(NULL);
	input("list-models\n");
	proto_provider_models_end(F.p, F.models_id);
	OUT(". OK 0 models, current gemini-2.0-flash\n");
	teardown();
	end();

	begin("list_models_error_code");
	setup(NULL);
	input("LIST-MODELS\n");
	proto_provider_error(F.p, F.models_id, "rate-limited",
	    "quota exceeded, retry in 26s");
	OUT(". ERR rate-limited quota exceeded, retry in 26s\n");
	teardown();
	end();

	begin("list_models_error_unknown_code");
	setup(NULL);
	input("LIST-MODELS\n");
	proto_provider_error(F.p, F.models_id, "weird", "multi\nline");
	OUT(". ERR upstream multi line\n");
	teardown();
	end();

	begin("list_models_provider_down");
	setup(NULL);
	F.prov_down = 1;
	input("LIST-MODELS\n");
	OUT(". ERR upstream provider restarting\n");
	teardown();
	end();

	begin("list_models_provider_lost");
	setup(NULL);
	input("LIST-MODELS\n");
	F.prov_down = 1;
	proto_provider_lost(F.p);
	OUT(". ERR upstream provider restarting\n");
	teardown();
	end();

	begin("list_models_no_argument");
	setup(NULL);
	input("LIST-MODELS 3\n");
	OUT(". ERR bad-argument LIST-MODELS takes no argument\n");
	teardown();
	end();
}

/* CHANGE-MODEL: the menu, a number, a name, several providers. */
static void
t_change_model(void)
{
	begin("change_model_menu");
	setup(NULL);
	input("CHANGE-MODEL\n");
	answer_models(F.models_id, default_models, 100);
	OUT("1. gemini-2.0-flash (current)\n2. gemini-2.5-flash\n"
	    "3. gemini-2.5-pro\n0. cancel\n. MORE choose a number\n");
	CHECK(!proto_busy(F.p));
	input("3\n");
	OUT(". OK model gemini-2.5-pro\n");
	CHECK(strcmp(F.state_model, "gemini-2.5-pro") == 0);
	CHECK(!F.state_lazy);		/* a new model goes at once */
	input("ASK hi\n");
	CHECK(strcmp(F.gen_model, "gemini-2.5-pro") == 0);
	teardown();
	end();

	begin("change_model_menu_cancel");
	setup(NULL);
	input("CHANGE-MODEL\n");
	answer_models(F.models_id, default_models, 100);
	take(F.out);
	input("0\n");
	OUT(". OK model gemini-2.0-flash\n");
	teardown();
	end();

	begin("change_model_menu_out_of_range");
	setup(NULL);
	input("CHANGE-MODEL\n");
	answer_models(F.models_id, default_models, 100);
	take(F.out);
	input("4\n");
	OUT(". ERR bad-argument no model number 4, choose 0 to 3\n");
	input("INFO\n");
	CALLED("count ");
	teardown();
	end();

	begin("change_model_menu_name");
	setup(NULL);
	input("change-model\n");
	answer_models(F.models_id, default_models, 100);
	take(F.out);
	input("  GEMINI-2.5-FLASH \n");
	OUT(". OK model gemini-2.5-flash\n");
	teardown();
	end();

	begin("change_model_menu_unknown_name");
	setup(NULL);
	input("CHANGE-MODEL\n");
	answer_models(F.models_id, default_models, 100);
	take(F.out);
	input("gpt-4\n");
	OUT(". ERR bad-argument no model named gpt-4\n");
	input("HELP\n");
	HAS("\n. OK\n");
	teardown();
	end();

	begin("change_model_menu_empty_answer");
	setup(NULL);
	input("CHANGE-MODEL\n");
	answer_models(F.models_id, default_models, 100);
	take(F.out);
	input("\n");
	OUT(". ERR bad-argument choose a number or a name\n");
	teardown();
	end();

	begin("change_model_menu_pipelined");
	setup(NULL);
	input("CHANGE-MODEL\n2\nINFO\n");
	answer_models(F.models_id, default_models, 100);
	HAS(". MORE choose a number\n. OK model gemini-2.5-flash\n");
	CALLED("count ");
	teardown();
	end();

	begin("change_model_number");
	setup(NULL);
	input("CHANGE-MODEL 2\n");
	answer_models(F.models_id, default_models, 100);
	OUT(". OK model gemini-2.5-flash\n");
	teardown();
	end();

	begin("change_model_name");
	setup(NULL);
	input("CHANGE-MODEL gemini-2.5-pro\n");
	answer_models(F.models_id, default_models, 100);
	OUT(". OK model gemini-2.5-pro\n");
	teardown();
	end();

	begin("change_model_prefixed_name");
	setup(NULL);
	input("CHANGE-MODEL models/gemini-2.5-pro\n");
	answer_models(F.models_id, default_models, 100);
	OUT(". OK model gemini-2.5-pro\n");
	teardown();
	end();

	begin("change_model_bad");
	setup(NULL);
	input("CHANGE-MODEL nope\n");
	answer_models(F.models_id, default_models, 100);
	OUT(". ERR bad-argument no model named nope\n");
	input("CHANGE-MODEL 99\n");
	answer_models(F.models_id, default_models, 100);
	OUT(". ERR bad-argument no model number 99, choose 0 to 3\n");
	teardown();
	end();

	begin("change_model_keeps_context");
	setup(NULL);
	input("IA\n");
	exchange("first\n", "one");
	input("BACK\n");
	proto_provider_chunk(F.p, F.gen_id, "sum", 3);
	proto_provider_done(F.p, F.gen_id, 1, 1, "STOP");
	proto_storage_stored(F.p, F.summary_id, 9);
	take(F.out);
	take(F.calls);
	input("CHANGE-MODEL gemini-2.5-pro\n");
	answer_models(F.models_id, default_models, 100000);
	OUT(". OK model gemini-2.5-pro\n");
	/* The conversation remembers the model. */
	CALLED("conv 1 mask 1 [gemini-2.5-pro] [] []\n");
	input("ASK second\n");
	CHECK(strcmp(F.gen_turns, "u:first|m:one|u:second") == 0);
	CHECK(strcmp(F.gen_model, "gemini-2.5-pro") == 0);
	CHECK(strcmp(F.store_model, "gemini-2.5-pro") == 0);
	teardown();
	end();

	/* With several providers: a bare name only one of them has. */
	begin("change_model_bare_name");
	setup(NULL);
	input("CHANGE-MODEL claude-x\n");
	answer_models(F.models_id, provider_models, 100);
	OUT(". OK model b/claude-x\n");
	input("CHANGE-MODEL same\n");
	answer_models(F.models_id, provider_models, 100);
	OUT(". ERR bad-argument no model named same\n");
	input("CHANGE-MODEL a/same\n");
	answer_models(F.models_id, provider_models, 100);
	OUT(". OK model a/same\n");
	/* A provider that failed is named in LIST-MODELS' status. */
	input("LIST-MODELS\n");
	proto_provider_model(F.p, F.models_id, "a/same", 100, 8192);
	proto_provider_models_note(F.p, F.models_id, "provider b failed: "
	    "HTTP 401");
	proto_provider_models_end(F.p, F.models_id);
	OUT("1. a/same (current)\n"
	    ". OK 1 models, current a/same; provider b failed: HTTP 401\n");
	/* The status line names the model that answered: a fallback. */
	input("ASK hi\n");
	proto_provider_chunk(F.p, F.gen_id, "yo", 2);
	proto_provider_answered(F.p, F.gen_id, "b/claude-x");
	proto_provider_done(F.p, F.gen_id, 1, 1, "STOP");
	stored();
	HAS("model=b/claude-x in=1");
	teardown();
	end();

	begin("change_model_same_keeps_context");
	setup(NULL);
	exchange("ASK first\n", "one");
	input("CHANGE-MODEL gemini-2.0-flash\n");
	answer_models(F.models_id, default_models, 100);
	input("ASK second\n");
	CHECK(strcmp(F.gen_turns, "u:first|m:one|u:second") == 0);
	teardown();
	end();

	begin("change_model_menu_too_long_answer");
	setup(NULL);
	input("CHANGE-MODEL\n");
	answer_models(F.models_id, default_models, 100);
	take(F.out);
	input("1234567890123456789012345678901234567890123456789012345678901"
	    "234567890\n");
	OUT(". ERR too-long line longer than 64 bytes\n");
	input("1\n");
	HAS(". ERR unknown-command 1");
	teardown();
	end();
}

/* Chat mode and ASK: stores, stuffing, UTF-8, context, no model. */
static void
t_chat(void)
{
	begin("chat_prompt");
	setup(NULL);
	input("IA\n");
	OUT(". OK chat mode, BACK to return\n");
	CHECK(F.state_mode == MODE_CHAT);
	F.now = 1500;
	input("Hello there\n");
	CALLED("store 3 user Hello there\n");
	CALLED("gen 4 gemini-2.0-flash\n");
	CHECK(strcmp(F.gen_turns, "u:Hello there") == 0);
	CHECK(strcmp(F.gen_sys, "") == 0);
	proto_provider_chunk(F.p, F.gen_id, "Hi", 2);
	OUT("Hi");
	proto_provider_chunk(F.p, F.gen_id, " you.", 5);
	OUT(" you.");
	F.now = 1742;
	proto_provider_done(F.p, F.gen_id, 12, 7, "STOP");
	OUT("");
	CALLED("store 5 model Hi you.\n");
	CHECK(F.store_tokens == 7);
	proto_storage_stored(F.p, F.ustore_id, 1);
	OUT("");
	proto_storage_stored(F.p, F.mstore_id, 2);
	OUT("\n. OK model=gemini-2.0-flash in=12 out=7 ms=242\n");
	CHECK(F.state_messages == 2);
	teardown();
	end();

	begin("chat_alias");
	setup(NULL);
	input("chat\n");
	OUT(". OK chat mode, BACK to return\n");
	teardown();
	end();

	begin("chat_ok_waits_for_both_stores");
	setup(NULL);
	input("IA\nq\n");
	take(F.out);
	proto_storage_stored(F.p, F.ustore_id, 1);
	answer("a\n", 1, 1);
	OUT("a\n");
	proto_storage_stored(F.p, F.mstore_id, 2);
	HAS(". OK model=");
	teardown();
	end();

	begin("chat_store_keys_differ");
	setup(NULL);
	input("ASK q\n");
	{
		uint64_t	 k1 = F.store_key;

		answer("a", 1, 1);
		CHECK(F.store_key != k1 && k1 != 0);
	}
	teardown();
	end();

	begin("chat_answer_body_ends_with_lf");
	setup(NULL);
	input("IA\n");
	take(F.out);
	exchange("q\n", "no newline");
	OUT("no newline\n. OK model=gemini-2.0-flash in=3 out=4 ms=0\n");
	exchange("q\n", "newline\n");
	OUT("newline\n. OK model=gemini-2.0-flash in=3 out=4 ms=0\n");
	teardown();
	end();

	begin("chat_dot_stuffing_across_chunks");
	setup(NULL);
	input("IA\nq\n");
	take(F.out);
	proto_provider_chunk(F.p, F.gen_id, ".a\n", 3);
	proto_provider_chunk(F.p, F.gen_id, ".", 1);
	proto_provider_chunk(F.p, F.gen_id, "b\nc.d", 5);
	proto_provider_done(F.p, F.gen_id, 1, 1, "STOP");
	stored();
	OUT("..a\n..b\nc.d\n. OK model=gemini-2.0-flash in=1 out=1 ms=0\n");
	CALLED("store 5 model .a\n.b\nc.d\n");
	teardown();
	end();

	begin("chat_utf8_split_across_chunks");
	setup(NULL);
	input("ASK q\n");
	proto_provider_chunk(F.p, F.gen_id, "\xe4\xb8", 2);
	proto_provider_chunk(F.p, F.gen_id, "\xad\xf0\x9f", 3);
	proto_provider_chunk(F.p, F.gen_id, "\x98\x80", 2);
	proto_provider_done(F.p, F.gen_id, 1, 1, "STOP");
	stored();
	OUT("\xe4\xb8\xad\xf0\x9f\x98\x80\n"
	    ". OK model=gemini-2.0-flash in=1 out=1 ms=0\n");
	CHECK(strcmp(F.store_text, "\xe4\xb8\xad\xf0\x9f\x98\x80") == 0);
	teardown();
	end();

	begin("chat_finish_reason");
	setup(NULL);
	input("ASK q\n");
	proto_provider_chunk(F.p, F.gen_id, "cut", 3);
	proto_provider_done(F.p, F.gen_id, 1, 1, "MAX_TOKENS");
	stored();
	OUT("cut\n. OK model=gemini-2.0-flash in=1 out=1 ms=0"
	    " finish=MAX_TOKENS\n");
	teardown();
	end();

	begin("chat_empty_answer");
	setup(NULL);
	input("ASK q\n");
	proto_provider_done(F.p, F.gen_id, 5, 0, "STOP");
	stored();
	OUT(". OK model=gemini-2.0-flash in=5 out=0 ms=0\n");
	teardown();
	end();

	begin("chat_context_grows");
	setup(NULL);
	input("IA\n");
	exchange("one\n", "1");
	exchange("two\n", "2");
	input("three\n");
	CHECK(strcmp(F.gen_turns, "u:one|m:1|u:two|m:2|u:three") == 0);
	teardown();
	end();

	begin("chat_empty_prompt");
	setup(NULL);
	input("IA\n");
	take(F.out);
	input("\n");
	OUT(". ERR bad-argument empty prompt\n");
	input(" \t \n");
	OUT(". ERR bad-argument empty prompt\n");
	CHECK(F.nstore == 0 && F.ngen == 0);
	teardown();
	end();

	begin("chat_commands_are_prompts");
	setup(NULL);
	input("IA\nHELP\n");
	CALLED("store 3 user HELP\n");
	teardown();
	end();

	begin("chat_back_exit_case_insensitive");
	setup(NULL);
	input("IA\n  bAcK \n");
	HAS(". OK back in command mode\n");
	CHECK(F.state_mode == MODE_COMMAND);
	input("ia\nquit\n");
	HAS(". BYE\n");
	CHECK(F.closed == 1);
	teardown();
	end();

	begin("ask");
	setup(NULL);
	input("ASK   what is  2+2? \n");
	CALLED("store 3 user what is  2+2? \n");
	answer("4", 9, 1);
	stored();
	OUT("4\n. OK model=gemini-2.0-flash in=9 out=1 ms=0\n");
	CHECK(F.state_mode == MODE_COMMAND);
	teardown();
	end();

	begin("ask_needs_prompt");
	setup(NULL);
	input("ASK\n");
	OUT(". ERR bad-argument ASK needs an argument\n");
	input("ask   \n");
	OUT(". ERR bad-argument ASK needs an argument\n");
	teardown();
	end();

	begin("no_model");
	{
		struct opts	 o = { .model = "" };

		setup(&o);
	}
	input("ASK hi\n");
	OUT(". ERR no-model no model chosen, see LIST-MODELS and"
	    " CHANGE-MODEL\n");
	CHECK(F.nstore == 0 && F.ngen == 0);
	input("LIST-MODELS\n");
	answer_models(F.models_id, default_models, 100);
	HAS(". OK 3 models, current none\n");
	teardown();
	end();
}

/* Provider and storage failures during a prompt; stale ids ignored. */
static void
t_errors(void)
{
	begin("provider_error_midstream");
	setup(NULL);
	input("ASK q\n");
	proto_provider_chunk(F.p, F.gen_id, "partial", 7);
	proto_provider_error(F.p, F.gen_id, "upstream",
	    "503 The model is overloaded.");
	OUT("partial");
	proto_storage_stored(F.p, F.ustore_id, 1);
	OUT("\n. ERR upstream 503 The model is overloaded.\n");
	NOTCALLED("model partial");
	CALLED("store 3 user q\n");
	teardown();
	end();

	begin("provider_error_codes");
	setup(NULL);
	input("ASK q\n");
	proto_storage_stored(F.p, F.ustore_id, 1);
	proto_provider_error(F.p, F.gen_id, "upstream-timeout", "no answer");
	OUT(". ERR upstream-timeout no answer\n");
	input("ASK q\n");
	proto_storage_stored(F.p, F.ustore_id, 1);
	proto_provider_error(F.p, F.gen_id, "busy", "try later");
	OUT(". ERR busy try later\n");
	input("ASK q\n");
	proto_storage_stored(F.p, F.ustore_id, 1);
	proto_provider_error(F.p, F.gen_id, "../etc", "x");
	OUT(". ERR upstream x\n");
	teardown();
	end();

	begin("failed_answer_not_in_context");
	setup(NULL);
	input("ASK q1\n");
	proto_storage_stored(F.p, F.ustore_id, 1);
	proto_provider_error(F.p, F.gen_id, "upstream", "x");
	input("ASK q2\n");
	CHECK(strcmp(F.gen_turns, "u:q2") == 0);
	teardown();
	end();

	begin("provider_lost_midstream");
	setup(NULL);
	input("ASK q\n");
	proto_provider_chunk(F.p, F.gen_id, "abc", 3);
	F.prov_down = 1;
	proto_provider_lost(F.p);
	proto_storage_stored(F.p, F.ustore_id, 1);
	OUT("abc\n. ERR upstream provider restarting\n");
	input("ASK again\n");
	proto_storage_stored(F.p, F.ustore_id, 1);
	OUT(". ERR upstream provider restarting\n");
	CALLED("store 5 user again\n");
	teardown();
	end();

	begin("storage_error_user");
	setup(NULL);
	input("ASK q\n");
	proto_storage_error(F.p, F.ustore_id, "disk full");
	answer("a", 1, 1);
	proto_storage_stored(F.p, F.mstore_id, 2);
	OUT("a\n. ERR storage disk full\n");
	teardown();
	end();

	begin("storage_error_model");
	setup(NULL);
	input("ASK q\n");
	answer("a", 1, 1);
	proto_storage_stored(F.p, F.ustore_id, 1);
	proto_storage_error(F.p, F.mstore_id, "storage unavailable");
	OUT("a\n. ERR storage storage unavailable\n");
	teardown();
	end();

	begin("storage_down");
	setup(NULL);
	F.stor_down = 1;
	input("ASK q\n");
	answer("a", 1, 1);
	OUT("a\n. ERR storage not available\n");
	teardown();
	end();

	begin("stale_ids_ignored");
	setup(NULL);
	input("ASK q\n");
	proto_provider_chunk(F.p, 999, "zzz", 3);
	proto_provider_done(F.p, 999, 1, 1, "STOP");
	proto_provider_error(F.p, 999, "upstream", "x");
	proto_storage_stored(F.p, 999, 1);
	proto_storage_item(F.p, 999, 1, 1, ROLE_USER, "x", 1);
	proto_storage_end(F.p, 999, 1);
	proto_storage_error(F.p, 999, "x");
	proto_provider_chunk(F.p, 0, "zzz", 3);
	OUT("");
	answer("ok", 1, 1);
	stored();
	OUT("ok\n. OK model=gemini-2.0-flash in=1 out=1 ms=0\n");
	teardown();
	end();
}

/* CANCEL mid-stream, before the context, when idle, with a queue. */
static void
t_cancel(void)
{
	begin("cancel_midstream");
	setup(NULL);
	input("IA\n");
	input("tell a long story\n");
	proto_provider_chunk(F.p, F.gen_id, "Once upon", 9);
	take(F.out);
	input("CANCEL\n");
	CALLED("cancel 4\n");
	OUT("");
	proto_storage_stored(F.p, F.ustore_id, 1);
	OUT("\n. ERR cancelled stopped by CANCEL\n");
	proto_provider_chunk(F.p, 4, " a time", 7);
	proto_provider_done(F.p, 4, 1, 1, "STOP");
	OUT("");
	NOTCALLED("model Once");
	CHECK(!proto_busy(F.p));
	teardown();
	end();

	begin("cancel_case_insensitive_same_read");
	setup(NULL);
	input("ASK story\n cancel \n");
	CALLED("cancel ");
	proto_storage_stored(F.p, F.ustore_id, 1);
	OUT(". ERR cancelled stopped by CANCEL\n");
	teardown();
	end();

	begin("cancel_before_context");
	{
		struct opts	 o = { .raw = 1 };

		setup(&o);
	}
	take(F.out);
	input("ASK q\nCANCEL\n");
	CALLED("store ");
	proto_storage_stored(F.p, F.ustore_id, 1);
	OUT(". ERR cancelled stopped by CANCEL\n");
	CHECK(F.ngen == 0);
	teardown();
	end();

	begin("cancel_when_idle_is_prompt");
	setup(NULL);
	input("IA\nCANCEL\n");
	CALLED("store 3 user CANCEL\n");
	CHECK(F.ncancel == 0);
	teardown();
	end();

	begin("cancel_keeps_queue");
	setup(NULL);
	input("IA\nfirst\nsecond\nCANCEL\n");
	CALLED("cancel 4\n");
	proto_storage_stored(F.p, F.ustore_id, 1);
	CALLED("store 5 user second\n");
	teardown();
	end();

	begin("cancel_inside_queued_multiline");
	setup(NULL);
	input("IA\nfirst\n\"\"\"\nCANCEL\n\"\"\"\n");
	CHECK(F.ncancel == 0);
	answer("a", 1, 1);
	stored();
	CALLED("store 6 user CANCEL\n");
	teardown();
	end();

	begin("cancel_after_done_is_queued");
	setup(NULL);
	input("IA\nq\n");
	answer("a", 1, 1);
	input("CANCEL\n");
	CHECK(F.ncancel == 0);
	stored();
	CALLED("store 6 user CANCEL\n");
	teardown();
	end();
}

/* Pipelined input answered in order, even byte by byte. */
static void
t_pipelining(void)
{
	begin("pipelining_order");
	setup(NULL);
	input("ASK one\nINFO\nHELP\n");
	NOTCALLED("count");
	answer("A1", 1, 1);
	OUT("A1");
	stored();
	CALLED("count ");
	OUT("\n. OK model=gemini-2.0-flash in=1 out=1 ms=0\n");
	proto_storage_end(F.p, F.count_id, 2);
	{
		char	*o = take(F.out);

		CHECK(strncmp(o, "id: ", 4) == 0);
		CHECK(strstr(o, "role: -\n. OK\nHELP") != NULL);
	}
	teardown();
	end();

	begin("pipelining_prompts");
	setup(NULL);
	input("IA\na\nb\nc\n");
	CHECK(F.ngen == 1);
	exchange("", "1");
	CHECK(F.ngen == 2 && strcmp(F.gen_turns, "u:a|m:1|u:b") == 0);
	exchange("", "2");
	CHECK(F.ngen == 3);
	exchange("", "3");
	{
		char	*o = take(F.out);
		char	*a = strstr(o, "1\n. OK");
		char	*b = strstr(o, "2\n. OK");
		char	*c = strstr(o, "3\n. OK");

		CHECK(a != NULL && b != NULL && c != NULL && a < b && b < c);
	}
	CHECK(!proto_busy(F.p));
	teardown();
	end();

	begin("pipelining_byte_by_byte");
	setup(NULL);
	{
		const char	*s = "HELP\r\nFROB\r\nIA\r\n";

		for (; *s != '\0'; s++)
			proto_input(F.p, s, 1);
	}
	{
		char	*o = take(F.out);

		CHECK(strstr(o, "\n. OK\n. ERR unknown-command FROB, try HELP"
		    "\n. OK chat mode, BACK to return\n") != NULL);
	}
	teardown();
	end();

	begin("queued_bytes");
	setup(NULL);
	input("ASK q\nHELP\nINFO\npart");
	CHECK(proto_queued(F.p) == strlen("HELP\nINFO\n"));
	CHECK(proto_busy(F.p));
	teardown();
	end();
}

/* The line limit, bad UTF-8, NUL bytes, CR and CRLF. */
static void
t_lines(void)
{
	char	 buf[256];

	begin("too_long");
	setup(NULL);
	memset(buf, 'x', 65);
	buf[65] = '\n';
	proto_input(F.p, buf, 66);
	OUT(". ERR too-long line longer than 64 bytes\n");
	input("HELP\n");
	HAS("\n. OK\n");
	teardown();
	end();

	begin("line_at_limit");
	setup(NULL);
	memcpy(buf, "ASK ", 4);
	memset(buf + 4, 'y', 60);
	buf[64] = '\r';
	buf[65] = '\n';
	proto_input(F.p, buf, 66);
	CHECK(F.nstore == 1 && strlen(F.store_text) == 60);
	teardown();
	end();

	begin("too_long_split_reads");
	setup(NULL);
	memset(buf, 'z', 200);
	proto_input(F.p, buf, 30);
	proto_input(F.p, buf, 30);
	proto_input(F.p, buf, 200);
	OUT("");
	proto_input(F.p, "zz\nHELP\n", 8);
	{
		char	*o = take(F.out);

		CHECK(strncmp(o, ". ERR too-long line longer than 64 bytes\n",
		    41) == 0);
		CHECK(strstr(o + 41, "\n. OK\n") != NULL);
	}
	CHECK(proto_queued(F.p) == 0);
	teardown();
	end();

	begin("too_long_in_chat_not_stored");
	setup(NULL);
	input("IA\n");
	memset(buf, 'q', 100);
	buf[100] = '\n';
	proto_input(F.p, buf, 101);
	HAS(". ERR too-long");
	CHECK(F.nstore == 0 && F.ngen == 0);
	teardown();
	end();

	begin("bad_utf8");
	setup(NULL);
	input("IA\n");
	take(F.out);
	input("caf\xe9\n");
	OUT(". ERR bad-utf8 line is not valid UTF-8\n");
	input("\xc0\xaf\n");
	OUT(". ERR bad-utf8 line is not valid UTF-8\n");
	input("\xed\xa0\x80\n");
	OUT(". ERR bad-utf8 line is not valid UTF-8\n");
	input("\xf0\x9f\x98\n");
	OUT(". ERR bad-utf8 line is not valid UTF-8\n");
	CHECK(F.nstore == 0 && F.ngen == 0);
	input("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n");
	CALLED("store 3 user caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n");
	teardown();
	end();

	begin("bad_utf8_command_mode");
	setup(NULL);
	input("HEL\xff\n");
	OUT(". ERR bad-utf8 line is not valid UTF-8\n");
	teardown();
	end();

	begin("nul_byte");
	setup(NULL);
	input("IA\n");
	take(F.out);
	proto_input(F.p, "a\0b\n", 4);
	OUT(". ERR bad-utf8 line holds a NUL byte\n");
	CHECK(F.nstore == 0);
	teardown();
	end();

	begin("crlf_dropped_once");
	setup(NULL);
	input("ASK a\r\r\n");
	CALLED("store 3 user a\r\n");
	teardown();
	end();

	begin("cr_alone_kept");
	setup(NULL);
	input("ASK a\rb\n");
	CALLED("store 3 user a\rb\n");
	teardown();
	end();
}

/* """ blocks: CRLF, limits, bad UTF-8, nothing until the end. */
static void
t_multiline(void)
{
	char	 buf[128];

	begin("multiline");
	setup(NULL);
	input("IA\n");
	take(F.out);
	input("\"\"\"\nline one\n\n  BACK\nEXIT\n\"\"\"\n");
	CALLED("store 3 user line one\n\n  BACK\nEXIT\n");
	CHECK(strcmp(F.gen_turns, "u:line one\n\n  BACK\nEXIT") == 0);
	answer("ok", 1, 1);
	stored();
	OUT("ok\n. OK model=gemini-2.0-flash in=1 out=1 ms=0\n");
	teardown();
	end();

	begin("multiline_crlf");
	setup(NULL);
	input("IA\r\n\"\"\"\r\na\r\nb\r\n\"\"\"\r\n");
	CALLED("store 3 user a\nb\n");
	teardown();
	end();

	begin("multiline_no_reply_until_end");
	setup(NULL);
	input("IA\n");
	take(F.out);
	input("\"\"\"\nx\n");
	OUT("");
	CHECK(!proto_busy(F.p));
	input("\"\"\"\n");
	CALLED("store 3 user x\n");
	teardown();
	end();

	begin("multiline_quotes_not_trimmed");
	setup(NULL);
	input("IA\n\"\"\"\na\n \"\"\"\n\"\"\" \n\"\"\"\n");
	CALLED("store 3 user a\n \"\"\"\n\"\"\" \n");
	teardown();
	end();

	begin("multiline_empty");
	setup(NULL);
	input("IA\n");
	take(F.out);
	input("\"\"\"\n\"\"\"\n");
	OUT(". ERR bad-argument empty prompt\n");
	teardown();
	end();

	begin("multiline_bad_utf8");
	setup(NULL);
	input("IA\n");
	take(F.out);
	input("\"\"\"\nok\nbad\xff\nok\n\"\"\"\n");
	OUT(". ERR bad-utf8 line is not valid UTF-8\n");
	CHECK(F.nstore == 0);
	input("next\n");
	CALLED("store 3 user next\n");
	teardown();
	end();

	begin("multiline_too_long_line");
	setup(NULL);
	input("IA\n");
	take(F.out);
	input("\"\"\"\n");
	memset(buf, 'w', 100);
	buf[100] = '\n';
	proto_input(F.p, buf, 101);
	input("\"\"\"\n");
	OUT(". ERR too-long a line is longer than 64 bytes\n");
	CHECK(F.nstore == 0);
	teardown();
	end();

	begin("multiline_long_total");
	setup(NULL);
	input("IA\n\"\"\"\n");
	{
		int	 i;

		memset(buf, 'v', 60);
		buf[60] = '\n';
		for (i = 0; i < 20; i++)
			proto_input(F.p, buf, 61);
	}
	input("\"\"\"\n");
	CHECK(F.nstore == 1 && strlen(F.store_text) == 20 * 61 - 1);
	teardown();
	end();
}

/* BACK: out of chat mode, summarizing the conversation once. */
static void
t_back(void)
{
	begin("back_without_conversation");
	setup(NULL);
	input("IA\nBACK\n");
	HAS(". OK back in command mode\n");
	CHECK(F.ngen == 0);
	teardown();
	end();

	begin("back_summarizes");
	setup(NULL);
	input("IA\n");
	exchange("My name is Ada.\n", "Hello Ada.");
	take(F.out);
	input("BACK\n");
	CHECK(F.ngen == 2);
	CHECK(strstr(F.gen_sys, "memory manager") != NULL);
	CHECK(strstr(F.gen_turns, "u:My name is Ada.|m:Hello Ada.|u:") ==
	    F.gen_turns);
	CHECK(F.state_mode == MODE_COMMAND);
	proto_provider_chunk(F.p, F.gen_id, "User is Ada.", 12);
	OUT("");
	proto_provider_done(F.p, F.gen_id, 10, 3, "STOP");
	CALLED("summary 7 User is Ada.\n");
	OUT("");
	input("HELP\n");
	OUT("");
	proto_storage_stored(F.p, F.summary_id, 5);
	{
		char	*o = take(F.out);

		CHECK(strncmp(o, ". OK back in command mode\n", 26) == 0);
		CHECK(strstr(o, "LIST-MODELS") != NULL);
	}
	input("ASK next\n");
	/* The session keeps its turns; the summary is for later. */
	CHECK(strcmp(F.gen_turns,
	    "u:My name is Ada.|m:Hello Ada.|u:next") == 0);
	teardown();
	end();

	begin("back_twice_summarizes_once");
	setup(NULL);
	input("IA\n");
	exchange("q\n", "a");
	input("BACK\n");
	answer("s", 1, 1);
	proto_storage_stored(F.p, F.summary_id, 5);
	input("IA\nBACK\n");
	CHECK(F.ngen == 2);
	HAS(". OK back in command mode\n");
	teardown();
	end();

	begin("back_summary_fails");
	setup(NULL);
	input("IA\n");
	exchange("q\n", "a");
	take(F.out);
	input("BACK\n");
	proto_provider_error(F.p, F.gen_id, "rate-limited", "quota");
	OUT(". OK back in command mode, no summary: quota\n");
	CHECK(F.summary_id == 0);
	teardown();
	end();

	begin("back_summary_empty");
	setup(NULL);
	input("IA\n");
	exchange("q\n", "a");
	take(F.out);
	input("BACK\n");
	proto_provider_done(F.p, F.gen_id, 1, 0, "STOP");
	OUT(". OK back in command mode, no summary: the model gave none\n");
	teardown();
	end();

	begin("back_summary_store_fails");
	setup(NULL);
	input("IA\n");
	exchange("q\n", "a");
	take(F.out);
	input("BACK\n");
	answer("s", 1, 1);
	proto_storage_error(F.p, F.summary_id, "disk full");
	OUT(". OK back in command mode, summary not stored: disk full\n");
	teardown();
	end();

	begin("back_provider_down");
	setup(NULL);
	input("IA\n");
	exchange("q\n", "a");
	take(F.out);
	F.prov_down = 1;
	input("BACK\n");
	OUT(". OK back in command mode, no summary: upstream provider"
	    " restarting\n");
	teardown();
	end();

	begin("back_provider_lost");
	setup(NULL);
	input("IA\n");
	exchange("q\n", "a");
	take(F.out);
	input("BACK\n");
	F.prov_down = 1;
	proto_provider_lost(F.p);
	OUT(". OK back in command mode, no summary: provider restarting\n");
	teardown();
	end();
}

/* The context loaded from storage at start, and NEW clearing it. */
static void
t_context(void)
{
	struct opts	 raw = { .raw = 1 };

	begin("context_loaded");
	setup(&raw);
	proto_storage_item(F.p, F.context_id, 1, 10, ROLE_SUMMARY,
	    "Ada likes tea.", 14);
	proto_storage_item(F.p, F.context_id, 2, 11, ROLE_USER, "hi", 2);
	proto_storage_item(F.p, F.context_id, 3, 12, ROLE_MODEL, "hello", 5);
	proto_storage_end(F.p, F.context_id, 3);
	input("ASK what do I like?\n");
	CHECK(strstr(F.gen_sys, "Ada likes tea.") != NULL);
	CHECK(strcmp(F.gen_turns, "u:hi|m:hello|u:what do I like?") == 0);
	teardown();
	end();

	begin("context_prompt_waits");
	setup(&raw);
	input("ASK q\n");
	CHECK(F.ngen == 0);
	proto_storage_item(F.p, F.context_id, 2, 11, ROLE_USER, "old", 3);
	proto_storage_item(F.p, F.context_id, 3, 12, ROLE_MODEL, "ans", 3);
	proto_storage_end(F.p, F.context_id, 2);
	CHECK(F.ngen == 1);
	CHECK(strcmp(F.gen_turns, "u:old|m:ans|u:q") == 0);
	teardown();
	end();

	begin("context_error_goes_on");
	setup(&raw);
	input("ASK q\n");
	proto_storage_error(F.p, F.context_id, "busy");
	CHECK(F.ngen == 1 && strcmp(F.gen_turns, "u:q") == 0);
	teardown();
	end();

	begin("context_starts_with_model_turn");
	setup(&raw);
	proto_storage_item(F.p, F.context_id, 3, 12, ROLE_MODEL, "ans", 3);
	proto_storage_item(F.p, F.context_id, 4, 13, ROLE_USER, "u1", 2);
	proto_storage_item(F.p, F.context_id, 5, 14, ROLE_USER, "u2", 2);
	proto_storage_item(F.p, F.context_id, 6, 15, ROLE_MODEL, "", 0);
	proto_storage_end(F.p, F.context_id, 4);
	input("ASK q\n");
	CHECK(strcmp(F.gen_turns,
	    "u:(continued)|m:ans|u:u2|m:(no answer)|u:q") == 0);
	teardown();
	end();

	begin("context_unanswered_dropped");
	setup(&raw);
	proto_storage_item(F.p, F.context_id, 1, 10, ROLE_USER, "a", 1);
	proto_storage_item(F.p, F.context_id, 2, 11, ROLE_MODEL, "b", 1);
	proto_storage_item(F.p, F.context_id, 3, 12, ROLE_USER, "failed", 6);
	proto_storage_end(F.p, F.context_id, 3);
	input("ASK q\n");
	CHECK(strcmp(F.gen_turns, "u:a|m:b|u:q") == 0);
	teardown();
	end();

	begin("new_clears_context");
	setup(NULL);
	exchange("ASK one\n", "1");
	take(F.out);
	input("NEW\n");
	CALLED("[] gemini-2.0-flash [] []\n");
	OUT("");
	conv_answer(F.conv_id, 7, "", "gemini-2.0-flash", "");
	OUT(". OK conversation 7 -\n");
	input("RESET\n");
	conv_answer(F.conv_id, 8, "", "gemini-2.0-flash", "");
	OUT(". OK conversation 8 -\n");
	input("ASK two\n");
	CHECK(strcmp(F.gen_turns, "u:two") == 0);
	CHECK(F.store_conv == 8);
	teardown();
	end();

	begin("new_while_context_loads");
	setup(&raw);
	input("NEW\n");
	NOTCALLED("new ");
	proto_storage_item(F.p, F.context_id, 2, 11, ROLE_USER, "old", 3);
	proto_storage_end(F.p, F.context_id, 1);
	CALLED("new ");
	conv_answer(F.conv_id, 2, "", "", "");
	input("ASK q\n");
	CHECK(strcmp(F.gen_turns, "u:q") == 0);
	teardown();
	end();
}

/* Past the memory or token limit: summarize first, else trim. */
static void
t_memory(void)
{
	struct opts	 small = { .memory_limit = 40 };

	begin("memory_limit_summarizes_first");
	setup(&small);
	input("IA\n");
	exchange("0123456789\n", "abcdefghij");
	take(F.calls);
	take(F.out);
	input("this prompt passes the limit\n");
	NOTCALLED("store");
	CHECK(strstr(F.gen_sys, "memory manager") != NULL);
	CHECK(strncmp(F.gen_turns, "u:0123456789|m:abcdefghij|u:", 28) == 0);
	proto_provider_chunk(F.p, F.gen_id, "S", 1);
	proto_provider_done(F.p, F.gen_id, 1, 1, "STOP");
	OUT("");
	CALLED("summary ");
	NOTCALLED("store");
	proto_storage_stored(F.p, F.summary_id, 3);
	CALLED("store ");
	CHECK(strcmp(F.gen_turns, "u:this prompt passes the limit") == 0);
	CHECK(strstr(F.gen_sys, "summary") != NULL &&
	    F.gen_sys[strlen(F.gen_sys) - 1] == 'S');
	answer("fine", 1, 1);
	stored();
	OUT("fine\n. OK model=gemini-2.0-flash in=1 out=1 ms=0\n");
	CHECK(strstr(take(F.events), "memory summarize") != NULL);
	teardown();
	end();

	begin("memory_summary_fails_trims");
	setup(&small);
	input("IA\n");
	exchange("0123456789\n", "abcdefghij");
	input("this prompt passes the limit\n");
	proto_provider_error(F.p, F.gen_id, "upstream", "x");
	CHECK(strcmp(F.gen_turns, "u:this prompt passes the limit") == 0);
	answer("fine", 1, 1);
	stored();
	HAS("fine\n. OK model=");
	teardown();
	end();

	begin("memory_token_limit");
	setup(NULL);
	input("CHANGE-MODEL gemini-2.5-pro\n");
	{
		static const char *one[] = { "gemini-2.5-pro", NULL };

		answer_models(F.models_id, one, 5);
	}
	input("IA\n");
	exchange("twelve bytes\n", "eight by");
	take(F.calls);
	input("short\n");
	CHECK(strstr(F.gen_sys, "memory manager") != NULL);
	NOTCALLED("store");
	teardown();
	end();

	begin("memory_cancel_during_summary");
	setup(&small);
	input("IA\n");
	exchange("0123456789\n", "abcdefghij");
	input("this prompt passes the limit\n");
	{
		uint32_t	 sum = F.gen_id;

		input("CANCEL\n");
		CHECK(F.cancel_id == sum);
	}
	CALLED("store ");
	proto_storage_stored(F.p, F.ustore_id, 1);
	HAS(". ERR cancelled");
	teardown();
	end();
}

/* NEW, CONVERSATIONS, RESUME, DELETE, SYSTEM. */
static void
t_conversations(void)
{
	static const char *const bad[] = {
		"NEW a b\n", "NEW x/y\n", "NEW caf\xc3\xa9\n", "NEW "
		"12345678901234567890123456789012345678901234567890"
		"123456789012345\n", NULL
	};
	struct opts	 wide = { .line_max = 100000 };
	struct opts	 raw = { .raw = 1 };
	size_t		 i;

	begin("conv_new_named");
	setup(NULL);
	input("NEW work-1.b_c\n");
	CALLED("[work-1.b_c] gemini-2.0-flash [] []\n");
	conv_answer(F.conv_id, 5, "work-1.b_c", "gemini-2.0-flash", "");
	OUT(". OK conversation 5 work-1.b_c\n");
	input("INFO\n");
	proto_storage_end(F.p, F.count_id, 0);
	HAS("conversation: 5 work-1.b_c\nrole: -\n. OK\n");
	teardown();
	end();

	begin("conv_new_bad_names");
	setup(&wide);
	for (i = 0; bad[i] != NULL; i++) {
		input(bad[i]);
		HAS(". ERR bad-argument a name is 1 to 64 of");
	}
	NOTCALLED("new ");
	teardown();
	end();

	begin("conv_new_duplicate");
	setup(NULL);
	input("NEW work\n");
	proto_storage_refused(F.p, F.conv_id, "bad-argument",
	    "a conversation named work exists");
	OUT(". ERR bad-argument a conversation named work exists\n");
	input("INFO\n");
	proto_storage_end(F.p, F.count_id, 0);
	HAS("conversation: 1 -\n");
	teardown();
	end();

	begin("conv_list");
	setup(NULL);
	input("CONVERSATIONS\n");
	CALLED(" 20\n");
	conv_answer(F.conv_id, 1, "", "gemini-2.0-flash", "");
	conv_answer(F.conv_id, 3, "work", "", "");
	proto_storage_end(F.p, F.conv_id, 2);
	OUT("* 1 2023-11-14T22:13:21Z 2 gemini-2.0-flash -\n"
	    "- 3 2023-11-14T22:13:23Z 6 - work\n. OK 2 conversations\n");
	input("conversations 0\n");
	OUT(". ERR bad-argument N must be 1 to 1000\n");
	input("CONVERSATIONS 5\n");
	CALLED(" 5\n");
	teardown();
	end();

	begin("conv_resume");
	setup(NULL);
	exchange("ASK one\n", "1");
	take(F.out);
	input("RESUME work\n");
	CALLED(" work gemini-2.0-flash\n");
	conv_answer(F.context_id, 3, "work", "gemini-2.5-pro", "Be terse.");
	proto_storage_item(F.p, F.context_id, 9, 11, ROLE_USER, "old", 3);
	proto_storage_item(F.p, F.context_id, 10, 12, ROLE_MODEL, "ans", 3);
	OUT("");
	proto_storage_end(F.p, F.context_id, 2);
	OUT(". OK conversation 3 work\n");
	input("ASK q\n");
	CHECK(strcmp(F.gen_turns, "u:old|m:ans|u:q") == 0);
	CHECK(strcmp(F.gen_model, "gemini-2.5-pro") == 0);
	CHECK(strcmp(F.gen_sys, "Be terse.") == 0);
	CHECK(F.store_conv == 3);
	answer("a", 1, 1);
	stored();
	/* A job is answered in the current conversation. */
	input("SUBMIT later\n");
	CALLED("submit 0 1 gemini-2.5-pro - later\n");
	CHECK(F.submit_conv == 3);
	teardown();
	end();

	begin("conv_resume_not_found");
	setup(NULL);
	exchange("ASK one\n", "1");
	take(F.out);
	input("RESUME 42\n");
	proto_storage_refused(F.p, F.context_id, "not-found",
	    "no such conversation");
	OUT(". ERR not-found no such conversation\n");
	input("RESUME bad/name\n");
	OUT(". ERR not-found no such conversation\n");
	input("ASK two\n");
	CHECK(strcmp(F.gen_turns, "u:one|m:1|u:two") == 0);
	CHECK(F.store_conv == 1);
	teardown();
	end();

	begin("conv_delete_other");
	setup(NULL);
	exchange("ASK one\n", "1");
	take(F.out);
	input("DELETE old\n");
	CALLED(" [old]\n");
	proto_storage_deleted(F.p, F.conv_id, 9, 4);
	OUT(". OK deleted 4 messages\n");
	input("ASK two\n");
	CHECK(strcmp(F.gen_turns, "u:one|m:1|u:two") == 0);
	teardown();
	end();

	begin("conv_delete_current");
	setup(NULL);
	exchange("ASK one\n", "1");
	take(F.out);
	input("DELETE 1\n");
	proto_storage_deleted(F.p, F.conv_id, 1, 2);
	CALLED("[] gemini-2.0-flash [] []\n");
	OUT("");
	conv_answer(F.conv_id, 6, "", "gemini-2.0-flash", "");
	OUT(". OK deleted 2 messages\n");
	input("ASK two\n");
	CHECK(strcmp(F.gen_turns, "u:two") == 0);
	CHECK(F.store_conv == 6);
	teardown();
	end();

	begin("conv_delete_not_found");
	setup(NULL);
	input("DELETE 77\n");
	proto_storage_refused(F.p, F.conv_id, "not-found",
	    "no such conversation");
	OUT(". ERR not-found no such conversation\n");
	input("DELETE\n");
	OUT(". ERR bad-argument DELETE needs an argument\n");
	teardown();
	end();

	begin("conv_system");
	setup(NULL);
	input("SYSTEM\n");
	OUT(". OK no system prompt\n");
	input("SYSTEM You are a pirate.  \n");
	CALLED("conv 1 mask 2 [] [] [You are a pirate.]\n");
	OUT("");
	proto_storage_stored(F.p, F.set_id, 1);
	OUT(". OK system prompt set\n");
	input("system\n");
	OUT("You are a pirate.\n. OK system prompt\n");
	input("ASK ahoy\n");
	CHECK(strcmp(F.gen_sys, "You are a pirate.") == 0);
	answer("arr", 1, 1);
	stored();
	take(F.out);
	input("SYSTEM -\n");
	CALLED("mask 2 [] [] []\n");
	proto_storage_stored(F.p, F.set_id, 1);
	OUT(". OK system prompt cleared\n");
	input("ASK again\n");
	CHECK(strcmp(F.gen_sys, "") == 0);
	teardown();
	end();

	begin("conv_system_before_summary");
	setup(&raw);
	proto_storage_item(F.p, F.context_id, 1, 10, ROLE_SUMMARY, "S.", 2);
	proto_storage_end(F.p, F.context_id, 1);
	input("SYSTEM Be kind.\n");
	proto_storage_stored(F.p, F.set_id, 1);
	input("ASK x\n");
	CHECK(strncmp(F.gen_sys, "Be kind.\n\nThis is a summary", 26) == 0);
	CHECK(strstr(F.gen_sys, "S.") != NULL);
	teardown();
	end();

	begin("conv_system_too_long");
	setup(&wide);
	{
		char	*big;

		if ((big = malloc(CONV_SYSTEM_MAX + 16)) == NULL)
			abort();
		memcpy(big, "SYSTEM ", 7);
		memset(big + 7, 'x', CONV_SYSTEM_MAX);
		memcpy(big + 7 + CONV_SYSTEM_MAX, "\n", 2);
		input(big);
		free(big);
	}
	HAS(". ERR bad-argument a system prompt is at most");
	teardown();
	end();

	begin("conv_storage_error");
	setup(NULL);
	input("NEW x\n");
	proto_storage_error(F.p, F.conv_id, "database error");
	OUT(". ERR storage database error\n");
	F.stor_down = 1;
	input("CONVERSATIONS\n");
	OUT(". ERR storage not available\n");
	teardown();
	end();

	begin("conv_search");
	setup(NULL);
	input("SEARCH  tea \"NEAR( *  \n");
	CALLED("search 3 [tea \"NEAR( *]\n");
	{
		struct db_match	 m;

		memset(&m, 0, sizeof(m));
		m.conv = 3;
		m.id = 44;
		m.time = 1700000000;
		m.role = ROLE_MODEL;
		m.text = "...likes\ntea...";
		m.len = strlen(m.text);
		proto_storage_match(F.p, F.conv_id, &m);
	}
	proto_storage_end(F.p, F.conv_id, 1);
	OUT("--- 3 44 2023-11-14T22:13:20Z model\n....likes tea...\n"
	    ". OK 1 matches\n");
	input("SEARCH\n");
	OUT(". ERR bad-argument SEARCH needs an argument\n");
	input("SEARCH x\n");
	proto_storage_refused(F.p, F.conv_id, "bad-argument", "too long");
	OUT(". ERR bad-argument too long\n");
	teardown();
	end();

	begin("conv_export");
	setup(NULL);
	input("EXPORT\n");
	CALLED("export 3 [1]\n");
	conv_answer(F.conv_id, 1, "w", "gm", "Be \"kind\".");
	proto_storage_item(F.p, F.conv_id, 7, 1700000000, ROLE_USER, "hi", 2);
	proto_storage_item(F.p, F.conv_id, 8, 1700000001, ROLE_MODEL,
	    ".yo", 3);
	proto_storage_end(F.p, F.conv_id, 2);
	OUT("{\"identity\":\"3f1a9c0b22de0123456789abcdef0123456789abcdef"
	    "0123456789abcdef\",\"conversation\":{\"id\":1,\"name\":\"w\","
	    "\"model\":\"gm\",\"system\":\"Be \\\"kind\\\".\",\"role\":\"\"},"
	    "\"messages\":[\n{\"id\":7,\"time\":\"2023-11-14T22:13:20Z\","
	    "\"role\":\"user\",\"content\":\"hi\"}\n,{\"id\":8,"
	    "\"time\":\"2023-11-14T22:13:21Z\",\"role\":\"model\","
	    "\"content\":\".yo\"}\n],\"summaries\":[]}\n. OK 2 items\n");
	input("EXPORT markdown work\n");
	CALLED(" [work]\n");
	conv_answer(F.conv_id, 2, "work", "", "");
	proto_storage_item(F.p, F.conv_id, 9, 1700000000, ROLE_USER,
	    ".x", 2);
	proto_storage_end(F.p, F.conv_id, 1);
	HAS("# bridged conversation 2 work\n");
	HAS("");
	input("EXPORT json 404\n");
	proto_storage_refused(F.p, F.conv_id, "not-found",
	    "no such conversation");
	OUT(". ERR not-found no such conversation\n");
	input("EXPORT a/b\n");
	OUT(". ERR not-found no such conversation\n");
	teardown();
	end();

	begin("conv_roles");
	{
		static struct role_list	 rl;
		static struct role_conf	 r1, r2;
		struct opts		 o = { .roles = &rl };

		TAILQ_INIT(&rl);
		strlcpy(r1.name, "critic", sizeof(r1.name));
		strlcpy(r1.description, "harsh\nreally", sizeof(
		    r1.description));
		strlcpy(r1.system, "Be harsh.", sizeof(r1.system));
		strlcpy(r1.model, "gemini-2.5-pro", sizeof(r1.model));
		r1.temperature = 200;
		r1.max_tokens = 99;
		strlcpy(r2.name, "bare", sizeof(r2.name));
		r2.temperature = GEN_TEMP_NONE;
		TAILQ_INSERT_TAIL(&rl, &r1, entry);
		TAILQ_INSERT_TAIL(&rl, &r2, entry);
		setup(&o);
	}
	input("ROLES\n");
	OUT("critic gemini-2.5-pro harsh\nbare -\n. OK 2 roles\n");
	input("ROLE nobody\n");
	OUT(". ERR bad-argument no role named nobody, see ROLES\n");
	input("ASK before\n");
	CHECK(F.gen_temperature == GEN_TEMP_NONE && F.gen_max_tokens == 0);
	answer("a", 1, 1);
	stored();
	take(F.out);
	input("ROLE critic\n");
	CALLED("conv 1 mask 7 [gemini-2.5-pro] [critic] [Be harsh.]\n");
	OUT("");
	proto_storage_stored(F.p, F.set_id, 1);
	OUT(". OK role critic\n");
	input("ASK after\n");
	CHECK(F.gen_temperature == 200 && F.gen_max_tokens == 99);
	CHECK(strcmp(F.gen_model, "gemini-2.5-pro") == 0);
	CHECK(strcmp(F.gen_sys, "Be harsh.") == 0);
	CHECK(strcmp(F.gen_turns, "u:before|m:a|u:after") == 0);
	teardown();
	end();

	begin("conv_history_and_summary_carry_it");
	setup(NULL);
	input("HISTORY\n");
	CALLED("conv 1\n");
	teardown();
	end();
}

/* HISTORY and SUMMARIES: items, arguments, storage errors. */
static void
t_history(void)
{
	begin("history_default");
	setup(NULL);
	input("HISTORY\n");
	CHECK(F.history_kind == HISTORY_MESSAGES && F.history_count == 20);
	proto_storage_item(F.p, F.history_id, 7, 1700000000, ROLE_USER,
	    "hi", 2);
	proto_storage_item(F.p, F.history_id, 8, 1700000001, ROLE_MODEL,
	    ".dot\nend\n", 9);
	proto_storage_item(F.p, F.history_id, 9, 1700000002, ROLE_USER,
	    "", 0);
	proto_storage_end(F.p, F.history_id, 3);
	OUT("--- 7 2023-11-14T22:13:20Z user\nhi\n"
	    "--- 8 2023-11-14T22:13:21Z model\n..dot\nend\n"
	    "--- 9 2023-11-14T22:13:22Z user\n"
	    ". OK 3 messages\n");
	teardown();
	end();

	begin("history_n");
	setup(NULL);
	input("history 5\n");
	CHECK(F.history_count == 5);
	proto_storage_end(F.p, F.history_id, 0);
	OUT(". OK 0 messages\n");
	teardown();
	end();

	begin("history_bad_n");
	setup(NULL);
	input("HISTORY 0\n");
	OUT(". ERR bad-argument N must be 1 to 1000\n");
	input("HISTORY abc\n");
	OUT(". ERR bad-argument N must be 1 to 1000\n");
	input("HISTORY 1001\n");
	OUT(". ERR bad-argument N must be 1 to 1000\n");
	input("HISTORY -1\n");
	OUT(". ERR bad-argument N must be 1 to 1000\n");
	CHECK(F.history_id == 0);
	teardown();
	end();

	begin("summaries");
	setup(NULL);
	input("SUMMARIES 2\n");
	CHECK(F.history_kind == HISTORY_SUMMARIES && F.history_count == 2);
	proto_storage_item(F.p, F.history_id, 3, 1700000000, ROLE_SUMMARY,
	    "Ada likes tea.", 14);
	proto_storage_end(F.p, F.history_id, 1);
	OUT("--- 3 2023-11-14T22:13:20Z summary\nAda likes tea.\n"
	    ". OK 1 summaries\n");
	teardown();
	end();

	begin("history_storage_error");
	setup(NULL);
	input("HISTORY\n");
	proto_storage_item(F.p, F.history_id, 7, 1700000000, ROLE_USER,
	    "hi", 2);
	proto_storage_error(F.p, F.history_id, "storage restarted");
	OUT("--- 7 2023-11-14T22:13:20Z user\nhi\n"
	    ". ERR storage storage restarted\n");
	teardown();
	end();

	begin("history_storage_down");
	setup(NULL);
	F.stor_down = 1;
	input("SUMMARIES\n");
	OUT(". ERR storage not available\n");
	teardown();
	end();
}

/* USAGE lines from storage, and a rate-limited prompt refused. */
static void
t_usage(void)
{
	begin("usage_lines_from_storage");
	setup(NULL);
	input("USAGE 3\n");
	CALLED("usage 3\n");
	proto_storage_line(F.p, F.usage_id, "2026-12-05 gemini-2.0-flash 2 10"
	    " 20");
	proto_storage_line(F.p, F.usage_id, "limit tokens-per-day 100 used 30");
	proto_storage_end(F.p, F.usage_id, 2);
	OUT("2026-12-05 gemini-2.0-flash 2 10 20\n"
	    "limit tokens-per-day 100 used 30\n"
	    ". OK usage of the last 3 days\n");
	input("USAGE\n");
	CALLED("usage 7\n");
	proto_storage_error(F.p, F.usage_id, "database error");
	OUT(". ERR storage database error\n");
	input("USAGE 0\n");
	OUT(". ERR bad-argument days must be 1 to 366\n");
	teardown();
	end();

	begin("rate_limited_prompt_is_refused");
	setup(NULL);
	input("ASK hello\n");
	proto_provider_error(F.p, F.gen_id, "rate-limited",
	    "requests-per-minute limit 2 reached, retry in 41 s");
	proto_storage_stored(F.p, F.ustore_id, 1);
	OUT(". ERR rate-limited requests-per-minute limit 2 reached, retry"
	    " in 41 s\n");
	teardown();
	end();
}

/* AUTH in each identity mode; tokens accepted, refused, restricted. */
static void
t_auth(void)
{
	struct opts	 tok = { .identity = IDENTITY_TOKEN };
	struct opts	 cert = { .identity = IDENTITY_CERTIFICATE };

	begin("auth_ip_mode");
	setup(NULL);
	input("AUTH secret\n");
	OUT(". ERR auth this server identifies clients by address\n");
	input("auth\n");
	OUT(". ERR bad-argument AUTH needs an argument\n");
	teardown();
	end();

	begin("auth_certificate_mode");
	setup(&cert);
	input("AUTH secret\n");
	OUT(". ERR auth this server identifies clients by certificate\n");
	teardown();
	end();

	begin("auth_token_mode_gates");
	setup(&tok);
	input("INFO\n");
	OUT(". ERR auth send AUTH <token> first\n");
	input("HELP\n");
	HAS("\n. OK\n");
	input("QUIT\n");
	OUT(". BYE\n");
	teardown();
	end();

	begin("auth_token_accepted");
	setup(&tok);
	NOTCALLED("context ");
	input("AUTH s3cret\nINFO\n");
	CALLED("auth s3cret\n");
	OUT("");
	proto_auth(F.p, AUTH_ACCEPTED, "abcdef0123456789abcdef0123456789"
	    "abcdef0123456789abcdef0123456789", "");
	CALLED("context ");
	HAS(". OK authenticated ID:abcdef012345\n");
	NOTCALLED("count ");
	conv_answer(F.context_id, 4, "", "", "");
	proto_storage_end(F.p, F.context_id, 0);
	CALLED("count ");
	proto_storage_end(F.p, F.count_id, 3);
	HAS("id: abcdef012345\n");
	input("AUTH again\n");
	HAS(". ERR auth already authenticated\n");
	teardown();
	end();

	begin("auth_token_refused_three_times");
	setup(&tok);
	input("AUTH a\n");
	proto_auth(F.p, AUTH_REFUSED, "", "");
	OUT(". ERR auth unknown token\n");
	input("INFO\n");
	OUT(". ERR auth send AUTH <token> first\n");
	input("AUTH b\n");
	proto_auth(F.p, AUTH_REFUSED, "", "");
	OUT(". ERR auth unknown token\n");
	input("AUTH c\n");
	proto_auth(F.p, AUTH_REFUSED, "", "");
	OUT(". BYE auth too many wrong tokens\n");
	CHECK(F.closed == 1);
	teardown();
	end();

	begin("auth_banned_address_says_bye_at_once");
	setup(&tok);
	input("AUTH a\n");
	proto_auth(F.p, AUTH_BANNED, "", "");
	OUT(". BYE auth too many wrong tokens from this address\n");
	CHECK(F.closed == 1);
	teardown();
	end();

	begin("auth_token_models_restrict_list_and_change");
	setup(&tok);
	input("AUTH s3cret\n");
	proto_auth(F.p, AUTH_ACCEPTED, "abcdef0123456789abcdef0123456789"
	    "abcdef0123456789abcdef0123456789", "gemini-2.5-pro");
	HAS(". OK authenticated ID:abcdef012345\n");
	conv_answer(F.context_id, 4, "", "", "");
	proto_storage_end(F.p, F.context_id, 0);
	take(F.out);
	/* The session's model was not allowed: it moved to the token's. */
	input("LIST-MODELS\n");
	answer_models(F.models_id, default_models, 100);
	OUT("1. gemini-2.5-pro (current)\n"
	    ". OK 1 models, current gemini-2.5-pro\n");
	input("CHANGE-MODEL gemini-2.0-flash\n");
	answer_models(F.models_id, default_models, 100);
	OUT(". ERR bad-argument no model named gemini-2.0-flash\n");
	input("ASK hi\n");
	CHECK(strcmp(F.gen_model, "gemini-2.5-pro") == 0);
	teardown();
	end();

	begin("auth_verdict_without_request_ignored");
	setup(&tok);
	proto_auth(F.p, AUTH_ACCEPTED, "abcdef0123456789abcdef0123456789"
	    "abcdef0123456789abcdef0123456789", "");
	OUT("");
	input("INFO\n");
	OUT(". ERR auth send AUTH <token> first\n");
	teardown();
	end();
}

/* EXIT and QUIT, the idle BYE, a BYE mid-stream, and EOF. */
static void
t_bye(void)
{
	begin("exit");
	setup(NULL);
	input("EXIT\nHELP\n");
	OUT(". BYE\n");
	CHECK(F.closed == 1 && proto_closed(F.p));
	input("HELP\n");
	OUT("");
	teardown();
	end();

	begin("quit_chat_mode");
	setup(NULL);
	input("IA\nQuit\n");
	HAS(". OK chat mode, BACK to return\n. BYE\n");
	CHECK(F.closed == 1);
	teardown();
	end();

	begin("exit_takes_no_argument");
	setup(NULL);
	input("EXIT now\n");
	OUT(". ERR bad-argument EXIT takes no argument\n");
	CHECK(F.closed == 0);
	teardown();
	end();

	begin("exit_waits_for_answer");
	setup(NULL);
	input("ASK q\nEXIT\n");
	CHECK(F.closed == 0);
	answer("a", 1, 1);
	stored();
	HAS("a\n. OK model=gemini-2.0-flash in=1 out=1 ms=0\n. BYE\n");
	CHECK(F.closed == 1);
	teardown();
	end();

	begin("idle_bye");
	setup(NULL);
	CHECK(!proto_busy(F.p));
	proto_bye(F.p, "idle timeout");
	OUT(". BYE idle timeout\n");
	CHECK(F.closed == 1);
	proto_bye(F.p, "again");
	OUT("");
	CHECK(F.closed == 1);
	teardown();
	end();

	begin("bye_midstream");
	setup(NULL);
	input("ASK q\n");
	proto_provider_chunk(F.p, F.gen_id, "half", 4);
	take(F.out);
	proto_bye(F.p, "session killed");
	OUT("\n. BYE session killed\n");
	CALLED("cancel ");
	proto_provider_chunk(F.p, F.gen_id, "more", 4);
	proto_storage_stored(F.p, F.ustore_id, 1);
	OUT("");
	teardown();
	end();

	begin("eof_finishes_queue");
	setup(NULL);
	input("ASK q\nHELP");
	proto_eof(F.p);
	CHECK(F.closed == 0);
	answer("a", 1, 1);
	stored();
	HAS("LIST-MODELS");
	CHECK(F.closed == 1);
	teardown();
	end();

	begin("eof_idle");
	setup(NULL);
	proto_eof(F.p);
	CHECK(F.closed == 1);
	OUT("");
	teardown();
	end();
}

/* State and events for the parent; a status stays on one line. */
static void
t_reporting(void)
{
	begin("state_reports");
	setup(NULL);
	input("IA\n");
	CHECK(F.state_mode == MODE_CHAT);
	exchange("q\n", "a");
	CHECK(F.state_messages == 2);
	CHECK(F.state_in == strlen("IA\nq\n"));
	CHECK(F.state_out > 0);
	input("BACK\n");
	CHECK(F.state_mode == MODE_COMMAND);
	teardown();
	end();

	/*
	 * The parent hears a prompt's counts once, when it is over, and
	 * they may wait for the worker's next message to it.
	 */
	begin("state_counts_wait");
	setup(NULL);
	input("IA\n");
	{
		int	 n = F.nstate;

		input("q\n");
		proto_storage_stored(F.p, F.ustore_id, 1);
		CHECK(F.nstate == n);
		answer("a", 3, 4);
		proto_storage_stored(F.p, F.mstore_id, 2);
		CHECK(F.nstate == n + 1 && F.state_messages == 2);
		CHECK(F.state_lazy);
		input("BACK\n");
		CHECK(F.state_mode == MODE_COMMAND && !F.state_lazy);
	}
	teardown();
	end();

	begin("events");
	setup(NULL);
	exchange("ASK hello\n", "a");
	{
		char	*e = take(F.events);

		CHECK(strstr(e, "prompt bytes=5\n") != NULL);
		CHECK(strstr(e, "answer model=gemini-2.0-flash in=3 out=4"
		    " ms=0\n") != NULL);
	}
	input("ASK x\n");
	proto_storage_stored(F.p, F.ustore_id, 1);
	proto_provider_error(F.p, F.gen_id, "rate-limited", "slow down");
	CHECK(strstr(take(F.events), "error code=rate-limited") != NULL);
	teardown();
	end();

	begin("status_text_one_line");
	setup(NULL);
	input("ASK x\n");
	proto_storage_stored(F.p, F.ustore_id, 1);
	proto_provider_error(F.p, F.gen_id, "upstream",
	    "line1\nline2\r. OK fake");
	OUT(". ERR upstream line1 line2 . OK fake\n");
	teardown();
	end();
}

/* SUBMIT, DIALOGUE, JOBS, RESULT (stored, live, CANCEL) and KILL. */
static void
t_jobs(void)
{
	begin("job_submit");
	setup(NULL);
	input("SUBMIT  write a poem  \n");
	CALLED("submit 0 1 gemini-2.0-flash - write a poem  \n");
	OUT("");
	proto_storage_stored(F.p, F.job_req, 17);
	OUT(". OK job 17\n");
	input("SUBMIT\n");
	OUT(". ERR bad-argument SUBMIT needs an argument\n");
	input("SUBMIT x\n");
	proto_storage_error(F.p, F.job_req, "database error");
	OUT(". ERR storage database error\n");
	teardown();
	end();

	begin("job_dialogue");
	setup(NULL);
	input("DIALOGUE 4 gemini-2.0-flash zeta hello\n");
	OUT(". ERR bad-argument no model named zeta\n");
	input("DIALOGUE 4 gemini-2.0-flash GEMINI-2.5-PRO hello there\n");
	CALLED("submit 1 4 gemini-2.0-flash gemini-2.5-pro hello there\n");
	proto_storage_stored(F.p, F.job_req, 3);
	OUT(". OK job 3\n");
	input("DIALOGUE 1 a b hi\n");
	OUT(". ERR bad-argument turns must be 2 to 50\n");
	input("DIALOGUE 51 a b hi\n");
	OUT(". ERR bad-argument turns must be 2 to 50\n");
	input("DIALOGUE 3 gemini-2.0-flash gemini-2.0-flash\n");
	OUT(". ERR bad-argument DIALOGUE <turns> <model A> <model B> "
	    "<opening>\n");
	teardown();
	end();

	begin("job_list");
	setup(NULL);
	input("JOBS 5\n");
	CALLED("jobs 5\n");
	proto_storage_job_line(F.p, F.job_req, 9, JOB_RUNNING, "m1",
	    1700000000, 12, "line one\nline two");
	proto_storage_job_line(F.p, F.job_req, 8, JOB_DONE, "m1",
	    1700000000, 3, "x");
	proto_storage_end(F.p, F.job_req, 2);
	OUT("9 running m1 2023-11-14T22:13:20Z 12 line one line two\n"
	    "8 done m1 2023-11-14T22:13:20Z 3 x\n. OK 2 jobs\n");
	input("JOBS 0\n");
	OUT(". ERR bad-argument N must be 1 to 1000\n");
	teardown();
	end();

	begin("job_result_done");
	setup(NULL);
	input("RESULT 7\n");
	CALLED("result 7\n");
	proto_storage_job_head(F.p, F.job_req, 7, JOB_DONE);
	proto_storage_job_chunk(F.p, F.job_req, CHUNK_TEXT, "Echo: ", 6);
	proto_storage_job_chunk(F.p, F.job_req, CHUNK_TEXT, ".hi", 3);
	proto_storage_job_end(F.p, F.job_req, JOB_DONE, "m1", 4, 5, 6,
	    "STOP", "", "");
	OUT("Echo: .hi\n. OK model=m1 in=4 out=5 ms=6\n");
	input("RESULT 7\n");
	proto_storage_job_head(F.p, F.job_req, 7, JOB_FAILED);
	proto_storage_job_end(F.p, F.job_req, JOB_FAILED, "m1", 0, 0, 0,
	    "", "upstream-timeout", "no answer");
	OUT(". ERR upstream-timeout no answer\n");
	input("RESULT 7\n");
	proto_storage_job_head(F.p, F.job_req, 7, JOB_CANCELLED);
	proto_storage_job_end(F.p, F.job_req, JOB_CANCELLED, "m1", 0, 0, 0,
	    "", "cancelled", "x");
	OUT(". ERR cancelled job 7 was cancelled\n");
	input("RESULT 8\n");
	proto_storage_error(F.p, F.job_req, "not-found no job 8");
	OUT(". ERR not-found no job 8\n");
	input("RESULT x\n");
	OUT(". ERR bad-argument not a job id: x\n");
	teardown();
	end();

	begin("job_result_follow_cancel");
	setup(NULL);
	input("RESULT 7\nINFO\n");
	proto_storage_job_head(F.p, F.job_req, 7, JOB_RUNNING);
	proto_storage_job_chunk(F.p, F.job_req, CHUNK_TURN, "m1", 2);
	proto_storage_job_chunk(F.p, F.job_req, CHUNK_TEXT, "abc", 3);
	proto_storage_job_chunk(F.p, F.job_req, CHUNK_TURN, "m2", 2);
	OUT("--- m1\nabc\n--- m2\n");
	input("CANCEL\n");
	CHECK(F.unfollowed == 1);
	HAS(". ERR cancelled job 7 still running\n");
	CALLED("count ");
	teardown();
	end();

	begin("job_kill");
	setup(NULL);
	input("KILL 4\n");
	CALLED("kill 4\n");
	proto_storage_stored(F.p, F.job_req, 4);
	OUT(". OK job 4 cancelled\n");
	input("KILL 5\n");
	proto_storage_error(F.p, F.job_req,
	    "bad-argument job 5 is done already");
	OUT(". ERR bad-argument job 5 is done already\n");
	teardown();
	end();
}

/* Every group of session cases; non-zero if one failed. */
int
main(void)
{
	t_greeting();
	t_help();
	t_unknown();
	t_info();
	t_list_models();
	t_change_model();
	t_chat();
	t_errors();
	t_cancel();
	t_pipelining();
	t_lines();
	t_multiline();
	t_back();
	t_context();
	t_memory();
	t_conversations();
	t_history();
	t_auth();
	t_usage();
	t_bye();
	t_reporting();
	t_jobs();
	return (failures > 0);
}
