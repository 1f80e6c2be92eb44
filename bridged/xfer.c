/*
 * xfer.c: the provider's transfers to the upstream API. libcurl's multi
 * interface runs inside the event loop of lib/: libcurl says which
 * sockets and which timeout it waits for, the loop tells it when they
 * are ready. A transfer is one HTTP exchange, a generation's stream or
 * a page of a model list, retried with backoff when the API is busy
 * or the network fails.  It knows no API: the struct api it is given
 * builds headers and parses events and errors, and the struct
 * xfer_ops it is given hears the text and the outcome.
 */

#include <sys/types.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "bridged.h"

#if CURL_ERROR_SIZE > XFER_ERRBUF
#error "XFER_ERRBUF is smaller than CURL_ERROR_SIZE"
#endif

#define PV_SSE_MAX	(64 * 1024 * 1024)	/* one stream event */
#define PV_ERRBODY_MAX	(1024 * 1024)		/* error body kept */
#define PV_PAGE_MAX	(16 * 1024 * 1024)	/* one model list page */
#define PV_QUEUE_HIGH	(4 * 1024 * 1024)	/* worker lags: pause */
#define PV_QUEUE_LOW	(1024 * 1024)		/* caught up: resume */
#define PV_FLOW_POLL	20			/* ms */
#define PV_BACKOFF	1000			/* ms, first retry */
#define PV_BACKOFF_MAX	60000			/* ms */
#define XFER_IDLE_CONNS	64	/* kept open to the upstreams between requests */

static struct {
	void			(*idle)(void);	/* after every batch */
	CURLM			*multi;
	struct ev_timer		 curl_timer;
	struct ev_timer		 flow_timer;
	struct xfer_list	 xfers;
} xf;

static void	xfer_check_done(void);

/* ---- libcurl in the event loop ---------------------------------------- */

