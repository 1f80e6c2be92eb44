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

static ticket_cb	 libtls_ticket_cb;
static SSL_CTX		*server_ctx;

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
}

#else

/* LibreSSL: its cache is left as it is. */
void
tls_ticket_nocache(void)
{
}

#endif
