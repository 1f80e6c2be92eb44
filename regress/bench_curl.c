/*
 * bench_curl.c: the floor of bridged's provider for `make bench`: the
 * chat path's upstream requests made as the provider makes them, and
 * nothing else. Each of -n clients POSTs one user turn (the body
 * loadgen's http mode sends) to the upstream on 127.0.0.1 and, when
 * the answer has ended, the next. The requests go through libcurl's
 * multi interface driven by epoll(7) sockets and one timer, with a new
 * easy handle each and the options bridged's xfer.c sets; every line
 * of the answer is read for server-sent events, and the data of each
 * event parsed by jansson's json_loadb, as the provider parses them.
 * What the provider does beside (the request's body built from a
 * conversation, each piece handed to a worker) is left out.
 *
 * The upstream's keep-alive connections are kept (CURLMOPT_MAXCONNECTS
 * as the provider's), so after the first requests none connects.
 *
 * usage: bench_curl -p port -g api-key -u path [-n clients] [-t secs]
 *	[-w warm-secs] [-m text]
 * It prints one line as loadgen does, "curl conns=N ops=N secs=S
 * rate=R p50_us=U p90_us=U p99_us=U max_us=U errors=N cpu_us_per_op=U
 * ops_all=N": the round trips timed after the warm-up; its own CPU
 * (user and system) over all its requests, warm-up included, as
 * loadgen counts its own. Linux only (epoll).
 */

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include <err.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#define BC_CLIENTS	512		/* -n at most */
#define BC_LINE		65536		/* the longest SSE line kept */
#define BC_SAMPLES	(1U << 22)	/* round trips timed at most */
#define BC_MAXCONNS	64L		/* as xfer.c's XFER_IDLE_CONNS */

/* One client: its request under way and the answer's line so far. */
struct client {
	CURL		*easy;
	char		 body[512];
	char		 errbuf[CURL_ERROR_SIZE];
	char		*line;		/* BC_LINE bytes */
	size_t		 linelen;
	int		 overlong;	/* the line passed BC_LINE */
	int		 events;	/* of this answer */
	uint64_t	 t0;		/* when it was asked, ns */
};

static CURLM		*multi;
static int		 epfd;
static long		 timer_ms = -1;		/* libcurl's, -1: none */
static struct curl_slist *headers;
static char		 url[1024];
static const char	*text = "bench";
static unsigned int	 seqno;
static uint64_t		 ops_all, errors;
static uint64_t		*samples;
static size_t		 nsamples;
static int		 timing;		/* past the warm-up */

/* The monotonic clock, ns. */
static uint64_t
now_ns(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
}

/* This process's CPU, user and system, in microseconds. */
static double
cpu_us(void)
{
	struct rusage	 ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		err(1, "getrusage");
	return ((ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
	    ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* One event's data, as the provider reads it: a JSON text, parsed. */
static void
event_data(struct client *c, const char *data, size_t len)
{
	json_error_t	 jerr;
	json_t		*root;

	if ((root = json_loadb(data, len, 0, &jerr)) == NULL) {
		errors++;
		return;
	}
	if (json_is_object(root))
		c->events++;
	json_decref(root);
}

/* One line of the answer: an event's data line is parsed. */
static void
answer_line(struct client *c)
{
	size_t	 n = c->linelen;

	if (n > 0 && c->line[n - 1] == '\r')
		n--;
	if (!c->overlong && n > 5 && memcmp(c->line, "data:", 5) == 0) {
		if (n > 6 && c->line[5] == ' ')
			event_data(c, c->line + 6, n - 6);
		else
			event_data(c, c->line + 5, n - 5);
	}
	c->linelen = 0;
	c->overlong = 0;
}

/* CURLOPT_WRITEFUNCTION: the answer's bytes, split into lines. */
static size_t
answer_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct client	*c = arg;
	size_t		 len = size * nmemb, i, take;
	const char	*nl;

	for (i = 0; i < len; i += take) {
		nl = memchr(p + i, '\n', len - i);
		take = nl != NULL ? (size_t)(nl - (p + i)) : len - i;
		if (take > BC_LINE - c->linelen) {
			c->overlong = 1;
			c->linelen = 0;
		} else {
			memcpy(c->line + c->linelen, p + i, take);
			c->linelen += take;
		}
		if (nl != NULL) {
			answer_line(c);
			take++;
		}
	}
	return (len);
}

/* CURLOPT_HEADERFUNCTION: each header line looked at, as xfer.c does. */
static size_t
answer_header(char *p, size_t size, size_t nmemb, void *arg)
{
	size_t	 len = size * nmemb;

	(void)arg;
	if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0)
		errors++;	/* the fake upstream never asks */
	return (len);
}

/* A new easy handle for the client's next request, and its start. */
static void
request_start(struct client *c)
{
	CURL	*e;
	int	 n;

	n = snprintf(c->body, sizeof(c->body), "{\"contents\": [{\"role\": "
	    "\"user\", \"parts\": [{\"text\": \"%s #%u\"}]}]}", text,
	    ++seqno);
	if (n < 0 || (size_t)n >= sizeof(c->body))
		errx(1, "-m text too long");
	if ((e = curl_easy_init()) == NULL)
		errx(1, "curl_easy_init");
	c->easy = e;
	c->linelen = 0;
	c->overlong = 0;
	c->events = 0;
	c->errbuf[0] = '\0';
	if (curl_easy_setopt(e, CURLOPT_PRIVATE, c) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, answer_write) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, c) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, answer_header) !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, c) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "bench_curl") !=
	    CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
	    (curl_off_t)n) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L) != CURLE_OK)
		errx(1, "curl_easy_setopt");
	c->t0 = now_ns();
	if (curl_multi_add_handle(multi, e) != CURLM_OK)
		errx(1, "curl_multi_add_handle");
}