/* A socket libcurl watches is ready: let it work. */
static void
curl_sock_event(int fd, int events, void *arg)
{
	int	 flags = 0, running;

	(void)arg;
	if (events & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (events & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	if (events & EV_HUP)
		flags |= CURL_CSELECT_ERR;
	curl_multi_socket_action(xf.multi, fd, flags, &running);
	xfer_check_done();
}

/* CURLMOPT_SOCKETFUNCTION: watch what libcurl asks for. */
static int
curl_sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
	int	 ev = 0;

	(void)e;
	(void)userp;
	(void)sockp;
	switch (what) {
	case CURL_POLL_IN:
		ev = EV_READ;
		break;
	case CURL_POLL_OUT:
		ev = EV_WRITE;
		break;
	case CURL_POLL_INOUT:
		ev = EV_READ | EV_WRITE;
		break;
	case CURL_POLL_REMOVE:
	default:
		/* Idle in the cache, or about to be closed: see ev_pause. */
		ev_set(s, 0, NULL, NULL);
		return (0);
	}
	ev_set(s, ev, curl_sock_event, NULL);
	return (0);
}

/* libcurl's timer is due. */
static void
curl_timer_fire(void *arg)
{
	int	 running;

	(void)arg;
	curl_multi_socket_action(xf.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	xfer_check_done();
}

/* CURLMOPT_TIMERFUNCTION: one timer for the whole multi handle. */
static int
curl_timer_cb(CURLM *m, long ms, void *userp)
{
	(void)m;
	(void)userp;
	if (ms < 0)
		ev_timer_del(&xf.curl_timer);
	else
		ev_timer_add(&xf.curl_timer, (uint64_t)ms);
	return (0);
}

/* Resume the streams that waited for a slow worker. */
static void
flow_fire(void *arg)
{
	struct xfer	*x;
	int		 still = 0;

	(void)arg;
	TAILQ_FOREACH(x, &xf.xfers, entry) {
		if (!x->paused)
			continue;
		if (x->ops->queued(x->arg) > PV_QUEUE_LOW) {
			still = 1;
			continue;
		}
		x->paused = 0;
		curl_easy_pause(x->easy, CURLPAUSE_CONT);
		if (x->paused)
			still = 1;
	}
	if (still)
		ev_timer_add(&xf.flow_timer, PV_FLOW_POLL);
	xfer_check_done();
}

/* ---- transfers ---------------------------------------------------- */

static void
xfer_fail(struct xfer *x, const char *code, const char *fmt, ...)
    __attribute__((__format__ (printf, 3, 4)));

/* Remember why a transfer must stop; reported when libcurl is done. */
static void
xfer_fail(struct xfer *x, const char *code, const char *fmt, ...)
{
	va_list	 ap;

	if (x->fail_code != NULL)
		return;
	x->fail_code = code;
	va_start(ap, fmt);
	vsnprintf(x->fail_text, sizeof(x->fail_text), fmt, ap);
	va_end(ap);
}

/* CURLOPT_HEADERFUNCTION: the status of each response, Retry-After. */
static size_t
xfer_header(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer	*x = arg;
	size_t		 len = size * n, vlen;
	double		 ms;
	char		 v[64];

	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		x->status = 0;
		x->retry_after = -1;
	} else if (len > 12 && strncasecmp(buf, "Retry-After:", 12) == 0) {
		vlen = len - 12;
		if (vlen >= sizeof(v))
			vlen = sizeof(v) - 1;
		memcpy(v, buf + 12, vlen);
		v[vlen] = '\0';
		v[strcspn(v, "\r\n")] = '\0';
		x->retry_after = wire_retry_after(v, time(NULL));
	} else if (len > 15 && strncasecmp(buf, "retry-after-ms:", 15) == 0) {
		/* OpenAI's, in milliseconds. */
		vlen = len - 15;
		if (vlen >= sizeof(v))
			vlen = sizeof(v) - 1;
		memcpy(v, buf + 15, vlen);
		v[vlen] = '\0';
		v[strcspn(v, "\r\n")] = '\0';
		if ((ms = wire_retry_after(v, time(NULL))) >= 0)
			x->retry_after = ms / 1000;
	}
	return (len);
}

/* CURLOPT_WRITEFUNCTION: feed the stream, or keep the body. */
static size_t
xfer_write(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer	*x = arg;
	size_t		 len = size * n, max;
	long		 code = 0;

	if (x->status == 0) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
		x->status = code;
	}
	if (!x->stream || x->status < 200 || x->status > 299) {
		max = x->status >= 200 && x->status <= 299 ? PV_PAGE_MAX :
		    PV_ERRBODY_MAX;
		if (ibuf_left(x->resp) + len > max) {
			if (x->status < 200 || x->status > 299)
				return (len);	/* enough of an error */
			xfer_fail(x, "upstream", "model list page larger than "
			    "%d bytes", PV_PAGE_MAX);
			return (0);
		}
		if (ibuf_add(x->resp, buf, len) == -1) {
			xfer_fail(x, "internal", "out of memory");
			return (0);
		}
		return (len);
	}
	/* Wait while the worker has not taken what it was sent. */
	if (x->ops->queued(x->arg) > PV_QUEUE_HIGH) {
		x->paused = 1;
		if (!ev_timer_pending(&xf.flow_timer))
			ev_timer_add(&xf.flow_timer, PV_FLOW_POLL);
		return (CURL_WRITEFUNC_PAUSE);
	}
	if (sse_feed(&x->sse, buf, len) == -1) {
		if (x->sse.error == SSE_ETOOBIG)
			xfer_fail(x, "upstream", "an event of the answer "
			    "stream is larger than %d bytes", PV_SSE_MAX);
		else if (x->sse.error == SSE_ENOMEM)
			xfer_fail(x, "internal", "out of memory");
		return (0);
	}
	return (len);
}

/* One event of a generation's stream, parsed by the API's code. */
static int
xfer_event(void *arg, const char *event, const char *data, size_t len)
{
	struct xfer	*x = arg;
	struct api_event ev;
	int		 rv;

	/* After the API's own end, nothing counts. */
	if (x->ended)
		return (0);
	json_arena_open();
	rv = x->api->parse_event(event, data, len, &ev);
	json_arena_close();
	if (rv == -1) {
		xfer_fail(x, "upstream", "%s: the API sent an event that is "
		    "not JSON", x->sent > 0 ? "answer incomplete" :
		    "no answer");
		return (-1);
	}
	if (ev.has_error) {
		x->err = ev.err;
		x->err_set = 1;
		wire_event_free(&ev);
		return (-1);
	}
	if (ev.refusal[0] != '\0') {
		xfer_fail(x, "upstream", "%s", ev.refusal);
		wire_event_free(&ev);
		return (-1);
	}
	if (ev.textlen > 0) {
		x->ops->text(x->arg, ev.text, ev.textlen);
		x->sent += ev.textlen;
	}
	if (ev.finish[0] != '\0') {
		strlcpy(x->finish, ev.finish, sizeof(x->finish));
		strlcpy(x->stop_error, ev.stop_error, sizeof(x->stop_error));
	}
	/* Running totals: the last one counts. */
	if (ev.prompt >= 0)
		x->prompt = ev.prompt;
	if (ev.answer >= 0)
		x->answer = ev.answer;
	if (ev.end)
		x->ended = 1;
	wire_event_free(&ev);
	return (0);
}

