/*
 * t_imsg.c: the framing of lib/imsg.c and the marshalling of lib/buf.c:
 * round trips, descriptor passing, reads split anywhere, large
 * messages, and hostile headers and payloads.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static int	 failures;

#define CHECK(name, cond) do {						\
	if (cond)							\
		printf("ok %s\n", name);				\
	else {								\
		printf("FAIL %s: %s (line %d)\n", name, #cond, __LINE__);\
		failures++;						\
	}								\
} while (0)

/* A connected unix socket pair, or exit. */
static void
pair(int sp[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
		perror("socketpair");
		exit(1);
	}
}

/* Read until one message is framed or the peer is gone. */
static int
get_one(struct imsgbuf *ib, struct imsg *imsg)
{
	int	 r;

	while ((r = imsg_get(ib, imsg)) == 0)
		if (imsg_read(ib) <= 0)
			return (-1);
	return (r);
}

/* Each field type written and read back, then an empty message. */
static void
test_roundtrip(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 imsg;
	struct ireader	 ir;
	struct ibuf	*m;
	const char	*s;
	const void	*d;
	size_t		 dl;
	int		 sp[2];

	pair(sp);
	imsgbuf_init(&a, sp[0]);
	imsgbuf_init(&b, sp[1]);
	m = imsg_create(&a, 7, 42, 0, 0);
	ibuf_add_u32(m, 0xdeadbeef);
	ibuf_add_u64(m, 1ULL << 40);
	ibuf_add_str(m, "hello");
	ibuf_add_data(m, "a\0b", 3);
	imsg_close(&a, m);
	imsg_compose(&a, 8, 0, 0, -1, NULL, 0);
	CHECK("roundtrip.flush", imsg_flush(&a) == 0);
	CHECK("roundtrip.get", get_one(&b, &imsg) == 1);
	CHECK("roundtrip.header", imsg.hdr.type == 7 &&
	    imsg.hdr.peerid == 42 && imsg.hdr.pid == (uint32_t)getpid());
	ir_init(&ir, &imsg);
	CHECK("roundtrip.u32", ir_u32(&ir) == 0xdeadbeef);
	CHECK("roundtrip.u64", ir_u64(&ir) == 1ULL << 40);
	s = ir_str(&ir);
	CHECK("roundtrip.str", strcmp(s, "hello") == 0);
	d = ir_data(&ir, &dl);
	CHECK("roundtrip.data", dl == 3 && memcmp(d, "a\0b", 3) == 0);
	CHECK("roundtrip.end", ir_end(&ir) == 0);
	imsg_free(&imsg);
	CHECK("roundtrip.empty", get_one(&b, &imsg) == 1 &&
	    imsg.hdr.type == 8 && imsg.datalen == 0);
	imsg_free(&imsg);
	imsgbuf_clear(&a);
	imsgbuf_clear(&b);
	close(sp[0]);
	close(sp[1]);
}

/* The reader refuses overruns, bad strings and trailing bytes. */
static void
test_reader_rejects(void)
{
	struct imsg	 imsg;
	struct ireader	 ir;
	struct ibuf	*b;
	uint8_t		 raw[16];
	uint32_t	 len;

	memset(&imsg, 0, sizeof(imsg));
	/* A string whose length runs past the payload. */
	len = 100;
	memcpy(raw, &len, 4);
	memcpy(raw + 4, "abc", 4);
	imsg.data = raw;
	imsg.datalen = 8;
	ir_init(&ir, &imsg);
	ir_str(&ir);
	CHECK("reader.str_overrun", ir_end(&ir) == -1);
	/* A string without its NUL. */
	len = 3;
	memcpy(raw, &len, 4);
	memcpy(raw + 4, "abcd", 4);
	ir_init(&ir, &imsg);
	ir_str(&ir);
	CHECK("reader.str_unterminated", ir_end(&ir) == -1);
	/* A NUL inside a string. */
	len = 3;
	memcpy(raw, &len, 4);
	memcpy(raw + 4, "a\0c", 4);
	ir_init(&ir, &imsg);
	ir_str(&ir);
	CHECK("reader.str_inner_nul", ir_end(&ir) == -1);
	/* Trailing bytes. */
	ir_init(&ir, &imsg);
	ir_u32(&ir);
	CHECK("reader.trailing", ir_end(&ir) == -1);
	/* Short reads stay failed and return zeros. */
	imsg.datalen = 2;
	ir_init(&ir, &imsg);
	CHECK("reader.short_u32", ir_u32(&ir) == 0 && ir_end(&ir) == -1);
	/* A data field larger than what is left. */
	b = ibuf_open(0);
	ibuf_add_u32(b, 1000);
	ibuf_add(b, "xy", 2);
	imsg.data = b->buf;
	imsg.datalen = b->wpos;
	ir_init(&ir, &imsg);
	ir_data(&ir, &imsg.datalen);
	CHECK("reader.data_overrun", ir_end(&ir) == -1);
	ibuf_free(b);
}

