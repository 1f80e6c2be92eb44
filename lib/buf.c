/*
 * buf.c: growable byte buffers and the marshalling that imsg payloads
 * are built with (ibuf_add_*) and read back with (ir_*).
 */

#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* A new empty buffer with room for hint bytes. */
struct ibuf *
ibuf_open(size_t hint)
{
	struct ibuf	*b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return (NULL);
	b->fd = -1;
	/* Never without memory: ibuf_data() is a pointer to use. */
	if (hint == 0)
		hint = 1;
	if ((b->buf = malloc(hint)) == NULL) {
		free(b);
		return (NULL);
	}
	b->size = hint;
	return (b);
}

/* Free a buffer, wiping it: it may have held a secret or a prompt. */
void
ibuf_free(struct ibuf *b)
{
	if (b == NULL)
		return;
	if (b->fd != -1)
		close(b->fd);
	freezero(b->buf, b->size);
	free(b);
}

/* Make room for n more bytes. */
int
ibuf_reserve(struct ibuf *b, size_t n)
{
	size_t	 need, nsize;
	uint8_t	*p;

	if (n > SIZE_MAX - b->wpos) {
		errno = ERANGE;
		return (-1);
	}
	need = b->wpos + n;
	if (need <= b->size)
		return (0);
	/* Reclaim consumed bytes before growing. */
	if (b->rpos > 0 && need - b->rpos <= b->size) {
		memmove(b->buf, b->buf + b->rpos, b->wpos - b->rpos);
		b->wpos -= b->rpos;
		b->rpos = 0;
		return (0);
	}
	nsize = b->size < 256 ? 256 : b->size;
	while (nsize < need) {
		if (nsize > SIZE_MAX / 2) {
			nsize = need;
			break;
		}
		nsize *= 2;
	}
	if ((p = recallocarray(b->buf, b->size, nsize, 1)) == NULL)
		return (-1);
	b->buf = p;
	b->size = nsize;
	return (0);
}

/* Append len bytes, growing the buffer up to its limit. */
int
ibuf_add(struct ibuf *b, const void *data, size_t len)
{
	if (ibuf_reserve(b, len) == -1)
		return (-1);
	if (len > 0)
		memcpy(b->buf + b->wpos, data, len);
	b->wpos += len;
	return (0);
}

/* Append one byte. */
int
ibuf_add_u8(struct ibuf *b, uint8_t v)
{
	return (ibuf_add(b, &v, sizeof(v)));
}

/* Append a 32-bit number in host order (peers share a host). */
int
ibuf_add_u32(struct ibuf *b, uint32_t v)
{
	return (ibuf_add(b, &v, sizeof(v)));
}

/* Append a 64-bit number in host order. */
int
ibuf_add_u64(struct ibuf *b, uint64_t v)
{
	return (ibuf_add(b, &v, sizeof(v)));
}

/* A length, the bytes, then a NUL the reader insists on. */
int
ibuf_add_str(struct ibuf *b, const char *s)
{
	size_t	 len = strlen(s);

	if (len >= UINT32_MAX) {
		errno = ERANGE;
		return (-1);
	}
	if (ibuf_add_u32(b, (uint32_t)len) == -1 ||
	    ibuf_add(b, s, len + 1) == -1)
		return (-1);
	return (0);
}

/* A length and the bytes, which may hold anything. */
int
ibuf_add_data(struct ibuf *b, const void *data, size_t len)
{
	if (len > UINT32_MAX) {
		errno = ERANGE;
		return (-1);
	}
	if (ibuf_add_u32(b, (uint32_t)len) == -1 ||
	    ibuf_add(b, data, len) == -1)
		return (-1);
	return (0);
}

/* Append formatted text, without its NUL. */
int
ibuf_printf(struct ibuf *b, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return (-1);
	/* One more for vsnprintf's NUL, which is not kept. */
	if (ibuf_reserve(b, (size_t)n + 1) == -1)
		return (-1);
	va_start(ap, fmt);
	vsnprintf((char *)b->buf + b->wpos, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->wpos += n;
	return (0);
}

/* The bytes not yet consumed. */
void *
ibuf_data(const struct ibuf *b)
{
	return (b->buf + b->rpos);
}

/* How many bytes are not yet consumed. */
size_t
ibuf_left(const struct ibuf *b)
{
	return (b->wpos - b->rpos);
}

/* Drop n bytes from the front. */
void
ibuf_consume(struct ibuf *b, size_t n)
{
	if (n > ibuf_left(b))
		n = ibuf_left(b);
	b->rpos += n;
	if (b->rpos == b->wpos)
		b->rpos = b->wpos = 0;
}

/* Empty the buffer, keeping its memory. */
void
ibuf_reset(struct ibuf *b)
{
	b->rpos = b->wpos = 0;
}

/* The descriptor that goes with the message (closed if replaced). */
void
ibuf_fd_set(struct ibuf *b, int fd)
{
	if (b->fd != -1)
		close(b->fd);
	b->fd = fd;
}

/* Start reading a message's payload. */
void
ir_init(struct ireader *ir, const struct imsg *imsg)
{
	ir->p = imsg->data;
	ir->left = imsg->datalen;
	ir->bad = 0;
}

/* The next n bytes of the payload, or NULL (and bad) past its end. */
static const uint8_t *
ir_take(struct ireader *ir, size_t n)
{
	const uint8_t	*p;

	if (ir->bad || n > ir->left) {
		ir->bad = 1;
		return (NULL);
	}
	p = ir->p;
	ir->p += n;
	ir->left -= n;
	return (p);
}

/* The next byte of the payload; 0 and bad past its end. */
uint8_t
ir_u8(struct ireader *ir)
{
	const uint8_t	*p;

	if ((p = ir_take(ir, 1)) == NULL)
		return (0);
	return (*p);
}

/* The next 32-bit number of the payload; 0 and bad past its end. */
uint32_t
ir_u32(struct ireader *ir)
{
	const uint8_t	*p;
	uint32_t	 v;

	if ((p = ir_take(ir, sizeof(v))) == NULL)
		return (0);
	memcpy(&v, p, sizeof(v));
	return (v);
}

/* The next 64-bit number of the payload; 0 and bad past its end. */
uint64_t
ir_u64(struct ireader *ir)
{
	const uint8_t	*p;
	uint64_t	 v;

	if ((p = ir_take(ir, sizeof(v))) == NULL)
		return (0);
	memcpy(&v, p, sizeof(v));
	return (v);
}

/* A string: its length, its bytes without a NUL, then the NUL. */
const char *
ir_str(struct ireader *ir)
{
	const uint8_t	*p;
	uint32_t	 len;

	len = ir_u32(ir);
	if (ir->bad || len >= ir->left) {
		ir->bad = 1;
		return ("");
	}
	p = ir_take(ir, (size_t)len + 1);
	if (p[len] != '\0' || memchr(p, '\0', len) != NULL) {
		ir->bad = 1;
		return ("");
	}
	return ((const char *)p);
}

/* Data with a 32-bit length before it; NULL (and bad) if it overruns. */
const void *
ir_data(struct ireader *ir, size_t *lenp)
{
	const uint8_t	*p;
	uint32_t	 len;

	*lenp = 0;
	len = ir_u32(ir);
	if ((p = ir_take(ir, len)) == NULL)
		return (NULL);
	*lenp = len;
	return (p);
}

/* 0 when every getter succeeded and nothing is left over. */
int
ir_end(struct ireader *ir)
{
	return (ir->bad || ir->left != 0 ? -1 : 0);
}
