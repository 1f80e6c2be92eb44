/*
 * file.c: reading a small file whole, for the keys, certificates and
 * token lists a privileged process reads before anything drops.
 */

#include <sys/types.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* Read a whole file of at most 1 MiB into memory; -1, logged, if not. */
int
read_file(const char *path, uint8_t **bufp, size_t *lenp)
{
	struct stat	 st;
	uint8_t		*buf;
	ssize_t		 n;
	size_t		 off = 0;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		log_warn("%s: %s", __func__, path);
		return (-1);
	}
	if (fstat(fd, &st) == -1 || st.st_size <= 0 ||
	    st.st_size > 1024 * 1024) {
		log_warnx("%s: %s: not a usable file", __func__, path);
		close(fd);
		return (-1);
	}
	if ((buf = malloc(st.st_size)) == NULL)
		fatal("%s", __func__);
	while (off < (size_t)st.st_size) {
		if ((n = read(fd, buf + off, st.st_size - off)) <= 0) {
			log_warn("%s: read %s", __func__, path);
			freezero(buf, st.st_size);
			close(fd);
			return (-1);
		}
		off += n;
	}
	close(fd);
	*bufp = buf;
	*lenp = off;
	return (0);
}