/* Descriptors passed in order with their messages; the sender's closed. */
static void
test_fd_passing(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 imsg;
	struct stat	 st1, st2;
	int		 sp[2], fd, i, ok = 1;

	pair(sp);
	imsgbuf_init(&a, sp[0]);
	imsgbuf_init(&b, sp[1]);
	/* Several descriptors, each with its own message, in order. */
	for (i = 0; i < 5; i++) {
		if ((fd = open("/dev/null", O_RDONLY)) == -1)
			exit(1);
		imsg_compose(&a, 100 + i, 0, 0, fd, &i, sizeof(i));
		imsg_compose(&a, 200 + i, 0, 0, -1, &i, sizeof(i));
	}
	imsg_flush(&a);
	stat("/dev/null", &st1);
	for (i = 0; i < 5; i++) {
		if (get_one(&b, &imsg) != 1 || imsg.hdr.type !=
		    (uint32_t)(100 + i) || imsg.fd == -1 ||
		    fstat(imsg.fd, &st2) == -1 || st1.st_rdev != st2.st_rdev)
			ok = 0;
		imsg_free(&imsg);
		if (get_one(&b, &imsg) != 1 || imsg.fd != -1 ||
		    imsg.hdr.type != (uint32_t)(200 + i))
			ok = 0;
		imsg_free(&imsg);
	}
	CHECK("fd.passing_in_order", ok);
	/* The sender's copies are closed once sent. */
	CHECK("fd.sender_closed", a.nfds == 0 && TAILQ_EMPTY(&a.wq));
	imsgbuf_clear(&a);
	imsgbuf_clear(&b);
	close(sp[0]);
	close(sp[1]);
}

/* Two messages cut at every byte position both come out whole. */
static void
test_split_reads(void)
{
	struct imsgbuf	 b;
	struct imsgbuf	 a;
	struct imsg	 imsg;
	struct ibuf	*m;
	uint8_t		*wire;
	size_t		 wlen, cut, k;
	int		 sp[2], ok = 1, r;

	/* Build two messages' bytes once. */
	pair(sp);
	imsgbuf_init(&a, sp[0]);
	m = imsg_create(&a, 1, 0, 0, 0);
	ibuf_add_str(m, "first message");
	imsg_close(&a, m);
	m = imsg_create(&a, 2, 0, 0, 0);
	ibuf_add_str(m, "second");
	imsg_close(&a, m);
	wlen = a.queued;
	wire = malloc(wlen);
	k = 0;
	TAILQ_FOREACH(m, &a.wq, entry) {
		memcpy(wire + k, ibuf_data(m), ibuf_left(m));
		k += ibuf_left(m);
	}
	imsgbuf_clear(&a);
	close(sp[0]);
	close(sp[1]);
	/* Deliver them cut at every position: both come out whole. */
	for (cut = 1; cut < wlen; cut++) {
		pair(sp);
		imsgbuf_init(&b, sp[1]);
		write(sp[0], wire, cut);
		imsg_read(&b);
		r = imsg_get(&b, &imsg);
		if (r == 1) {
			if (imsg.hdr.type != 1)
				ok = 0;
			imsg_free(&imsg);
		}
		write(sp[0], wire + cut, wlen - cut);
		close(sp[0]);
		while (imsg_read(&b) > 0)
			;
		if (r == 0) {
			if (imsg_get(&b, &imsg) != 1 || imsg.hdr.type != 1)
				ok = 0;
			imsg_free(&imsg);
		}
		if (imsg_get(&b, &imsg) != 1 || imsg.hdr.type != 2)
			ok = 0;
		imsg_free(&imsg);
		if (imsg_get(&b, &imsg) != 0)
			ok = 0;
		imsgbuf_clear(&b);
		close(sp[1]);
	}
	CHECK("split.every_position", ok);
	free(wire);
}

