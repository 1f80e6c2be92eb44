/*
 * imsg.c: framed messages over a stream socket with descriptor passing.
 * Every length that comes off the wire is checked before it is used.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define IMSG_READSIZE	65536
#define IMSG_IOVMAX	64

/* A message buffer over a socket, nothing queued. */
void
imsgbuf_init(struct imsgbuf *ib, int fd)
{
	memset(ib, 0, sizeof(*ib));
	ib->fd = fd;
	ib->pid = getpid();
	TAILQ_INIT(&ib->wq);
}

/* Drop everything queued either way; the socket stays open. */
void
imsgbuf_clear(struct imsgbuf *ib)
{
	struct ibuf	*b;
	int		 i;

	while ((b = TAILQ_FIRST(&ib->wq)) != NULL) {
		TAILQ_REMOVE(&ib->wq, b, entry);
		ibuf_free(b);
	}
	ib->queued = 0;
	for (i = 0; i < ib->nfds; i++)
		close(ib->fds[i]);
	ib->nfds = 0;
	ibuf_free(ib->r);
	ib->r = NULL;
}

/* Keep descriptors that came with the bytes, in order. */
static void
imsg_take_fds(struct imsgbuf *ib, struct msghdr *msg)
{
	struct cmsghdr	*cm;
	int		*fdp, i, n;

	for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET ||
		    cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fdp = (int *)CMSG_DATA(cm);
		for (i = 0; i < n; i++) {
			if (ib->nfds < IMSG_MAXFDS) {
				fd_cloexec(fdp[i]);
				ib->fds[ib->nfds++] = fdp[i];
			} else
				close(fdp[i]);
		}
	}
}

/* Read what the socket has: >0 bytes, 0 on EOF, -1 with errno. */
ssize_t
imsg_read(struct imsgbuf *ib)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * IMSG_MAXFDS)];
	} cmsgbuf;
	ssize_t		 n;
	int		 flags = 0;

	if (ib->r == NULL && (ib->r = ibuf_open(IMSG_READSIZE)) == NULL)
		return (-1);
	if (ibuf_reserve(ib->r, IMSG_READSIZE) == -1)
		return (-1);
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = ib->r->buf + ib->r->wpos;
	iov.iov_len = ib->r->size - ib->r->wpos;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = &cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);
#ifdef MSG_CMSG_CLOEXEC
	flags = MSG_CMSG_CLOEXEC;
#endif
	do {
		n = recvmsg(ib->fd, &msg, flags);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return (-1);
	imsg_take_fds(ib, &msg);
	ib->r->wpos += n;
	return (n);
}

/*
 * Take the next whole message: 1 when one is ready, 0 when more bytes
 * are needed, -1 (EBADMSG) when the header cannot be right.
 */
int
imsg_get(struct imsgbuf *ib, struct imsg *imsg)
{
	struct imsg_hdr	 hdr;
	size_t		 left;

	memset(imsg, 0, sizeof(*imsg));
	imsg->fd = -1;
	if (ib->r == NULL || (left = ibuf_left(ib->r)) < IMSG_HDRSIZE)
		return (0);
	memcpy(&hdr, ibuf_data(ib->r), sizeof(hdr));
	if (hdr.len < IMSG_HDRSIZE || hdr.len > IMSG_MAXSIZE ||
	    (hdr.flags & ~IMSG_HASFD) != 0) {
		errno = EBADMSG;
		return (-1);
	}
	if (left < hdr.len) {
		/* Make room once for the rest of a large message. */
		if (ibuf_reserve(ib->r, hdr.len - left) == -1)
			return (-1);
		return (0);
	}
	if (hdr.flags & IMSG_HASFD) {
		if (ib->nfds == 0) {
			errno = EBADMSG;
			return (-1);
		}
		imsg->fd = ib->fds[0];
		memmove(ib->fds, ib->fds + 1, --ib->nfds * sizeof(int));
	}
	imsg->hdr = hdr;
	imsg->datalen = hdr.len - IMSG_HDRSIZE;
	if (imsg->datalen > 0) {
		if ((imsg->data = malloc(imsg->datalen)) == NULL) {
			if (imsg->fd != -1)
				close(imsg->fd);
			imsg->fd = -1;
			return (-1);
		}
		memcpy(imsg->data, (uint8_t *)ibuf_data(ib->r) + IMSG_HDRSIZE,
		    imsg->datalen);
	}
	ibuf_consume(ib->r, hdr.len);
	return (1);
}