/* The client's request has ended: time it, free it, ask again. */
static void
request_done(struct client *c, CURLcode rc)
{
	long	 status = 0;

	(void)curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK || status != 200 || c->events == 0) {
		if (errors++ < 3)
			warnx("request: %s (HTTP %ld, %d events)", rc !=
			    CURLE_OK ? (c->errbuf[0] ? c->errbuf :
			    curl_easy_strerror(rc)) : "answered", status,
			    c->events);
	} else {
		ops_all++;
		if (timing && nsamples < BC_SAMPLES)
			samples[nsamples++] = (now_ns() - c->t0) / 1000;
	}
	(void)curl_multi_remove_handle(multi, c->easy);
	curl_easy_cleanup(c->easy);
	request_start(c);
}

/* Every request that has ended since the last look. */
static void
requests_check(void)
{
	CURLMsg		*msg;
	struct client	*c;
	int		 left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
		    (char **)&c) != CURLE_OK || c == NULL)
			errx(1, "a request without its client");
		request_done(c, msg->data.result);
	}
}

/* CURLMOPT_SOCKETFUNCTION: epoll watches what libcurl asks for. */
static int
sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct epoll_event	 ev;

	(void)e;
	(void)userp;
	memset(&ev, 0, sizeof(ev));
	ev.data.fd = s;
	if (what == CURL_POLL_REMOVE) {
		if (sockp != NULL)
			(void)epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL);
		(void)curl_multi_assign(multi, s, NULL);
		return (0);
	}
	ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) |
	    (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (epoll_ctl(epfd, sockp == NULL ? EPOLL_CTL_ADD : EPOLL_CTL_MOD,
	    s, &ev) == -1)
		err(1, "epoll_ctl");
	(void)curl_multi_assign(multi, s, (void *)1);
	return (0);
}

/* CURLMOPT_TIMERFUNCTION: the one timer libcurl wants. */
static int
timer_cb(CURLM *m, long ms, void *userp)
{
	(void)m;
	(void)userp;
	timer_ms = ms;
	return (0);
}

/* libcurl's timer is due. */
static void
timer_fire(void)
{
	int	 running;

	timer_ms = -1;
	(void)curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0,
	    &running);
	requests_check();
}

/* Order of two round trips, for qsort. */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	 x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x < y ? -1 : x > y);
}

/* The sample at fraction p of the sorted round trips (nearest rank). */
static uint64_t
pctl(double p)
{
	size_t	 i;

	if (nsamples == 0)
		return (0);
	i = (size_t)(p * (double)(nsamples - 1) + 0.5);
	return (samples[i < nsamples ? i : nsamples - 1]);
}

/* The port given to -p, 1 to 65535; exits if it is not. */
static int
port_arg(const char *arg)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno != 0 || *arg == '\0' || *end != '\0' || v < 1 || v > 65535)
		errx(2, "bad port: %s", arg);
	return ((int)v);
}

/* A count or a number of seconds given to opt, lo to hi. */
static double
num_arg(int opt, const char *arg, double lo, double hi)
{
	char	*end;
	double	 v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno != 0 || *arg == '\0' || *end != '\0' || !(v >= lo) ||
	    !(v <= hi))
		errx(2, "-%c: %s is not from %g to %g", opt, arg, lo, hi);
	return (v);
}

