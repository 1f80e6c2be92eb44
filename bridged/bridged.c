/*
 * bridged.c: main. The same program is the parent and, executed again
 * with -P, each of the control, storage and provider processes.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "bridged.h"

static void	usage(void) __attribute__((__noreturn__));
static int	move_database(struct bridged_conf *, const char *);

/* The synopsis of bridged. */
static void
usage(void)
{
	extern char	*__progname;

	fprintf(stderr, "usage: %s [-dnv] [-D macro=value] [-f file]"
	    " [-m sqlite-file]\n",
	    __progname);
	exit(1);
}

/*
 * -m: copy an SQLite database file into the (empty) PostgreSQL
 * database of the configuration, in one transaction; the password is
 * read from `database password file' as the parent reads it. The
 * exit status.
 */
static int
move_database(struct bridged_conf *conf, const char *from)
{
	struct db	*src = NULL, *dst = NULL;
	struct stat	 sb;
	char		*pw = NULL;
	int		 rv = 1;

	if (!db_server(conf->g.database) || db_server(from)) {
		log_warnx("-m: moves an SQLite file into the PostgreSQL"
		    " `database' of the configuration");
		return (1);
	}
	if (stat(from, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		log_warnx("-m: %s: not an SQLite database file", from);
		return (1);
	}
	if (conf->g.db_password_file[0] != '\0' &&
	    (pw = parent_db_password(conf->g.db_password_file)) == NULL)
		return (1);
	if ((src = db_open(from, SYNC_NORMAL)) != NULL)
		dst = db_connect(conf->g.database, SYNC_FULL, pw);
	if (pw != NULL)
		freezero(pw, strlen(pw));
	if (src != NULL && dst != NULL && db_copy(src, dst) == 0) {
		log_info("moved %s into the configured database", from);
		rv = 0;
	}
	db_close(dst);
	db_close(src);
	return (rv);
}

/* bridged: parse the configuration, then run as the parent or a role. */
int
main(int argc, char *argv[])
{
	struct bridged_conf	*conf;
	const char		*conffile = CONF_FILE, *role = NULL;
	const char		*from = NULL;
	int			 ch, debug = 0, noaction = 0, verbose = 0, id;

#ifndef HAVE_SETPROCTITLE
	setproctitle_init(argc, argv);
#endif
	log_init(1, LOG_DAEMON);
	while ((ch = getopt(argc, argv, "dD:f:m:nP:v")) != -1) {
		switch (ch) {
		case 'd':
			debug = 1;
			break;
		case 'D':
			if (cmdline_symset(optarg) < 0)
				errx(1, "could not parse macro definition %s",
				    optarg);
			break;
		case 'f':
			conffile = optarg;
			break;
		case 'm':
			from = optarg;
			break;
		case 'n':
			noaction++;
			break;
		case 'P':
			role = optarg;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	if (role != NULL) {
		id = proc_from_name(role);
		child_init(id, debug, verbose);
		switch (id) {
		case PROC_CONTROL:
			control_main();
			break;
		case PROC_STORAGE:
			storage_main();
			break;
		case PROC_PROVIDER:
			provider_main();
			break;
		default:
			fatalx("unknown process role %s", role);
		}
		exit(0);
	}

	if ((conf = parse_config(conffile)) == NULL)
		exit(1);
	if (from != NULL)
		exit(move_database(conf, from));
	/* -nn checks the file alone: one meant for another machine. */
	if (noaction < 2 && check_config(conf, conffile, noaction ?
	    CHECK_NOACTION : CHECK_START) == -1)
		exit(1);
	if (noaction) {
		if (verbose)
			config_print(conf);
		fprintf(stderr, "configuration OK\n");
		exit(0);
	}
	conf->g.verbose = verbose;
	parent_main(conf, conffile, argv[0], debug, verbose);
	return (0);
}