/* An 8 MiB message gets through; one past the maximum is refused. */
static void
test_large(void)
{
	struct imsgbuf	 a, b;
	struct imsg	 imsg;
	struct ibuf	*m;
	char		*big;
	size_t		 n = 8 * 1024 * 1024, i;
	int		 sp[2], ok;
	pid_t		 pid;

	big = malloc(n);
	for (i = 0; i < n; i++)
		big[i] = 'a' + i % 26;
	pair(sp);
	/* A writer in another process: the socket buffer is smaller. */
	if ((pid = fork()) == 0) {
		close(sp[1]);
		imsgbuf_init(&a, sp[0]);
		imsg_compose(&a, 9, 0, 0, -1, big, n);
		imsg_flush(&a);
		_exit(0);
	}
	close(sp[0]);
	imsgbuf_init(&b, sp[1]);
	ok = get_one(&b, &imsg) == 1 && imsg.datalen == n &&
	    memcmp(imsg.data, big, n) == 0;
	CHECK("large.8mib", ok);
	imsg_free(&imsg);
	imsgbuf_clear(&b);
	close(sp[1]);
	waitpid(pid, NULL, 0);
	/* Past the limit a message is refused at the sender. */
	imsgbuf_init(&a, -1);
	CHECK("large.too_big_refused", imsg_compose(&a, 9, 0, 0, -1, big,
	    IMSG_MAXSIZE) == -1);
	m = imsg_create(&a, 9, 0, 0, 0);
	ibuf_add(m, big, n);
	ibuf_add(m, big, n);
	ibuf_add(m, big, 16);
	CHECK("large.close_too_big", imsg_close(&a, m) == -1);
	imsgbuf_clear(&a);
	free(big);
}

/* Hostile headers: bad lengths and flags, a missing fd, a cut body. */
static void
test_bad_headers(void)
{
	struct imsgbuf	 b;
	struct imsg	 imsg;
	struct imsg_hdr	 hdr;
	int		 sp[2];

	/* Length smaller than a header. */
	pair(sp);
	imsgbuf_init(&b, sp[1]);
	memset(&hdr, 0, sizeof(hdr));
	hdr.len = 3;
	write(sp[0], &hdr, sizeof(hdr));
	imsg_read(&b);
	CHECK("bad.len_short", imsg_get(&b, &imsg) == -1 && errno == EBADMSG);
	imsgbuf_clear(&b);
	close(sp[0]);
	close(sp[1]);
	/* Length past the maximum. */
	pair(sp);
	imsgbuf_init(&b, sp[1]);
	hdr.len = IMSG_MAXSIZE + 1;
	write(sp[0], &hdr, sizeof(hdr));
	imsg_read(&b);
	CHECK("bad.len_huge", imsg_get(&b, &imsg) == -1);
	imsgbuf_clear(&b);
	close(sp[0]);
	close(sp[1]);
	/* Unknown flags; a descriptor promised but none sent. */
	pair(sp);
	imsgbuf_init(&b, sp[1]);
	hdr.len = sizeof(hdr);
	hdr.flags = 0x8000;
	write(sp[0], &hdr, sizeof(hdr));
	imsg_read(&b);
	CHECK("bad.flags", imsg_get(&b, &imsg) == -1);
	imsgbuf_clear(&b);
	close(sp[0]);
	close(sp[1]);
	pair(sp);
	imsgbuf_init(&b, sp[1]);
	hdr.flags = IMSG_HASFD;
	write(sp[0], &hdr, sizeof(hdr));
	imsg_read(&b);
	CHECK("bad.fd_missing", imsg_get(&b, &imsg) == -1);
	imsgbuf_clear(&b);
	close(sp[0]);
	close(sp[1]);
	/* A truncated message waits, and EOF leaves it unframed. */
	pair(sp);
	imsgbuf_init(&b, sp[1]);
	hdr.flags = 0;
	hdr.len = sizeof(hdr) + 10;
	write(sp[0], &hdr, sizeof(hdr));
	write(sp[0], "12345", 5);
	close(sp[0]);
	imsg_read(&b);
	CHECK("bad.truncated_waits", imsg_get(&b, &imsg) == 0 &&
	    imsg_read(&b) == 0 && imsg_get(&b, &imsg) == 0);
	imsgbuf_clear(&b);
	close(sp[1]);
}

