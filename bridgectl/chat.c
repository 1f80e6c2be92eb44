/*
 * chat.c: the chat-first face of bridgectl connect. Every line is a
 * prompt; a line that starts with / is a command, mapped to its
 * BRIDGE/1 line (the table below, and bridgectl(8)); // sends a
 * prompt that starts with /. The server stays in command mode and a
 * one-line prompt goes as ASK; a """ prompt needs chat mode, so IA
 * goes first, and the next command goes after BACK. A """ prompt is
 * kept here until its closing line, so Ctrl-C can abandon it.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bridgectl.h"

#define IMPORT_MAX	(16 * 1024 * 1024)

enum slash_arg {
	SL_NONE,		/* no argument */
	SL_OPT,			/* an optional argument */
	SL_NEED			/* an argument is required */
};

static void	slash_help(void);
static void	slash_export(const char *);
static void	slash_import(const char *);
static void	command_mode(void);
static void	prompt_one(const char *);
static int	is_special(const char *);
static int	line_is_word(const char *, const char *);

/*
 * The commands. proto is the BRIDGE/1 command the line becomes, with
 * the argument after a space; NULL for those done here.
 */
static const struct slash {
	const char	*name;
	const char	*proto;
	enum slash_arg	 arg;
	enum expect	 what;
	const char	*args;
	const char	*desc;
} slashes[] = {
	{ "bye",	   "QUIT",	    SL_NONE, EXP_QUIT,
	    "", "leave" },
	{ "conversations", "CONVERSATIONS", SL_OPT, EXP_COMMAND,
	    "[N]", "your conversations, the latest first" },
	{ "delete",	   "DELETE",	    SL_NEED, EXP_COMMAND,
	    "ID|NAME", "delete a conversation" },
	{ "dialogue",	   "DIALOGUE",	    SL_NEED, EXP_COMMAND,
	    "TURNS A B TEXT", "two models talk, as a job" },
	{ "export",	   NULL,	    SL_NEED, EXP_EXPORT,
	    "FILE [ID|NAME]", "a conversation to FILE (.md: Markdown)" },
	{ "help",	   NULL,	    SL_NONE, EXP_NONE,
	    "", "this list" },
	{ "history",	   "HISTORY",	    SL_OPT, EXP_COMMAND,
	    "[N]", "the last N messages" },
	{ "import",	   NULL,	    SL_NEED, EXP_IMPORT,
	    "FILE", "a JSON export as a new conversation" },
	{ "info",	   "INFO",	    SL_NONE, EXP_INFO,
	    "", "this session" },
	{ "jobs",	   "JOBS",	    SL_OPT, EXP_COMMAND,
	    "[N]", "your background jobs" },
	{ "kill",	   "KILL",	    SL_NEED, EXP_COMMAND,
	    "ID", "stop a job" },
	{ "model",	   "CHANGE-MODEL",  SL_OPT, EXP_COMMAND,
	    "[NAME]", "choose the model (a menu without NAME)" },
	{ "models",	   "LIST-MODELS",   SL_NONE, EXP_COMMAND,
	    "", "the models" },
	{ "new",	   "NEW",	    SL_OPT, EXP_COMMAND,
	    "[NAME]", "a new conversation" },
	{ "raw",	   NULL,	    SL_NEED, EXP_NONE,
	    "LINE", "send a BRIDGE/1 line as it is" },
	{ "result",	   "RESULT",	    SL_NEED, EXP_PROMPT,
	    "ID", "a job's answer (Ctrl-C stops following)" },
	{ "resume",	   "RESUME",	    SL_NEED, EXP_COMMAND,
	    "ID|NAME", "go back to a conversation" },
	{ "role",	   "ROLE",	    SL_OPT, EXP_COMMAND,
	    "[NAME]", "apply a role (the roles without NAME)" },
	{ "search",	   "SEARCH",	    SL_NEED, EXP_COMMAND,
	    "WORDS", "search your messages" },
	{ "submit",	   "SUBMIT",	    SL_NEED, EXP_COMMAND,
	    "PROMPT", "a prompt answered in the background" },
	{ "summaries",	   "SUMMARIES",	    SL_OPT, EXP_COMMAND,
	    "[N]", "the last N summaries" },
	{ "system",	   "SYSTEM",	    SL_OPT, EXP_COMMAND,
	    "[TEXT|-]", "show, set or clear the system prompt" },
	{ "usage",	   "USAGE",	    SL_OPT, EXP_COMMAND,
	    "[DAYS]", "your use and limits" },
};

