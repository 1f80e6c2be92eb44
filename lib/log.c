/*
 * log.c: logging. In the foreground every process writes to stderr;
 * otherwise the parent uses syslog and a sandboxed child hands its
 * lines to a sink that carries them to the parent (in the foreground
 * too, its warnings).
 */

#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static int	 log_debug_mode;
static int	 log_verbose;
static const char *log_procname;
static void	(*log_sink)(int, const char *);

/* debug: log to stderr; facility: the syslog facility otherwise. */
void
log_init(int debug, int facility)
{
	extern char	*__progname;

	log_debug_mode = debug;
	log_verbose = debug;
	log_procname = __progname;
	if (!debug)
		openlog(__progname, LOG_PID | LOG_NDELAY, facility);
	tzset();
}

/* The process name that log lines begin with. */
void
log_procinit(const char *name)
{
	if (name != NULL)
		log_procname = name;
}

/* Whether debug lines are logged. */
void
log_setverbose(int v)
{
	log_verbose = v;
}

/* Whether debug lines are logged. */
int
log_getverbose(void)
{
	return (log_verbose);
}

/* Where a child's lines go: to the parent, instead of syslog. */
void
log_setsink(void (*sink)(int, const char *))
{
	log_sink = sink;
}

/*
 * Deliver one finished line. In the foreground a sink still gets the
 * warnings and errors: the parent keeps a child's last one, to say why
 * it died.
 */
void
log_emit(int pri, const char *line)
{
	if (log_debug_mode) {
		fprintf(stderr, "%s: %s\n", log_procname, line);
		if (log_sink != NULL && pri <= LOG_WARNING)
			log_sink(pri, line);
	} else if (log_sink != NULL)
		log_sink(pri, line);
	else
		syslog(pri, "%s", line);
}

/* Format one line and deliver it. */
static void
vlog(int pri, const char *fmt, va_list ap, const char *err)
{
	char	 line[1024];
	int	 save = errno;

	vsnprintf(line, sizeof(line), fmt, ap);
	if (err != NULL) {
		strlcat(line, ": ", sizeof(line));
		strlcat(line, err, sizeof(line));
	}
	log_emit(pri, line);
	errno = save;
}

/* A warning with the text of errno. */
void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	char	*err = strerror(errno);

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap, err);
	va_end(ap);
}

/* A warning. */
void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap, NULL);
	va_end(ap);
}

/* A line of information. */
void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap, NULL);
	va_end(ap);
}

/* A debug line, when verbose. */
void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

/* Log with the text of errno, and exit. */
void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	char	*err = strerror(errno);

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, err);
	va_end(ap);
	exit(1);
}

/* Log, and exit. */
void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

/*
 * Untrusted text for a log line: printable ASCII stays, the rest
 * becomes \xNN, and the result is cut at 256 characters.
 */
char *
str_escape(const char *s, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	char			*out, *o;
	size_t			 i;
	unsigned char		 c;

	if (len > 256)
		len = 256;
	if ((out = malloc(len * 4 + 1)) == NULL)
		return (NULL);
	for (o = out, i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			*o++ = c;
		else {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 0xf];
		}
	}
	*o = '\0';
	return (out);
}
