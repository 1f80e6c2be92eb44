#!/bin/sh
# build.sh: build the libFuzzer targets of regress/fuzz with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer. The daemon's own
# sources are compiled again, instrumented, into obj/; each target
# links them with its harness. Called by the Makefile, which passes
# OSCFLAGS, PKG_CFLAGS and the *_LIBS of config.mk in the environment.
#
# usage: build.sh [target ...]   (default: all)
set -e
cd "$(dirname "$0")"

CC=${FUZZ_CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "build.sh: $CC not found (make fuzz installs it)" >&2
	exit 1
fi
R=../..
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CF="-g -O1 -fno-omit-frame-pointer $SAN -fsanitize=fuzzer-no-link \
 -Wall -Wextra -Wno-unused-function $OSCFLAGS -I$R/lib -I$R/bridged \
 -I$R/bridgectl -I. $PKG_CFLAGS -DLIBEXECDIR=\"/usr/local/libexec\""
LF="$SAN -fsanitize=fuzzer"
WRAP="-Wl,--wrap=fatal,--wrap=fatalx,--wrap=getaddrinfo"
mkdir -p obj
HDRS="$R/lib/util.h $R/lib/ctl.h $R/bridged/bridged.h \
 $R/bridgectl/bridgectl.h fuzz.h fuzz_api.h"

# obj SRC: compile SRC (path from here) into obj/ unless up to date.
obj() {
	o=obj/$(echo "$1" | sed 's|^\.\./\.\./||; s|/|_|g; s|\.c$|.o|')
	OBJ=$o
	if [ -f "$o" ] && [ "$o" -nt "$1" ] && [ "$o" -nt build.sh ]; then
		for h in $HDRS; do
			[ ! -f "$h" ] || [ "$o" -nt "$h" ] || {
				rm -f "$o"; break; }
		done
		[ -f "$o" ] && return 0
	fi
	echo "  CC $1"
	# A harness that no longer matches an interface must not build.
	case $1 in
	fuzz_*) $CC $CF -Werror -c -o "$o" "$1" ;;
	*) $CC $CF -c -o "$o" "$1" ;;
	esac
}

# lib/ but its sandboxes (the targets run unsandboxed).
LIBSRC=$(cd $R/lib && ls *.c | grep -v '^sandbox' | sed 's/\.c$//')
lib() {
	L=""
	for s in $LIBSRC; do
		obj $R/lib/$s.c
		L="$L $OBJ"
	done
}

# target NAME "daemon sources" "libraries": link NAME.c, fuzz_common.c,
# the sources named and lib/.
target() {
	name=$1
	objs=""
	for s in $2 $name.c fuzz_common.c; do
		case $s in
		*/*) obj $R/$s ;;
		*) obj $s ;;
		esac
		objs="$objs $OBJ"
	done
	lib
	if [ -x "$name" ] && [ -z "$(find $objs $L -newer "$name")" ]; then
		return 0
	fi
	echo "  LD $name"
	$CC $LF $WRAP -o "$name" $objs $L $3
}

# Everything a target may need beyond libc.
ALL_LIBS="$TLS_LIBS $SQLITE_LIBS $PQ_LIBS $CURL_LIBS $JANSSON_LIBS $SECCOMP_LIBS"

want() {
	[ $# -eq 0 ] && return 0
	case " $WANT " in *" $1 "*) return 0 ;; esac
	return 1
}
WANT="$*"

build() {
	if [ -z "$WANT" ] || want "$1"; then
		target "$@"
	fi
}

build fuzz_sse "bridged/sse.c" ""
build fuzz_reply "" ""
API="bridged/gemini.c bridged/openai.c bridged/anthropic.c bridged/wire.c \
 bridged/jsonw.c bridged/jsonr.c bridged/sse.c"
build fuzz_request "$API" "$JANSSON_LIBS"
for api in gemini openai anthropic; do
	build fuzz_${api}_stream "$API" "$JANSSON_LIBS"
	build fuzz_${api}_models "$API" "$JANSSON_LIBS"
done
# The daemon's sources (OBJS of bridged/Makefile) less main and less
# what a target includes whole or replaces: $1 is a grep -v pattern.
bsrc() {
	awk '/^OBJS/ { f = 1 } f { print; if ($0 !~ /\\$/) exit }' \
	    $R/bridged/Makefile | tr -d '\\' |
	    sed 's/OBJS *=//' | tr ' \t' '\n\n' | grep '\.o$' |
	    grep -v -e '^main\.o$' -e "$1" |
	    sed 's|^|bridged/|; s|\.o$|.c|'
}

# The worker's sources, as bridged/Makefile lists them (WOBJS), but
# its main parts: the session targets link the rest, whatever it is.
WSRC=$(awk '/^WOBJS/ { f = 1 } f { print; if ($0 !~ /\\$/) exit }' \
    $R/bridged/Makefile | tr -d '\\' |
    sed 's/WOBJS *=//' | tr ' \t' '\n\n' | grep '\.o$' |
    grep -v -e '^worker\.o$' -e '^template\.o$' | sed 's|^|bridged/|; s|\.o$|.c|')
build fuzz_proto "$WSRC" "$TLS_LIBS $JANSSON_LIBS"
build fuzz_imsg "" ""
build fuzz_config "$(bsrc "^$")" "$ALL_LIBS"
build fuzz_config_recv "$(bsrc "^$")" "$ALL_LIBS"
build fuzz_storage "$(bsrc '^storage\.o$')" "$ALL_LIBS"
build fuzz_provider "$(bsrc '^\(provider\|upstream\|jobs\|xfer\)\.o$')" "$ALL_LIBS"
build fuzz_worker "$WSRC" "$TLS_LIBS $JANSSON_LIBS"
build fuzz_parent "$(bsrc '^parent\.o$')" "$ALL_LIBS"
build fuzz_reply_feed "bridgectl/replies.c bridgectl/conn.c bridgectl/chat.c \
 bridgectl/tty.c bridgectl/pin.c bridgectl/servers.c" \
 "$TLS_LIBS $EDIT_LIBS"
