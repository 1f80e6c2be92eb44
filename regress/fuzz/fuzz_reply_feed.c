/*
 * fuzz_reply_feed.c: bridgectl connect's reader of server replies
 * (reply_feed() in bridgectl/replies.c; term.c, whose client_exit()
 * ends the program, is included whole so that exit() comes back here):
 * any bytes a server may send, in any pieces, against any queue of
 * replies bridgectl waits for, with terminal escaping on or off. A
 * server that breaks the protocol may end bridgectl (exit comes back
 * here), never crash it.
 */

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <histedit.h>
#include <locale.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <tls.h>
#include <unistd.h>

#include "bridgectl.h"
#include "fuzz.h"

void	fuzz_exit(int) __attribute__((__noreturn__));
#define exit(s)		fuzz_exit(s)

#include "../../bridgectl/term.c"

#undef exit

/* exit(): bridgectl is over; the target takes over. */
void
fuzz_exit(int status)
{
	(void)status;
	if (fuzz_fatal_armed)
		longjmp(fuzz_fatal_jmp, 2);
	abort();
}

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	static struct fin f;
	const uint8_t	*p;
	size_t		 n;
	uint8_t		 op;
	int		 steps = 0;

	if (!init) {
		fuzz_quiet(1);
		init = 1;
	}
	memset(&cl, 0, sizeof(cl));
	cl.host = "127.0.0.1";
	strlcpy(cl.port, "65432", sizeof(cl.port));
	cl.sock = -1;
	if ((cl.rbuf = ibuf_open(1024)) == NULL)
		abort();
	fin_init(&f, data, size);
	op = fin_u8(&f);
	cl.tty[1] = cl.tty[2] = op & 1;
	push(EXP_GREETING);
	fuzz_fatal_armed = 1;
	if (setjmp(fuzz_fatal_jmp) != 0)
		goto done;
	while (f.left > 0 && steps++ < 256) {
		op = fin_u8(&f);
		switch (op % 8) {
		case 0:
			if (cl.nq < QUEUE_MAX)
				push(fin_u8(&f) % (EXP_QUIT + 1));
			break;
		case 1:
			if (cl.nq > 0)
				cl.q[cl.nq - 1].cancel = 1;
			cl.chat = fin_u8(&f) & 1;
			cl.quitting = fin_u8(&f) == 0xff;
			break;
		default:
			p = fin_bytes(&f, 4096, &n);
			if (ibuf_add(cl.rbuf, p, n) == -1)
				abort();
			reply_feed();
			break;
		}
	}
 done:
	fuzz_fatal_armed = 0;
	ibuf_free(cl.rbuf);
	cl.rbuf = NULL;
	return (0);
}
