#!/bin/sh
#
# run.sh: the bridged.conf(5) regress.
#
# The cases name files of other machines: -nn checks the syntax alone.
# NN.conf must be accepted by "bridged -nnv", which must print NN.ok; the
# printed configuration must parse again and print the same text.
# bNN.conf must be refused with exit status 1 and bNN.ok on stderr.
# A line "# args: ..." in a case gives more arguments (such as -D).
# One line per case: "ok <name>" or "FAIL <name>: <why>".

cd "$(dirname "$0")" || exit 1
BRIDGED=${BRIDGED:-../../bridged/bridged}
EXAMPLE=../../bridged.conf

failed=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bridged-config.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

pass() {
	echo "ok config/$1"
}

fail() {
	echo "FAIL config/$1: $2"
	failed=$((failed + 1))
}

# The extra arguments a case asks for.
args() {
	sed -n 's/^# args: //p' "$1"
}

# Show how an output differs, as comments the runner does not count.
show() {
	diff -u "$1" "$2" | sed 's/^/# /' >&2
}

# A good file: accepted, printed as expected (if $2 is not empty), and
# printed the same again when its output is read back. Leaves the
# output in $tmp/out, or the reason for failing in $why.
good() {
	conf=$1 expect=$2
	shift 2
	"$BRIDGED" -nnv "$@" -f "$conf" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -ne 0 ]; then
		why="exit status $rc: $(head -n 1 "$tmp/err")"
		return 1
	fi
	if [ "$(tail -n 1 "$tmp/err")" != "configuration OK" ]; then
		why="no \"configuration OK\" on stderr"
		return 1
	fi
	if [ -n "$expect" ] && ! cmp -s "$expect" "$tmp/out"; then
		show "$expect" "$tmp/out"
		why="output differs from $expect"
		return 1
	fi
	cp "$tmp/out" "$tmp/again.conf"
	if ! "$BRIDGED" -nnv -f "$tmp/again.conf" >"$tmp/out2" 2>"$tmp/err2"
	then
		sed 's/^/# /' "$tmp/err2" >&2
		why="its printed configuration does not parse"
		return 1
	fi
	if ! cmp -s "$tmp/out" "$tmp/out2"; then
		show "$tmp/out" "$tmp/out2"
		why="its printed configuration prints differently"
		return 1
	fi
	return 0
}

# A bad file: refused with exit status 1, nothing on stdout, and the
# messages of $2 (if not empty) on stderr.
bad() {
	conf=$1 expect=$2
	shift 2
	"$BRIDGED" -nn "$@" -f "$conf" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ $rc -ne 1 ]; then
		why="exit status $rc, not 1"
		return 1
	fi
	if [ -s "$tmp/out" ]; then
		why="printed on stdout"
		return 1
	fi
	if [ -n "$expect" ] && ! cmp -s "$expect" "$tmp/err"; then
		show "$expect" "$tmp/err"
		why="messages differ from $expect"
		return 1
	fi
	return 0
}

# A host name: every address it resolves to becomes a listener. Which
# ones depends on the resolver, so check only that all are loopback.
hostname() {
	good "$1" "" || return 1
	addrs=$(grep '^listen on ' "$tmp/out")
	if [ -z "$addrs" ] || echo "$addrs" |
	    grep -Eqv '^listen on (127\.[0-9.]+|::1) port 7200$'; then
		why="listeners: $(echo "$addrs" | tr '\n' ' ')"
		return 1
	fi
	return 0
}

# Run one case and say how it went.
run() {
	name=$1
	shift
	why=
	if "$@"; then
		pass "$name"
	else
		fail "$name" "$why"
	fi
}

if [ ! -x "$BRIDGED" ]; then
	fail build "$BRIDGED is missing: build it first"
	exit 1
fi

for conf in [0-9]*.conf; do
	name=${conf%.conf}
	# shellcheck disable=SC2046
	run "$name" good "$conf" "$name.ok" $(args "$conf")
done

for conf in b[0-9]*.conf; do
	name=${conf%.conf}
	# shellcheck disable=SC2046
	run "$name" bad "$conf" "$name.ok" $(args "$conf")
done

# The example configuration at the top of the tree.
run example good "$EXAMPLE" ""

# A configuration file that does not exist.
echo "bridged: no-such.conf: No such file or directory" >"$tmp/missing.ok"
run missing bad no-such.conf "$tmp/missing.ok"

# Malformed -D definitions are refused.
for d in noequals =value bad-name=1; do
	run "D-$d" bad 01.conf "" -D "$d"
done

cat >"$tmp/localhost.conf" <<'END'
listen on localhost port 7200
provider "gemini" {
	api key env "GEMINI_API_KEY"
}
END
run localhost hostname "$tmp/localhost.conf"

[ $failed -eq 0 ]
