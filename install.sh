#!/bin/sh
# install.sh: `make install`. Copies the programs, the manual pages, the
# example configuration and the service script of this system into
# DESTDIR/PREFIX, and says what it did.
#
#	sh ./install.sh [--create-user] [DESTDIR [PREFIX]]
#	make install [DESTDIR=...] [PREFIX=/usr/local] [BRIDGED_CREATE_USER=1]
#
# Where things go (PREFIX defaults to /usr/local):
#	PREFIX/sbin/bridged, PREFIX/sbin/bridgectl	mode 0555
#	PREFIX/libexec/bridged-worker			mode 0555
#	PREFIX/man/man5, man8 (OpenBSD)			mode 0444
#	PREFIX/share/man/man5, man8 (Linux and others)	mode 0444
#	PREFIX/share/examples/bridged/bridged.conf	mode 0644
#	/etc/bridged.conf, only if there is none	mode 0640
#	/etc/bridged/ (certificates and keys)		mode 0755
#	/etc/rc.d/bridged (OpenBSD)			mode 0555
#	PREFIX/lib/systemd/system/bridged.service (Linux)	mode 0644
#	    systemd reads that directory for PREFIX /usr and /usr/local;
#	    for another PREFIX set SYSTEMDUNITDIR=/etc/systemd/system, or
#	    `systemctl link` the unit (install.sh says so)
# The service scripts name PREFIX/sbin/bridged. Everything lands under
# DESTDIR when it is set (for packages and tests).
#
# With --create-user (or BRIDGED_CREATE_USER=1) it also creates the
# unprivileged user _bridged and its directories:
#	/var/bridged	the database, mode 0750, owned by _bridged
#	/var/empty	the workers' chroot, mode 0755, owned by root
# Under a DESTDIR the user goes into DESTDIR/etc/passwd (useradd
# --prefix on Linux). Without the option it prints the commands instead.

set -e
umask 022

create_user=${BRIDGED_CREATE_USER:-0}
case "$create_user" in
1|yes|YES|true) create_user=1 ;;
*) create_user=0 ;;
esac
while [ $# -gt 0 ]; do
	case "$1" in
	--create-user) create_user=1; shift ;;
	--) shift; break ;;
	-*) echo "usage: install.sh [--create-user] [DESTDIR [PREFIX]]" >&2
	    exit 2 ;;
	*) break ;;
	esac