/* Print usage and exit. */
static void
usage(void)
{
	fprintf(stderr, "usage: bench_curl -p port -g api-key -u path "
	    "[-n clients] [-t secs] [-w warm-secs] [-m text]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	struct epoll_event	 evs[64];
	struct client		*clients;
	const char		*key = NULL, *path = NULL;
	char			 hdr[512];
	double			 secs = 5, warm = 1, elapsed;
	uint64_t		 start, t;
	int			 ch, port = 0, n = 1, i, k, running, flags;

	while ((ch = getopt(argc, argv, "g:m:n:p:t:u:w:")) != -1) {
		switch (ch) {
		case 'g':
			key = optarg;
			break;
		case 'm':
			text = optarg;
			break;
		case 'n':
			n = (int)num_arg(ch, optarg, 1, BC_CLIENTS);
			break;
		case 'p':
			port = port_arg(optarg);
			break;
		case 't':
			secs = num_arg(ch, optarg, 0.1, 3600);
			break;
		case 'u':
			path = optarg;
			break;
		case 'w':
			warm = num_arg(ch, optarg, 0, 3600);
			break;
		default:
			usage();
		}
	}
	if (port == 0 || key == NULL || path == NULL || path[0] != '/' ||
	    optind != argc)
		usage();
	if (strlen(path) > 900 || strlen(key) > 400 ||
	    strpbrk(key, "\r\n") != NULL || strpbrk(path, "\r\n ") != NULL)
		errx(2, "-g or -u too long, or with a line break");
	(void)snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	(void)snprintf(hdr, sizeof(hdr), "x-goog-api-key: %s", key);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
	    (headers = curl_slist_append(NULL, hdr)) == NULL ||
	    (headers = curl_slist_append(headers,
	    "Content-Type: application/json")) == NULL ||
	    (multi = curl_multi_init()) == NULL)
		errx(1, "libcurl");
	if (curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, sock_cb) !=
	    CURLM_OK ||
	    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb) !=
	    CURLM_OK ||
	    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, BC_MAXCONNS) !=
	    CURLM_OK)
		errx(1, "curl_multi_setopt");
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(1, "epoll_create1");
	if ((samples = calloc(BC_SAMPLES, sizeof(*samples))) == NULL ||
	    (clients = calloc((size_t)n, sizeof(*clients))) == NULL)
		err(1, NULL);
	for (i = 0; i < n; i++) {
		if ((clients[i].line = malloc(BC_LINE)) == NULL)
			err(1, NULL);
		request_start(&clients[i]);
	}

	start = now_ns();
	for (;;) {
		t = now_ns();
		if (!timing && (double)(t - start) / 1e9 >= warm) {
			timing = 1;
			start = t;
		}
		if (timing && (double)(t - start) / 1e9 >= secs)
			break;
		if (timer_ms == 0) {
			timer_fire();
			continue;
		}
		k = epoll_wait(epfd, evs, 64, timer_ms < 0 || timer_ms > 100 ?
		    100 : (int)timer_ms);
		if (k == -1) {
			if (errno == EINTR)
				continue;
			err(1, "epoll_wait");
		}
		if (k == 0 && timer_ms >= 0) {
			timer_fire();
			continue;
		}
		for (i = 0; i < k; i++) {
			flags = 0;
			if (evs[i].events & EPOLLIN)
				flags |= CURL_CSELECT_IN;
			if (evs[i].events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (evs[i].events & (EPOLLERR | EPOLLHUP))
				flags |= CURL_CSELECT_ERR;
			(void)curl_multi_socket_action(multi, evs[i].data.fd,
			    flags, &running);
		}
		requests_check();
	}
	elapsed = (double)(now_ns() - start) / 1e9;
	qsort(samples, nsamples, sizeof(*samples), cmp_u64);
	printf("curl conns=%d ops=%zu secs=%.3f rate=%.1f p50_us=%.1f "
	    "p90_us=%.1f p99_us=%.1f max_us=%.1f errors=%llu "
	    "cpu_us_per_op=%.1f ops_all=%llu\n", n, nsamples, elapsed,
	    (double)nsamples / elapsed, (double)pctl(0.50),
	    (double)pctl(0.90), (double)pctl(0.99),
	    (double)pctl(1.0), (unsigned long long)errors,
	    ops_all > 0 ? cpu_us() / (double)ops_all : 0,
	    (unsigned long long)ops_all);
	return (0);
}
