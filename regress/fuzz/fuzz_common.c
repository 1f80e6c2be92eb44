/*
 * fuzz_common.c: the input reader, messages, a quiet log and the
 * fatal() wrapper shared by every target.
 */

#include <sys/types.h>

#include <sys/socket.h>

#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

jmp_buf		 fuzz_fatal_jmp;
int		 fuzz_fatal_armed;
int		 fuzz_fatals;

/* Start reading an input. */
void
fin_init(struct fin *f, const uint8_t *p, size_t len)
{
	f->p = p;
	f->left = len;
}

/* One byte, 0 when the input is used up. */
uint8_t
fin_u8(struct fin *f)
{
	uint8_t	 v;

	if (f->left == 0)
		return (0);
	v = *f->p++;
	f->left--;
	return (v);
}

/* Two bytes, little-endian. */
uint16_t
fin_u16(struct fin *f)
{
	uint16_t	 v = fin_u8(f);

	return (v | (uint16_t)fin_u8(f) << 8);
}

/* Four bytes, little-endian. */
uint32_t
fin_u32(struct fin *f)
{
	uint32_t	 v = fin_u16(f);

	return (v | (uint32_t)fin_u16(f) << 16);
}

/* Eight bytes, little-endian. */
uint64_t
fin_u64(struct fin *f)
{
	uint64_t	 v = fin_u32(f);

	return (v | (uint64_t)fin_u32(f) << 32);
}

/* A run of bytes whose length (at most max) comes first. */
const uint8_t *
fin_bytes(struct fin *f, size_t max, size_t *lenp)
{
	const uint8_t	*p = f->p;
	size_t		 n;

	n = max > 255 ? fin_u16(f) : fin_u8(f);
	if (max > 0)
		n %= max + 1;
	if (n > f->left)
		n = f->left;
	p = f->p;
	f->p += n;
	f->left -= n;
	*lenp = n;
	return (p);
}

/* Printable ASCII (valid UTF-8) from the input, up to max bytes. */
const char *
fin_text(struct fin *f, size_t max)
{
	static char	 ring[4][512];
	static int	 next;
	const uint8_t	*p;
	size_t		 i, n;
	char		*s;

	if (max >= sizeof(ring[0]))
		max = sizeof(ring[0]) - 1;
	p = fin_bytes(f, max, &n);
	s = ring[next];
	next = (next + 1) % 4;
	for (i = 0; i < n; i++)
		s[i] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : 'a' + p[i] % 26;
	s[n] = '\0';
	return (s);
}

/* A string: bytes up to the length, cut at a NUL, terminated. */
const char *
fin_str(struct fin *f, size_t max)
{
	static char	*ring[8];
	static int	 next;
	const uint8_t	*p;
	size_t		 n;
	char		*s;

	p = fin_bytes(f, max, &n);
	free(ring[next]);
	if ((s = ring[next] = malloc(n + 1)) == NULL)
		abort();
	next = (next + 1) % 8;
	memcpy(s, p, n);
	s[n] = '\0';
	return (s);
}

/* A message with the payload given. */
void
fuzz_imsg(struct imsg *imsg, uint32_t type, const void *data, size_t len)
{
	memset(imsg, 0, sizeof(*imsg));
	imsg->hdr.type = type;
	imsg->hdr.len = IMSG_HDRSIZE + len;
	imsg->fd = -1;
	imsg->data = (uint8_t *)(uintptr_t)data;
	imsg->datalen = len;
}

/*
 * A payload: the first byte says raw bytes, or a sequence of typed
 * fields as ibuf_add_* writes them, so both the malformed and the
 * well-formed paths of a handler are reached.
 */
struct ibuf *
fin_payload(struct fin *f)
{
	struct ibuf	*b;
	const uint8_t	*p;
	size_t		 n;
	int		 i, nf;
	uint8_t		 how;

	if ((b = ibuf_open(64)) == NULL)
		abort();
	how = fin_u8(f);
	if (how & 0x80) {
		p = fin_bytes(f, 4096, &n);
		if (ibuf_add(b, p, n) == -1)
			abort();
		return (b);
	}
	nf = how & 7;
	for (i = 0; i < nf; i++) {
		switch (fin_u8(f) & 3) {
		case 0:
			if (ibuf_add_u32(b, fin_u8(f) < 200 ? fin_u8(f) :
			    fin_u32(f)) == -1)
				abort();
			break;
		case 1:
			if (ibuf_add_u64(b, fin_u64(f)) == -1)
				abort();
			break;
		case 2:
			if (ibuf_add_str(b, fin_str(f, 300)) == -1)
				abort();
			break;
		case 3:
			p = fin_bytes(f, 4096, &n);
			if (ibuf_add_data(b, p, n) == -1)
				abort();
			break;
		}
	}
	return (b);
}

/* Log lines go nowhere. */
static void
quiet_sink(int pri, const char *line)
{
	(void)pri;
	(void)line;
}

/* No log on stderr; with out set, no stdout either. */
void
fuzz_quiet(int out)
{
	int	 fd;

	log_init(0, 0);
	log_setsink(quiet_sink);
	if (out && (fd = open("/dev/null", O_WRONLY)) != -1) {
		(void)dup2(fd, STDOUT_FILENO);
		close(fd);
	}
}

void	__wrap_fatal(const char *, ...) __attribute__((__noreturn__));
void	__wrap_fatalx(const char *, ...) __attribute__((__noreturn__));

/* fatal(): the receiver would exit; the target takes over. */
void
__wrap_fatal(const char *fmt, ...)
{
	(void)fmt;
	fuzz_fatals++;
	if (fuzz_fatal_armed)
		longjmp(fuzz_fatal_jmp, 1);
	abort();
}

/* fatalx(): as fatal(). */
void
__wrap_fatalx(const char *fmt, ...)
{
	(void)fmt;
	fuzz_fatals++;
	if (fuzz_fatal_armed)
		longjmp(fuzz_fatal_jmp, 1);
	abort();
}


int	__real_getaddrinfo(const char *, const char *,
	    const struct addrinfo *, struct addrinfo **);
int	__wrap_getaddrinfo(const char *, const char *,
	    const struct addrinfo *, struct addrinfo **);

/* No name is looked up while fuzzing: numeric addresses only. */
int
__wrap_getaddrinfo(const char *host, const char *serv,
    const struct addrinfo *hints, struct addrinfo **res)
{
	struct addrinfo	 h;

	if (hints != NULL)
		h = *hints;
	else
		memset(&h, 0, sizeof(h));
	h.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
	return (__real_getaddrinfo(host, serv, &h, res));
}

/* The sandboxes are not what is fuzzed (lib/sandbox*.c not linked). */
int
sandbox_enter(enum sandbox_role role, const struct sandbox_conf *sc)
{
	(void)role;
	(void)sc;
	return (0);
}

/* As sandbox_enter(). */
int
sandbox_narrow(enum sandbox_role role)
{
	(void)role;
	return (0);
}
