/*
 * fuzz_config_recv.c: a child taking its configuration from the
 * parent (config_recv() in bridged/config.c): any sequence of
 * IMSG_CFG_* messages with any payload. A configuration that arrives
 * whole is sent again with config_send() and must come back the same.
 */

#include <sys/types.h>
#include <sys/socket.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridged.h"
#include "fuzz.h"

/* A payload of exactly len bytes, the input's bytes first. */
static struct ibuf *
fixed(struct fin *f, size_t len)
{
	struct ibuf	*b;
	const uint8_t	*p;
	size_t		 n;

	if ((b = ibuf_open(len)) == NULL)
		abort();
	p = fin_bytes(f, len, &n);
	if (ibuf_add(b, p, n) == -1)
		abort();
	while (ibuf_left(b) < len)
		if (ibuf_add_u8(b, fin_u8(f)) == -1)
			abort();
	return (b);
}

/* Send c over a socket and take it back as a child would. */
static void
roundtrip(const struct bridged_conf *c, const struct tls_material *tls)
{
	struct bridged_conf	*cur = NULL, *pending = NULL;
	struct tls_material	 t2;
	struct provider_conf	*p, *q;
	struct channel		 ch;
	struct imsg		 imsg;
	int			 sv[2], r = 0;

	memset(&t2, 0, sizeof(t2));
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	channel_init(&ch, sv[0], NULL, NULL, NULL);
	if (config_send(&ch, c, tls->loaded ? tls : NULL, NULL) == -1 ||
	    channel_flush(&ch) == -1)
		abort();
	imsgbuf_clear(&ch.ibuf);
	close(sv[0]);
	{
		struct imsgbuf	 ib;

		imsgbuf_init(&ib, sv[1]);
		while (r != 1 && imsg_read(&ib) > 0)
			while (r != 1 && imsg_get(&ib, &imsg) == 1) {
				r = config_recv(&cur, &pending, &t2, &imsg);
				imsg_free(&imsg);
				if (r == -1)
					abort();
			}
		imsgbuf_clear(&ib);
	}
	close(sv[1]);
	if (r != 1 || memcmp(&cur->g, &c->g, sizeof(c->g)) != 0)
		abort();
	for (p = TAILQ_FIRST(&c->providers), q = TAILQ_FIRST(&cur->providers);
	    p != NULL && q != NULL;
	    p = TAILQ_NEXT(p, entry), q = TAILQ_NEXT(q, entry))
		if (strcmp(p->name, q->name) != 0 ||
		    strcmp(p->url, q->url) != 0 || p->type != q->type ||
		    p->timeout != q->timeout)
			abort();
	if (p != NULL || q != NULL)
		abort();
	if (tls->loaded && (t2.certlen != tls->certlen ||
	    memcmp(t2.cert, tls->cert, tls->certlen) != 0))
		abort();
	config_free(cur);
	config_free(pending);
	tls_material_wipe(&t2);
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int		 init;
	struct bridged_conf	*cur = NULL, *pending = NULL;
	struct tls_material	 tls;
	struct fin		 f;
	struct ibuf		*b;
	struct imsg		 imsg;
	uint32_t		 type;
	int			 r, steps = 0;

	if (!init) {
		fuzz_quiet(0);
		init = 1;
	}
	memset(&tls, 0, sizeof(tls));
	fin_init(&f, data, size);
	while (f.left > 0 && steps++ < 64) {
		type = fin_u8(&f);
		switch (type % 6) {
		case 0:
			type = IMSG_CFG_GLOBAL;
			b = fin_u8(&f) & 1 ? fin_payload(&f) :
			    fixed(&f, sizeof(struct global_conf));
			break;
		case 1:
			type = IMSG_CFG_PROVIDER;
			b = fin_u8(&f) & 1 ? fin_payload(&f) :
			    fixed(&f, sizeof(struct provider_conf));
			break;
		case 2:
			type = IMSG_CFG_TLS;
			b = fin_payload(&f);
			break;
		case 3:
			type = IMSG_CFG_DONE;
			b = fin_u8(&f) & 1 ? fin_payload(&f) : ibuf_open(1);
			break;
		case 4:
			type = fin_u8(&f);
			b = fin_payload(&f);
			break;
		default:
			if (cur != NULL)
				roundtrip(cur, &tls);
			continue;
		}
		if (b == NULL)
			abort();
		fuzz_imsg(&imsg, type, ibuf_data(b), ibuf_left(b));
		r = config_recv(&cur, &pending, &tls, &imsg);
		if (r == 1 && (cur == NULL || pending != NULL))
			abort();
		ibuf_free(b);
	}
	config_free(cur);
	config_free(pending);
	tls_material_wipe(&tls);
	return (0);
}