/* Add one header line to a transfer (the api's headers callback). */
static int
xfer_add_header(void *arg, const char *line)
{
	struct xfer		*x = arg;
	struct curl_slist	*l;

	if ((l = curl_slist_append(x->hdrs, line)) == NULL)
		return (-1);
	x->hdrs = l;
	return (0);
}

/*
 * A transfer of provider pc to url, not yet started: a stream (POST
 * of the body set afterwards) when ops has a text callback, else a
 * GET.  key may be NULL.
 */
struct xfer *
xfer_new(const struct api *api, const struct provider_conf *pc,
    const char *url, const char *key, const struct xfer_ops *ops, void *arg)
{
	struct xfer	*x;
	int		 timeout;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		fatal("%s", __func__);
	x->api = api;
	x->pc = pc;
	x->ops = ops;
	x->arg = arg;
	x->stream = ops->text != NULL;
	x->retry_after = -1;
	x->prompt = x->answer = -1;
	x->started = ev_now_ms();
	timeout = pc->timeout > 0 ? pc->timeout : PROVIDER_TIMEOUT;
	x->deadline = x->started + (uint64_t)timeout * 1000;
	ev_timer_set(&x->retry, NULL, x);
	if ((x->url = strdup(url)) == NULL ||
	    (x->resp = ibuf_open(0)) == NULL)
		fatal("%s", __func__);
	if (api->headers(key, x->stream, xfer_add_header, x) == -1 ||
	    (x->stream && xfer_add_header(x,
	    "Content-Type: application/json") == -1) ||
	    xfer_add_header(x, "Expect:") == -1)
		fatalx("%s: curl_slist_append", __func__);
	TAILQ_INSERT_TAIL(&xf.xfers, x, entry);
	return (x);
}

/* Stop a transfer wherever it is and free it. */
void
xfer_free(struct xfer *x)
{
	struct curl_slist	*s;

	if (x == NULL)
		return;
	if (x->active)
		curl_multi_remove_handle(xf.multi, x->easy);
	if (x->easy != NULL)
		curl_easy_cleanup(x->easy);
	ev_timer_del(&x->retry);
	/* The key was copied into the header list: wipe it. */
	for (s = x->hdrs; s != NULL; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(x->hdrs);
	sse_clear(&x->sse);
	if (x->body != NULL)
		freezero(x->body, x->bodylen);
	ibuf_free(x->resp);
	free(x->url);
	TAILQ_REMOVE(&xf.xfers, x, entry);
	free(x);
}

/* The backoff is over: try again, if time is left. */
static void
xfer_retry_fire(void *arg)
{
	struct xfer	*x = arg;

	if (xfer_start(x) == -1) {
		xfer_fail(x, "upstream-timeout", "no answer within %d s",
		    x->pc->timeout);
		/* Report it as libcurl would have. */
		x->ops->done(x->arg, x, x->fail_code, x->fail_text);
	}
}

/* Set up the easy handle once; options common to every attempt. */
static int
xfer_setup(struct xfer *x)
{
	CURL	*e;
	long	 ct;

	if ((e = curl_easy_init()) == NULL)
		return (-1);
	x->easy = e;
	ct = x->pc->connect_timeout > 0 ? x->pc->connect_timeout :
	    PROVIDER_CONNECT_TIMEOUT;
	if (curl_easy_setopt(e, CURLOPT_PRIVATE, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, xfer_write) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, xfer_header) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, x) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, ct) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "bridged/" BRIDGE_VERSION)
	    != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK)
		return (-1);
#if LIBCURL_VERSION_NUM >= 0x075500
	if (curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK)
		return (-1);
#else
	if (curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP |
	    CURLPROTO_HTTPS)) != CURLE_OK)
		return (-1);
#endif
	if (x->stream) {
		if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)x->bodylen) != CURLE_OK ||
		    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body) !=
		    CURLE_OK)
			return (-1);
	} else if (curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK)
		return (-1);
	return (0);
}

