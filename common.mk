# common.mk: compiler flags shared by every directory (included after
# config.mk, which configure writes).
CC ?= cc
AR ?= ar
COPTS ?= -O2 -g
WARNINGS = -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes \
	-Wshadow -Wpointer-arith -Wsign-compare -Wcast-qual
PREFIX ?= /usr/local
SBINDIR = $(PREFIX)/sbin
LIBEXECDIR = $(PREFIX)/libexec
MANDIR = $(PREFIX)/man
SYSCONFDIR ?= /etc
ALL_CFLAGS = $(COPTS) $(WARNINGS) $(OSCFLAGS) $(SAN_FLAGS) -I../lib \
	$(PKG_CFLAGS) -DLIBEXECDIR=\"$(LIBEXECDIR)\" $(CFLAGS)
LDFLAGS += $(SAN_FLAGS)

.SUFFIXES: .c .o
.c.o:
	$(CC) $(ALL_CFLAGS) -c $<