/* Free a message's payload; an unclaimed descriptor is closed. */
void
imsg_free(struct imsg *imsg)
{
	freezero(imsg->data, imsg->datalen);
	imsg->data = NULL;
	imsg->datalen = 0;
	if (imsg->fd != -1)
		close(imsg->fd);
	imsg->fd = -1;
}

/* Start a message; the caller adds the payload and calls imsg_close. */
struct ibuf *
imsg_create(struct imsgbuf *ib, uint32_t type, uint32_t peerid, pid_t pid,
    size_t hint)
{
	struct imsg_hdr	 hdr;
	struct ibuf	*b;

	if (hint > IMSG_MAXSIZE - IMSG_HDRSIZE) {
		errno = ERANGE;
		return (NULL);
	}
	memset(&hdr, 0, sizeof(hdr));
	hdr.type = type;
	hdr.peerid = peerid;
	hdr.pid = pid != 0 ? (uint32_t)pid : (uint32_t)ib->pid;
	if ((b = ibuf_open(IMSG_HDRSIZE + hint)) == NULL)
		return (NULL);
	if (ibuf_add(b, &hdr, sizeof(hdr)) == -1) {
		ibuf_free(b);
		return (NULL);
	}
	return (b);
}

/* Stamp the length and queue the message; the buffer is ours now. */
int
imsg_close(struct imsgbuf *ib, struct ibuf *b)
{
	struct imsg_hdr	*hdr;

	if (b->wpos > IMSG_MAXSIZE) {
		ibuf_free(b);
		errno = ERANGE;
		return (-1);
	}
	hdr = (struct imsg_hdr *)b->buf;
	hdr->len = (uint32_t)b->wpos;
	if (b->fd != -1)
		hdr->flags |= IMSG_HASFD;
	TAILQ_INSERT_TAIL(&ib->wq, b, entry);
	ib->queued += b->wpos;
	return (0);
}

/* Queue a message of one piece, with a descriptor or -1. */
int
imsg_compose(struct imsgbuf *ib, uint32_t type, uint32_t peerid, pid_t pid,
    int fd, const void *data, size_t len)
{
	struct ibuf	*b;

	if ((b = imsg_create(ib, type, peerid, pid, len)) == NULL)
		goto fail;
	if (ibuf_add(b, data, len) == -1) {
		ibuf_free(b);
		goto fail;
	}
	b->fd = fd;
	return (imsg_close(ib, b));
 fail:
	if (fd != -1)
		close(fd);
	return (-1);
}

/*
 * Write as much of the queue as the socket takes: 0 when all or some
 * was written or the socket is full, -1 on a real error.
 */
int
imsg_write(struct imsgbuf *ib)
{
	struct iovec	 iov[IMSG_IOVMAX];
	struct msghdr	 msg;
	struct ibuf	*b, *next;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	struct cmsghdr	*cm;
	ssize_t		 n;
	size_t		 left;
	int		 i = 0, fd = -1;

	memset(&msg, 0, sizeof(msg));
	TAILQ_FOREACH(b, &ib->wq, entry) {
		/* A descriptor rides on the first byte of its message. */
		if (b->fd != -1) {
			if (i > 0)
				break;
			fd = b->fd;
		}
		iov[i].iov_base = ibuf_data(b);
		iov[i].iov_len = ibuf_left(b);
		if (++i == IMSG_IOVMAX)
			break;
	}
	if (i == 0)
		return (0);
	msg.msg_iov = iov;
	msg.msg_iovlen = i;
	if (fd != -1) {
		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = &cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do {
		n = sendmsg(ib->fd, &msg, MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return (errno == EAGAIN || errno == ENOBUFS ? 0 : -1);
	if (fd != -1) {
		b = TAILQ_FIRST(&ib->wq);
		close(b->fd);
		b->fd = -1;
	}
	ib->queued -= n;
	for (b = TAILQ_FIRST(&ib->wq); b != NULL && n > 0; b = next) {
		next = TAILQ_NEXT(b, entry);
		left = ibuf_left(b);
		if ((size_t)n < left) {
			ibuf_consume(b, n);
			break;
		}
		n -= left;
		TAILQ_REMOVE(&ib->wq, b, entry);
		ibuf_free(b);
	}
	return (0);
}

/* Write everything, waiting on a blocking socket (start-up, tests). */
int
imsg_flush(struct imsgbuf *ib)
{
	while (ib->queued > 0 || !TAILQ_EMPTY(&ib->wq))
		if (imsg_write(ib) == -1)
			return (-1);
	return (0);
}