/* Begin (or begin again) an attempt; -1 when no time is left. */
int
xfer_start(struct xfer *x)
{
	uint64_t	 now = ev_now_ms();

	if (now >= x->deadline)
		return (-1);
	if (x->easy == NULL && xfer_setup(x) == -1)
		fatalx("%s: cannot set up a transfer", __func__);
	x->status = 0;
	x->retry_after = -1;
	x->fail_code = NULL;
	x->fail_text[0] = '\0';
	x->err_set = 0;
	x->busy = 0;
	x->ended = 0;
	x->errbuf[0] = '\0';
	x->finish[0] = x->stop_error[0] = '\0';
	x->prompt = x->answer = -1;
	x->paused = 0;
	ibuf_reset(x->resp);
	sse_clear(&x->sse);
	sse_init(&x->sse, PV_SSE_MAX, xfer_event, x);
	if (curl_easy_setopt(x->easy, CURLOPT_URL, x->url) != CURLE_OK ||
	    curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS,
	    (long)(x->deadline - now)) != CURLE_OK)
		fatalx("%s: curl_easy_setopt", __func__);
	if (curl_multi_add_handle(xf.multi, x->easy) != CURLM_OK)
		fatalx("%s: curl_multi_add_handle", __func__);
	x->active = 1;
	return (0);
}

/* Start over with another URL: the next page of a list. */
int
xfer_restart(struct xfer *x, const char *url)
{
	int	 timeout;

	free(x->url);
	if ((x->url = strdup(url)) == NULL)
		fatal("%s", __func__);
	x->attempt = 0;
	timeout = x->pc->timeout > 0 ? x->pc->timeout : PROVIDER_TIMEOUT;
	x->deadline = ev_now_ms() + (uint64_t)timeout * 1000;
	return (xfer_start(x));
}

/* Exponential backoff with jitter: about 1, 2, 4 s ... at most 60. */
static uint64_t
backoff(int attempt)
{
	uint64_t	 ms = PV_BACKOFF;

	while (attempt-- > 0 && ms < PV_BACKOFF_MAX)
		ms *= 2;
	if (ms > PV_BACKOFF_MAX)
		ms = PV_BACKOFF_MAX;
	return (ms / 2 + arc4random_uniform(ms / 2 + 1));
}

/* Try again after delay ms, if retries and time are left. */
static int
xfer_retry(struct xfer *x, uint64_t delay, const char *why)
{
	int	 retries = x->pc->retries;

	if (x->sent > 0 || x->attempt >= retries ||
	    ev_now_ms() + delay >= x->deadline)
		return (-1);
	x->attempt++;
	log_info("%s; retry %d of %d in %llu ms", why, x->attempt, retries,
	    (unsigned long long)delay);
	ev_timer_set(&x->retry, xfer_retry_fire, x);
	ev_timer_add(&x->retry, delay);
	return (0);
}

/* An error the API reported (HTTP status or error event); 1: retrying. */
static int
xfer_api_error(struct xfer *x, struct api_error *e, int instream,
    const char **codep, char *text, size_t textsz)
{
	char		 why[64];
	uint64_t	 delay;
	unsigned int	 verdict;
	int		 c = e->code;

	verdict = x->api->classify(e, codep);
	if (verdict & API_RETRY) {
		if (x->retry_after >= 0)
			delay = x->retry_after * 1000;
		else if (e->retry_delay >= 0)
			delay = e->retry_delay * 1000;
		else
			delay = backoff(x->attempt);
		snprintf(why, sizeof(why), "upstream said %d%s", c,
		    instream ? " in the stream" : "");
		if (xfer_retry(x, delay, why) == 0)
			return (1);
	}
	/* Busy to the end, before any answer: a fallback may answer. */
	x->busy = (verdict & API_BUSY) && x->sent == 0;
	snprintf(text, textsz, "%s%s%d%s%s: %s",
	    instream ? (x->sent > 0 ? "answer incomplete: " :
	    "error in the answer stream: ") : "",
	    instream ? "" : "HTTP ", c, e->type[0] != '\0' ? " " : "",
	    e->type, e->message);
	if (e->per_day) {
		strlcat(text, " (daily quota: retrying now will not help)",
		    textsz);
	} else if (c == 429 && e->retry_delay >= 0) {
		snprintf(why, sizeof(why), " (retry in %.0f s)",
		    e->retry_delay + 0.5);
		strlcat(text, why, textsz);
	}
	return (0);
}

