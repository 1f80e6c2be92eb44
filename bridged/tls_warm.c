/*
 * tls_warm.c: TLS handshakes held in memory, through libtls's I/O
 * callbacks, that no client sees: the template's with itself before it
 * forks (to fill OpenSSL's caches once for every worker), and each new
 * worker's rehearsal of the server's half on the ClientHello the
 * template kept (to touch the pages a handshake needs before a client
 * waits on them).
 */

#include <sys/types.h>

#include <string.h>
#include <tls.h>

#include "bridged.h"

static struct ibuf	*hello;		/* the warm-up's ClientHello */

/* One side of a handshake held in memory: what it reads and writes. */
struct tls_pipe {
	struct ibuf	*in;
	struct ibuf	*out;		/* NULL: written bytes are dropped */
};

/* libtls reads what the other side wrote, or waits. */
static ssize_t
tls_pipe_read(struct tls *ctx, void *buf, size_t len, void *arg)
{
	struct tls_pipe	*p = arg;
	size_t		 n = ibuf_left(p->in);

	(void)ctx;
	if (n == 0)
		return (TLS_WANT_POLLIN);
	if (n > len)
		n = len;
	memcpy(buf, ibuf_data(p->in), n);
	ibuf_consume(p->in, n);
	return ((ssize_t)n);
}

/* libtls writes for the other side (or for no one). */
static ssize_t
tls_pipe_write(struct tls *ctx, const void *buf, size_t len, void *arg)
{
	struct tls_pipe	*p = arg;

	(void)ctx;
	if (p->out != NULL && ibuf_add(p->out, buf, len) == -1)
		return (-1);
	return ((ssize_t)len);
}

/*
 * One TLS handshake of the template with itself, in memory, and a byte
 * each way (the server's session ticket goes then): OpenSSL 3 fills
 * its caches of algorithms and names on first use, and a worker forked
 * after this finds them filled instead of writing them into pages it
 * shares with the template. The client's first flight is kept for
 * tls_rehearse; nothing else of it is.
 */
void
tls_warm_up(struct tls *tlsctx)
{
	struct tls_config	*ccfg;
	struct tls		*client = NULL, *sconn = NULL;
	struct tls_pipe		 cp, sp;
	char			 c;
	int			 i, sdone = 0, cdone = 0, r;

	if (tlsctx == NULL)
		return;
	memset(&cp, 0, sizeof(cp));
	memset(&sp, 0, sizeof(sp));
	if ((cp.in = sp.out = ibuf_open(8192)) == NULL ||
	    (sp.in = cp.out = ibuf_open(2048)) == NULL ||
	    (ccfg = tls_config_new()) == NULL) {
		ibuf_free(cp.in);
		ibuf_free(sp.in);
		return;
	}
	tls_config_insecure_noverifycert(ccfg);
	tls_config_insecure_noverifyname(ccfg);
	if ((client = tls_client()) == NULL ||
	    tls_configure(client, ccfg) == -1 ||
	    tls_connect_cbs(client, tls_pipe_read, tls_pipe_write, &cp,
	    "localhost") == -1 ||
	    tls_accept_cbs(tlsctx, &sconn, tls_pipe_read, tls_pipe_write,
	    &sp) == -1)
		goto done;
	for (i = 0; i < 100 && !(sdone && cdone); i++) {
		if (!cdone) {
			if ((r = tls_handshake(client)) == -1)
				goto done;
			cdone = r == 0;
		}
		/* The ClientHello, before the server reads it. */
		if (hello == NULL && ibuf_left(sp.in) > 0 &&
		    (hello = ibuf_open(ibuf_left(sp.in))) != NULL &&
		    ibuf_add(hello, ibuf_data(sp.in), ibuf_left(sp.in)) ==
		    -1) {
			ibuf_free(hello);
			hello = NULL;
		}
		if (!sdone) {
			if ((r = tls_handshake(sconn)) == -1)
				goto done;
			sdone = r == 0;
		}
	}
	if (tls_write(sconn, "x", 1) == 1)
		for (i = 0; i < 100 && tls_read(client, &c, 1) != 1; i++)
			;
	if (tls_write(client, "x", 1) == 1)
		for (i = 0; i < 100 && tls_read(sconn, &c, 1) != 1; i++)
			;
 done:
	log_debug("%s: handshake %s", __func__, sdone && cdone ? "done" :
	    "failed");
	if (!(sdone && cdone)) {
		ibuf_free(hello);
		hello = NULL;
	}
	tls_free(sconn);
	tls_free(client);
	tls_config_free(ccfg);
	ibuf_free(cp.in);
	ibuf_free(sp.in);
}

/*
 * In a worker just forked, before it is ready: the server's half of a
 * handshake on the template's ClientHello, in memory, its answer
 * dropped. A new process pays for the first touch of every page it
 * uses (here a few microseconds each, the hypervisor's doing, more
 * than the handshake's own arithmetic); this pays it while the worker
 * waits for a client instead of while a client waits for the
 * greeting. Its keys and randomness are the worker's own and go with
 * it; no byte of it leaves the process.
 */
void
tls_rehearse(struct tls *tlsctx)
{
	struct tls	*sconn = NULL;
	struct tls_pipe	 sp;

	if (tlsctx == NULL || hello == NULL)
		return;
	memset(&sp, 0, sizeof(sp));
	if ((sp.in = ibuf_open(ibuf_left(hello))) == NULL)
		return;
	if (ibuf_add(sp.in, ibuf_data(hello), ibuf_left(hello)) == 0 &&
	    tls_accept_cbs(tlsctx, &sconn, tls_pipe_read, tls_pipe_write,
	    &sp) == 0)
		/* The answer is written at once: it waits for Finished. */
		(void)tls_handshake(sconn);

	tls_free(sconn);
	ibuf_free(sp.in);
}
