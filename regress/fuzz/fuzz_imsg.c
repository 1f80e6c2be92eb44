/*
 * fuzz_imsg.c: imsg framing (lib/imsg.c) as a receiver sees it. The
 * input is what a peer writes on the socket, in pieces, some carrying
 * descriptors; the receiver reads with imsg_read(), frames with
 * imsg_get() and reads each payload with the ir_* getters. No
 * descriptor may be left open when the receiver is done.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

/* The lowest free descriptor: a leak moves it. */
static int
fd_mark(void)
{
	int	 fd;

	if ((fd = dup(0)) == -1)
		abort();
	close(fd);
	return (fd);
}

/* Send bytes with nfd descriptors (of /dev/null) attached. */
static void
send_piece(int s, const uint8_t *p, size_t n, int nfd)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * 20)];
	} cm;
	int		 fds[20], i;
	uint8_t		 zero = 0;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = n > 0 ? (void *)(uintptr_t)p : &zero;
	iov.iov_len = n > 0 ? n : 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	for (i = 0; i < nfd; i++)
		if ((fds[i] = open("/dev/null", O_RDONLY)) == -1)
			abort();
	if (nfd > 0) {
		msg.msg_control = cm.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfd);
		cm.hdr.cmsg_len = CMSG_LEN(sizeof(int) * nfd);
		cm.hdr.cmsg_level = SOL_SOCKET;
		cm.hdr.cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(&cm.hdr), fds, sizeof(int) * nfd);
	}
	if (sendmsg(s, &msg, MSG_DONTWAIT) == -1 && errno != EAGAIN)
		abort();
	for (i = 0; i < nfd; i++)
		close(fds[i]);
}

/* Read each field a handler might ask for, in the order given. */
static void
read_fields(struct imsg *imsg, struct fin *f)
{
	struct ireader	 ir;
	const char	*s;
	size_t		 len;
	int		 i;

	ir_init(&ir, imsg);
	for (i = 0; i < 8; i++) {
		switch (fin_u8(f) % 5) {
		case 0:
			(void)ir_u8(&ir);
			break;
		case 1:
			(void)ir_u32(&ir);
			break;
		case 2:
			(void)ir_u64(&ir);
			break;
		case 3:
			if ((s = ir_str(&ir)) == NULL || strlen(s) > 16777216)
				abort();
			break;
		case 4:
			(void)ir_data(&ir, &len);
			break;
		}
	}
	(void)ir_end(&ir);
}

/* Take every whole message; -1 once framing is bad. */
static int
drain(struct imsgbuf *ib, struct fin *f)
{
	struct imsg	 imsg;
	int		 n;

	while ((n = imsg_get(ib, &imsg)) == 1) {
		if (imsg.datalen != imsg.hdr.len - IMSG_HDRSIZE)
			abort();
		if (imsg.fd != -1 && fcntl(imsg.fd, F_GETFD) == -1)
			abort();	/* a descriptor that is not open */
		read_fields(&imsg, f);
		imsg_free(&imsg);
	}
	return (n);
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	struct imsgbuf	 ib;
	struct fin	 f, fields;
	const uint8_t	*p;
	size_t		 n;
	int		 sv[2], mark, bad = 0, pieces = 0;

	if (!init) {
		fuzz_quiet(0);
		init = 1;
	}
	mark = fd_mark();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == -1)
		abort();
	fd_nonblock(sv[1]);
	imsgbuf_init(&ib, sv[1]);
	fin_init(&f, data, size);
	/* The getters' choices come from the end of the input. */
	fin_init(&fields, data + size / 2, size - size / 2);
	f.left = size / 2;

	while (f.left > 0 && !bad && pieces++ < 64) {
		uint8_t	 how = fin_u8(&f);

		p = fin_bytes(&f, 16384, &n);
		send_piece(sv[0], p, n, how & 0x80 ? how % 20 : 0);
		if (how & 0x40)
			continue;	/* let pieces pile up */
		while (imsg_read(&ib) > 0)
			if (drain(&ib, &fields) == -1) {
				bad = 1;
				break;
			}
	}
	close(sv[0]);
	while (!bad && imsg_read(&ib) > 0)
		if (drain(&ib, &fields) == -1)
			bad = 1;
	imsgbuf_clear(&ib);
	close(sv[1]);
	if (fd_mark() != mark)
		abort();	/* a descriptor leaked */
	return (0);
}