/* /help: the commands and what a line without / does. */
static void
slash_help(void)
{
	static const char intro[] =
	    "A line is a prompt for the model; a line of \"\"\" starts and "
	    "ends one of\nseveral lines; // starts a prompt with /. Ctrl-C "
	    "stops an answer, Ctrl-D leaves.\n";
	char	 buf[160], cmd[40];
	size_t	 i;

	prompt_break();
	write_all(STDOUT_FILENO, intro, sizeof(intro) - 1);
	for (i = 0; i < sizeof(slashes) / sizeof(slashes[0]); i++) {
		(void)snprintf(cmd, sizeof(cmd), "/%s %s", slashes[i].name,
		    slashes[i].args);
		(void)snprintf(buf, sizeof(buf), "%-22s %s\n", cmd,
		    slashes[i].desc);
		write_all(STDOUT_FILENO, buf, strlen(buf));
	}
}

/* Leave the server's chat mode before a command. */
static void
command_mode(void)
{
	if (!cl.chat)
		return;
	send_line("BACK", EXP_HIDDEN);
	cl.chat = 0;
}

/*
 * /export FILE [conversation]: EXPORT's body goes to FILE, Markdown if
 * it ends in .md; the current conversation without a second word.
 */
static void
slash_export(const char *arg)
{
	const char	*dot, *conv;
	char		 path[PATH_MAX], *line;
	size_t		 n;
	int		 fd, md;

	n = strcspn(arg, " ");
	conv = arg + n + strspn(arg + n, " ");
	if (n >= sizeof(path)) {
		warnx("/export: file name too long");
		cl.errors++;
		return;
	}
	memcpy(path, arg, n);
	path[n] = '\0';
	dot = strrchr(path, '.');
	md = dot != NULL && strcasecmp(dot, ".md") == 0;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1 || (cl.exportfp = fdopen(fd, "w")) == NULL) {
		warnx("%s: %s", path, strerror(errno));
		if (fd != -1)
			close(fd);
		cl.errors++;
		return;
	}
	(void)strlcpy(cl.exportpath, path, sizeof(cl.exportpath));
	command_mode();
	if (asprintf(&line, "EXPORT %s%s%s", md ? "markdown" : "json",
	    *conv != '\0' ? " " : "", conv) == -1)
		cfatalx("out of memory");
	send_line(line, EXP_EXPORT);
	free(line);
}