done
DESTDIR=${1:-}
PREFIX=${2:-/usr/local}
case "$PREFIX" in
/*) ;;
*) echo "install.sh: PREFIX must be an absolute path: $PREFIX" >&2
   exit 2 ;;
esac
PREFIX=${PREFIX%/}
[ -n "$PREFIX" ] || PREFIX=/
case "$DESTDIR" in
''|/*) ;;
*) DESTDIR=$(pwd)/$DESTDIR ;;
esac
DESTDIR=${DESTDIR%/}

cd "$(dirname "$0")"
os=$(uname -s)
user=_bridged
sbindir=$PREFIX/sbin
libexecdir=$PREFIX/libexec
exampledir=$PREFIX/share/examples/bridged
case "$os" in
OpenBSD) mandir=$PREFIX/man ;;
*) mandir=$PREFIX/share/man ;;
esac
unitdir=${SYSTEMDUNITDIR:-$PREFIX/lib/systemd/system}
[ "$PREFIX" = / ] && unitdir=${SYSTEMDUNITDIR:-/usr/lib/systemd/system}

say() {
	echo "install: $*"
}

# inst MODE SOURCE TARGET: copy one file, replacing the target.
inst() {
	_dir=$(dirname "$DESTDIR$3")
	[ -d "$_dir" ] || mkdir -p "$_dir"
	rm -f "$DESTDIR$3"
	cp "$2" "$DESTDIR$3"
	chmod "$1" "$DESTDIR$3"
	say "$2 -> $DESTDIR$3 ($1)"
}

# instsub MODE SOURCE TARGET: as inst, naming the programs' real paths.
instsub() {
	_dir=$(dirname "$DESTDIR$3")
	[ -d "$_dir" ] || mkdir -p "$_dir"
	rm -f "$DESTDIR$3"
	sed -e "s|/usr/local/sbin/|$sbindir/|g" "$2" >"$DESTDIR$3"
	chmod "$1" "$DESTDIR$3"
	say "$2 -> $DESTDIR$3 ($1, programs in $sbindir)"
}

# dir MODE PATH: a directory, made if missing, given MODE.
dir() {
	if [ ! -d "$DESTDIR$2" ]; then
		mkdir -p "$DESTDIR$2"
		say "made directory $DESTDIR$2"
	fi
	chmod "$1" "$DESTDIR$2"
}

# Has the program the LIBEXECDIR it will look in for its worker?
libexec_of() {
	tr '\000' '\n' <bridged/bridged | grep -x -F "$libexecdir" \
	    >/dev/null 2>&1
}

for f in bridged/bridged bridged/bridged-worker bridgectl/bridgectl; do
	if [ ! -x "$f" ]; then
		echo "install.sh: $f is not built; run make first" >&2
		exit 1
	fi
done
if ! libexec_of; then
	echo "install.sh: bridged/bridged was built for another PREFIX and" \
	    "would not find $libexecdir/bridged-worker;" \
	    "run: make clean && make install PREFIX=$PREFIX" >&2
	exit 1
fi

say "DESTDIR=${DESTDIR:-(none)} PREFIX=$PREFIX on $os"
inst 0555 bridged/bridged "$sbindir/bridged"
inst 0555 bridgectl/bridgectl "$sbindir/bridgectl"
inst 0555 bridged/bridged-worker "$libexecdir/bridged-worker"

nman=0
for page in man/*.5 man/*.8; do
	[ -f "$page" ] || continue
	sect=${page##*.}
	inst 0444 "$page" "$mandir/man$sect/$(basename "$page")"
	nman=$((nman + 1))
done
[ $nman -gt 0 ] || say "no manual pages in man/ yet: none installed"

inst 0644 bridged.conf "$exampledir/bridged.conf"
if [ -e "$DESTDIR/etc/bridged.conf" ]; then
	say "$DESTDIR/etc/bridged.conf exists: left as it is"
else
	inst 0640 bridged.conf /etc/bridged.conf
fi
dir 0755 /etc/bridged

case "$os" in
OpenBSD)
	instsub 0555 rc.d/bridged /etc/rc.d/bridged
	;;
Linux)
	instsub 0644 rc.d/bridged.service "$unitdir/bridged.service"
	case "$unitdir" in
	/etc/systemd/system|/usr/lib/systemd/system|/lib/systemd/system|\
	/usr/local/lib/systemd/system) ;;
	*) say "systemd does not look in $unitdir: run" \
	       "systemctl link $unitdir/bridged.service" ;;
	esac
	;;
*)
	say "no service script for $os; see $exampledir"
	;;
esac

# The uid and gid of the user, from DESTDIR's passwd when there is one.
ids_of() {
	if [ -n "$DESTDIR" ]; then
		awk -F: -v u="$1" '$1 == u { print $3 ":" $4; f = 1 }
		    END { exit !f }' "$DESTDIR/etc/passwd" 2>/dev/null
	else
		_u=$(id -u "$1" 2>/dev/null) && _g=$(id -g "$1") &&
		    echo "$_u:$_g"
	fi
}

case "$os" in
OpenBSD)
	nologin=/sbin/nologin
	adduser="useradd -c bridged -d /var/empty -g =uid -s $nologin $user"
	;;
*)
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	adduser="useradd --system --no-create-home --home-dir /var/empty"
	adduser="$adduser --shell $nologin --user-group $user"
	;;
esac

if [ "$create_user" != 1 ]; then
	cat <<EOF
install: done. bridged runs its children as the user "$user" (see
install: bridged.conf(5), "user" and "chroot"). Not asked to create it
install: (make install BRIDGED_CREATE_USER=1, or install.sh
install: --create-user, does); to do it by hand:
install:	$adduser
install:	mkdir -p /var/bridged /var/empty
install:	chown $user:$user /var/bridged && chmod 0750 /var/bridged
install:	chown root /var/empty && chmod 0755 /var/empty
install: Then put the TLS certificate and key in /etc/bridged/ and
install: check the configuration with: $sbindir/bridged -n
EOF
	exit 0
fi

if ids=$(ids_of "$user"); then
	say "user $user exists ($ids)"
elif [ -z "$DESTDIR" ]; then
	$adduser
	ids=$(ids_of "$user")
	say "created user $user ($ids): $adduser"
elif [ "$os" = Linux ]; then
	useradd --prefix "$DESTDIR" ${adduser#useradd}
	ids=$(ids_of "$user")
	say "created user $user ($ids) in $DESTDIR/etc/passwd"
else
	echo "install.sh: cannot add a user under DESTDIR on $os;" \
	    "on the target run: $adduser" >&2
	exit 1
fi

dir 0750 /var/bridged
chown "$ids" "$DESTDIR/var/bridged"
say "$DESTDIR/var/bridged: owner $user ($ids), mode 0750"
dir 0755 /var/empty
chown 0:0 "$DESTDIR/var/empty"
say "$DESTDIR/var/empty: owner root, mode 0755"
say "done. Put the TLS certificate and key in $DESTDIR/etc/bridged/;" \
    "check the configuration with: $sbindir/bridged -n"
