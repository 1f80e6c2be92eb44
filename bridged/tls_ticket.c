/*
 * tls_ticket.c: libtls on OpenSSL 3 (Debian's libretls) answers 0 from
 * its ticket callback when it has set up a ticket; OpenSSL 3 reads 0
 * as "issue no ticket", so no session could resume in another worker.
 * The worker interposes SSL_CTX_callback_ctrl, through which libtls
 * installs that callback, and wraps the callback to answer 1 instead.
 * LibreSSL reads 0 as success and needs none of this.
 *
 * The interposer also learns the server's SSL_CTX, so that the template
 * can turn off OpenSSL's session cache: a worker's cache dies with the
 * worker unused (resumption is by ticket), and filling it writes to
 * pages the worker shares with its template, each write a page copy;
 * and can have records read whole (read-ahead).
 *
 * And it learns the client's SSL (the last one made in the worker), so
 * that the worker can ask libssl whether it holds bytes of the client's
 * still to be read, and wait for poll when it holds none instead of
 * reading until the socket says EAGAIN.
 */

#include <sys/types.h>

#include <dlfcn.h>
#include <stddef.h>

#include <openssl/opensslv.h>
#include <openssl/ssl.h>

#include "bridged.h"

#if defined(OPENSSL_VERSION_MAJOR) && !defined(LIBRESSL_VERSION_NUMBER)

typedef int (*ticket_cb)(SSL *, unsigned char *, unsigned char *,
    EVP_CIPHER_CTX *, void *, int);
typedef long (*callback_ctrl)(SSL_CTX *, int, void (*)(void));
typedef long (*ctx_ctrl)(SSL_CTX *, int, long, void *);
typedef SSL *(*ssl_new)(SSL_CTX *);
typedef void (*ssl_free)(SSL *);
typedef int (*ssl_has_pending)(const SSL *);

static ticket_cb	 libtls_ticket_cb;
static SSL_CTX		*server_ctx;
static SSL		*last_ssl;	/* in a worker: the client's */
static ssl_has_pending	 has_pending;

/* libtls's ticket callback, answering 1 where it set up a new ticket. */
static int
ticket_cb_fixed(SSL *ssl, unsigned char *name, unsigned char *iv,
    EVP_CIPHER_CTX *ectx, void *hctx, int enc)
{
	int	 r;

	r = libtls_ticket_cb(ssl, name, iv, ectx, hctx, enc);
	if (enc == 1 && r == 0)
		return (1);
	return (r);
}

long
SSL_CTX_callback_ctrl(SSL_CTX *ctx, int cmd, void (*fp)(void))
{
	static callback_ctrl	 real;

	if (real == NULL &&
	    (real = (callback_ctrl)dlsym(RTLD_NEXT,
	    "SSL_CTX_callback_ctrl")) == NULL)
		return (0);
	if (cmd == SSL_CTRL_SET_TLSEXT_TICKET_KEY_CB && fp != NULL) {
		libtls_ticket_cb = (ticket_cb)fp;
		fp = (void (*)(void))ticket_cb_fixed;
		server_ctx = ctx;
	}
	return (real(ctx, cmd, fp));
}

/*
 * After tls_configure: no session cache in the server's SSL_CTX. libssl
 * is reached as the interposer reaches it: the worker links libtls.
 */
void
tls_ticket_nocache(void)
{
	ctx_ctrl	 ctrl;

	if (server_ctx == NULL ||
	    (ctrl = (ctx_ctrl)dlsym(RTLD_NEXT, "SSL_CTX_ctrl")) == NULL)
		return;
	(void)ctrl(server_ctx, SSL_CTRL_SET_SESS_CACHE_MODE,
	    SSL_SESS_CACHE_OFF, NULL);
	/* An idle session holds no record buffers (2 x 16 KiB and more). */
	(void)ctrl(server_ctx, SSL_CTRL_MODE, SSL_MODE_RELEASE_BUFFERS, NULL);
	/*
	 * A record in one read, not its header and then its body: what
	 * arrived together is read together (the worker reads until
	 * libtls wants more, so nothing waits unseen in its buffer).
	 */
	(void)ctrl(server_ctx, SSL_CTRL_SET_READ_AHEAD, 1, NULL);
	has_pending = (ssl_has_pending)dlsym(RTLD_NEXT, "SSL_has_pending");
}

/* SSL_new, interposed: the last connection made is the client's. */
SSL *
SSL_new(SSL_CTX *ctx)
{
	static ssl_new	 real;

	if (real == NULL &&
	    (real = (ssl_new)dlsym(RTLD_NEXT, "SSL_new")) == NULL)
		return (NULL);
	return (last_ssl = real(ctx));
}

/* SSL_free, interposed: a connection freed is nobody's any more. */
void
SSL_free(SSL *ssl)
{
	static ssl_free	 real;

	if (ssl != NULL && ssl == last_ssl)
		last_ssl = NULL;
	if (real == NULL &&
	    (real = (ssl_free)dlsym(RTLD_NEXT, "SSL_free")) == NULL)
		return;
	real(ssl);
}

/*
 * Whether libssl may hold bytes of the client's not read yet (records
 * read ahead, or part of one): 0 only when it surely holds none.
 */
int
tls_client_pending(void)
{
	if (last_ssl == NULL || has_pending == NULL)
		return (1);
	return (has_pending(last_ssl));
}

#else

/* LibreSSL: its cache is left as it is. */
void
tls_ticket_nocache(void)
{
}

/* LibreSSL: not known, so it may. */
int
tls_client_pending(void)
{
	return (1);
}

#endif