/* libcurl could not complete the exchange; 1: retrying. */
static int
xfer_transport_error(struct xfer *x, CURLcode rc, const char **codep,
    char *text, size_t textsz)
{
	const char	*detail;
	char		 why[64];

	detail = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(rc);
	if (rc == CURLE_OPERATION_TIMEDOUT) {
		*codep = "upstream-timeout";
		snprintf(text, textsz, "%s: %s", x->sent > 0 ?
		    "answer incomplete" : "the API did not answer in time",
		    detail);
		return (0);
	}
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		snprintf(why, sizeof(why), "upstream transfer failed (%d)",
		    (int)rc);
		if (xfer_retry(x, backoff(x->attempt), why) == 0)
			return (1);
		break;
	default:
		break;
	}
	*codep = "upstream";
	snprintf(text, textsz, "%s: %s", x->sent > 0 ? "answer incomplete" :
	    "cannot reach the API", detail);
	return (0);
}

/* A stream that ended well: how did the answer end? */
static void
gen_complete(struct xfer *x, const char **codep, char *text, size_t textsz)
{
	*codep = "upstream";
	if (sse_pending(&x->sse) && !x->ended)
		snprintf(text, textsz, "answer incomplete: the stream ended "
		    "inside an event");
	else if (x->stop_error[0] != '\0')
		strlcpy(text, x->stop_error, textsz);
	else if (x->finish[0] != '\0')
		*codep = NULL;
	else if (x->ended) {
		/* The API's own end mark, without a reason: a plain end. */
		strlcpy(x->finish, "STOP", sizeof(x->finish));
		*codep = NULL;
	} else
		snprintf(text, textsz, "answer incomplete: the stream ended "
		    "without a finish reason");
}

/* A transfer is over: retry, go on to the next page, or answer. */
static void
xfer_done(struct xfer *x, CURLcode rc)
{
	struct api_error e;
	const char	*code = NULL;
	char		 text[800];
	long		 status = 0;

	curl_multi_remove_handle(xf.multi, x->easy);
	x->active = 0;
	x->paused = 0;
	if (x->status == 0) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		x->status = status;
	}
	text[0] = '\0';
	if (x->fail_code != NULL) {
		code = x->fail_code;
		strlcpy(text, x->fail_text, sizeof(text));
	} else if (x->err_set) {
		if (xfer_api_error(x, &x->err, 1, &code, text, sizeof(text)))
			return;
	} else if (x->status >= 300 || (x->status > 0 && x->status < 200)) {
		x->api->parse_error(ibuf_data(x->resp), ibuf_left(x->resp),
		    (int)x->status, &e);
		if (xfer_api_error(x, &e, 0, &code, text, sizeof(text)))
			return;
	} else if (rc != CURLE_OK && !(x->stream && x->ended &&
	    x->finish[0] != '\0')) {
		if (xfer_transport_error(x, rc, &code, text, sizeof(text)))
			return;
	} else if (x->stream)
		gen_complete(x, &code, text, sizeof(text));
	x->ops->done(x->arg, x, code, code != NULL ? text : NULL);
}

/* Hand every finished transfer to xfer_done. */
static void
xfer_check_done(void)
{
	CURLMsg		*m;
	struct xfer	*x;
	int		 left;

	while ((m = curl_multi_info_read(xf.multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		x = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
		    (char **)&x);
		if (x != NULL)
			xfer_done(x, m->data.result);
	}
	if (xf.idle != NULL)
		xf.idle();
}

/* Set up libcurl and its multi handle; idle is called after events. */
void
xfer_init(void (*idle)(void))
{
	xf.idle = idle;
	TAILQ_INIT(&xf.xfers);
	json_arena_init();
	ev_timer_set(&xf.curl_timer, curl_timer_fire, NULL);
	ev_timer_set(&xf.flow_timer, flow_fire, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	if ((xf.multi = curl_multi_init()) == NULL)
		fatalx("curl_multi_init failed");
	if (curl_multi_setopt(xf.multi, CURLMOPT_SOCKETFUNCTION,
	    curl_sock_cb) != CURLM_OK ||
	    curl_multi_setopt(xf.multi, CURLMOPT_TIMERFUNCTION,
	    curl_timer_cb) != CURLM_OK ||
	    curl_multi_setopt(xf.multi, CURLMOPT_MAXCONNECTS,
	    (long)XFER_IDLE_CONNS) != CURLM_OK)
		fatalx("curl_multi_setopt failed");
}