/* /import FILE: read it now; it goes when the server says MORE. */
static void
slash_import(const char *arg)
{
	struct stat	 st;
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd;

	if ((fd = open(arg, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1) {
		warnx("%s: %s", arg, strerror(errno));
		if (fd != -1)
			close(fd);
		cl.errors++;
		return;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > IMPORT_MAX) {
		warnx("%s: not a file of at most %d bytes", arg, IMPORT_MAX);
		close(fd);
		cl.errors++;
		return;
	}
	free(cl.import);
	if ((cl.import = malloc(st.st_size + 1)) == NULL)
		cfatalx("out of memory");
	while (off < (size_t)st.st_size &&
	    (n = read(fd, cl.import + off, st.st_size - off)) > 0)
		off += n;
	close(fd);
	cl.import[off] = '\0';
	cl.importlen = off;
	command_mode();
	send_line("IMPORT", EXP_IMPORT);
}

/* A line that chat mode would take for one of its own words. */
static int
is_special(const char *line)
{
	return (strcasecmp(line, "BACK") == 0 ||
	    strcasecmp(line, "EXIT") == 0 || strcasecmp(line, "QUIT") == 0 ||
	    strcasecmp(line, "CANCEL") == 0 || strcmp(line, BLOCK_MARK) == 0);
}

/* One line as a prompt, whatever mode the server is in. */
static void
prompt_one(const char *text)
{
	char	*line;

	if (cl.chat) {
		if (!is_special(text)) {
			send_line(text, EXP_PROMPT);
			return;
		}
		/* Said alone it would be a word of chat mode. */
		block_start();
		block_add(text);
		block_send();
		return;
	}
	if (asprintf(&line, "ASK %s", text) == -1)
		cfatalx("out of memory");
	send_line(line, EXP_PROMPT);
	free(line);
}

/* A """ prompt begins: its lines stay here until it ends. */
void
block_start(void)
{
	cl.block = 1;
}

/* A line of the """ prompt being typed; its closing line sends it. */
void
block_add(const char *line)
{
	char	**nb;

	if (strcmp(line, BLOCK_MARK) == 0) {
		block_send();
		return;
	}
	if ((nb = reallocarray(cl.blk, cl.nblk + 1, sizeof(*nb))) == NULL ||
	    (nb[cl.nblk] = strdup(line)) == NULL)
		cfatalx("out of memory");
	cl.blk = nb;
	cl.nblk++;
}

/* Send the """ prompt as a whole, in chat mode. */
void
block_send(void)
{
	size_t	 i;

	if (!cl.cmdmode && !cl.chat) {
		send_line("IA", EXP_HIDDEN);
		cl.chat = 1;
	}
	send_line(BLOCK_MARK, EXP_NONE);
	for (i = 0; i < cl.nblk; i++)
		send_line(cl.blk[i], EXP_NONE);
	send_line(BLOCK_MARK, EXP_PROMPT);
	block_abandon();
}

/* Forget the """ prompt being typed (Ctrl-C); nothing of it was sent. */
void
block_abandon(void)
{
	size_t	 i;

	for (i = 0; i < cl.nblk; i++)
		free(cl.blk[i]);
	free(cl.blk);
	cl.blk = NULL;
	cl.nblk = 0;
	cl.block = 0;
}

/* A line typed in chat-first mode. */
void
chat_line(const char *line)
{
	const struct slash	*s = NULL;
	const char		*arg;
	char			*out;
	size_t			 n, i;

	if (strcmp(line, BLOCK_MARK) == 0) {
		block_start();
		return;
	}
	if (line[0] != '/') {
		prompt_one(line);
		return;
	}
	if (line[1] == '/') {
		prompt_one(line + 1);
		return;
	}
	n = strcspn(line + 1, " ");
	arg = line + 1 + n;
	arg += strspn(arg, " ");
	for (i = 0; i < sizeof(slashes) / sizeof(slashes[0]); i++)
		if (strlen(slashes[i].name) == n &&
		    strncasecmp(slashes[i].name, line + 1, n) == 0)
			s = &slashes[i];
	if (s == NULL) {
		warnx("unknown command %.*s; /help lists them", (int)n + 1,
		    line);
		cl.errors++;
		return;
	}
	if ((s->arg == SL_NONE && *arg != '\0') ||
	    (s->arg == SL_NEED && *arg == '\0')) {
		warnx("usage: /%s %s", s->name, s->args);
		cl.errors++;
		return;
	}
	if (strcmp(s->name, "help") == 0) {
		slash_help();
		return;
	}
	if (strcmp(s->name, "export") == 0) {
		slash_export(arg);
		return;
	}
	if (strcmp(s->name, "import") == 0) {
		slash_import(arg);
		return;
	}
	if (strcmp(s->name, "raw") == 0) {
		submit_raw(arg);
		return;
	}
	if (s->what != EXP_QUIT)
		command_mode();
	/* /role alone lists the roles. */
	if (strcmp(s->name, "role") == 0 && *arg == '\0')
		out = strdup("ROLES");
	else if (*arg == '\0')
		out = strdup(s->proto);
	else if (asprintf(&out, "%s %s", s->proto, arg) == -1)
		out = NULL;
	if (out == NULL)
		cfatalx("out of memory");
	send_line(out, s->what);
	free(out);
}

/* Is the line this word alone, in any case? */
static int
line_is_word(const char *line, const char *word)
{
	return (strcasecmp(line, word) == 0);
}

/* Does the line start with this command word? */
int
first_word(const char *line, const char *word)
{
	size_t	 n = strlen(word);

	return (strncasecmp(line, word, n) == 0 &&
	    (line[n] == '\0' || line[n] == ' '));
}

/* A line of the user's: a """ prompt's, a MORE answer, chat or -c. */
void
submit(const char *line)
{
	if (cl.block)
		block_add(line);
	else if (cl.more[0] != '\0') {
		cl.more[0] = '\0';
		send_line(line, EXP_COMMAND);
	} else if (!cl.cmdmode)
		chat_line(line);
	else
		submit_raw(line);
}

/* Send a BRIDGE/1 line, knowing what the server will make of it. */
void
submit_raw(const char *line)
{
	enum expect	 what;

	if (cl.chat) {
		if (strcmp(line, BLOCK_MARK) == 0) {
			block_start();
			return;
		} else if (line_is_word(line, "EXIT") ||
		    line_is_word(line, "QUIT"))
			what = EXP_QUIT;
		else if (line_is_word(line, "BACK"))
			what = EXP_COMMAND;
		else
			what = EXP_PROMPT;
	} else {
		if (first_word(line, "INFO"))
			what = EXP_INFO;
		else if (first_word(line, "ASK") ||
		    first_word(line, "RESULT"))
			what = EXP_PROMPT;
		else if (first_word(line, "AUTH"))
			what = EXP_AUTH;
		else if (line_is_word(line, "EXIT") ||
		    line_is_word(line, "QUIT"))
			what = EXP_QUIT;
		else
			what = EXP_COMMAND;
	}
	send_line(line, what);
}