/* Random bytes must never crash the reader. */
static void
test_garbage(void)
{
	struct imsgbuf	 b;
	struct imsg	 imsg;
	uint8_t		 junk[4096];
	int		 sp[2], i, r, n, status;
	size_t		 k;
	pid_t		 pid;

	/* In a child, so a crash is seen as one. */
	if ((pid = fork()) != 0) {
		waitpid(pid, &status, 0);
		CHECK("garbage.survived", WIFEXITED(status) &&
		    WEXITSTATUS(status) == 0);
		return;
	}
	srandom(1);
	for (i = 0; i < 200; i++) {
		pair(sp);
		imsgbuf_init(&b, sp[1]);
		for (k = 0; k < sizeof(junk); k++)
			junk[k] = random();
		if (i % 2)	/* a plausible small length first */
			((struct imsg_hdr *)junk)->len = 24 + i;
		((struct imsg_hdr *)junk)->flags &= (i % 3) ? 0 : 0xffff;
		write(sp[0], junk, sizeof(junk));
		close(sp[0]);
		for (n = 0; n < 1000; n++) {
			if ((r = imsg_get(&b, &imsg)) == 1) {
				imsg_free(&imsg);
				continue;
			}
			if (r == -1 || imsg_read(&b) <= 0)
				break;
		}
		imsgbuf_clear(&b);
		close(sp[1]);
	}
	_exit(0);
}

/* Buffer growth and printf, SHA-256 vectors, the UTF-8 check. */
static void
test_buf(void)
{
	struct ibuf	*b;
	char		 hex[65];
	int		 i;

	b = ibuf_open(0);
	for (i = 0; i < 100000; i++)
		ibuf_add(b, "x", 1);
	CHECK("buf.grow", ibuf_left(b) == 100000);
	ibuf_consume(b, 99990);
	ibuf_printf(b, "%d-%s", 42, "z");
	CHECK("buf.printf", ibuf_left(b) == 14 &&
	    memcmp(ibuf_data(b), "xxxxxxxxxx42-z", 14) == 0);
	ibuf_free(b);
	sha256_hex("abc", 3, hex);
	CHECK("sha256.abc", strcmp(hex, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad") == 0);
	sha256_hex("", 0, hex);
	CHECK("sha256.empty", strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855") == 0);
	sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	    56, hex);
	CHECK("sha256.two_blocks", strcmp(hex, "248d6a61d20638b8e5c026930c3e6"
	    "039a33ce45964ff2167f6ecedd419db06c1") == 0);
	CHECK("utf8.ascii", utf8_valid("hello", 5));
	CHECK("utf8.cjk_emoji", utf8_valid("\xe6\x97\xa5\xf0\x9f\x98\x80", 7));
	CHECK("utf8.overlong", !utf8_valid("\xc0\xaf", 2));
	CHECK("utf8.surrogate", !utf8_valid("\xed\xa0\x80", 3));
	CHECK("utf8.truncated", !utf8_valid("\xe6\x97", 2));
	CHECK("utf8.too_big", !utf8_valid("\xf4\x90\x80\x80", 4));
	CHECK("utf8.bad_cont", !utf8_valid("\xe6\x41\xa5", 3));
}

/* Framing, then marshalling cases; exit 1 if one failed. */
int
main(void)
{
	test_roundtrip();
	test_reader_rejects();
	test_fd_passing();
	test_split_reads();
	test_large();
	test_bad_headers();
	test_garbage();
	test_buf();
	return (failures ? 1 : 0);
}
