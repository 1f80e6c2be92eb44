#!/bin/sh
# bench.sh: `make bench` (regress/Makefile builds loadgen first). Prints
# figures, each beside a floor measured in the same run; never fails
# because of a figure. It exits non-zero only when something could not
# be measured at all (a program missing, a daemon that did not start).
#
#	BENCH_SECS=5	seconds measured per figure (after 1 s of warm-up)
#	BENCH_IDLE=500	idle sessions held for the memory figure
#	BENCH_CHAT_ROUNDS=3	runs of each chat figure, bridged and its
#			floors taking turns; the median is printed
#	sh bench.sh [connect] [chat] [stream] [memory] [scale] [storage]

cd "$(dirname "$0")" || exit 1
PYTHON=${PYTHON:-python3}
status=0

want_storage=1
if [ $# -gt 0 ]; then
	want_storage=0
	for a in "$@"; do
		[ "$a" = storage ] && want_storage=1
	done
	set -- $(for a in "$@"; do [ "$a" = storage ] || echo "$a"; done)
	[ $# -eq 0 ] && set -- none
fi

if [ "$1" != none ]; then
	sh bench_setup.sh
	$PYTHON bench_driver.py "$@" || status=1
fi

if [ $want_storage = 1 ]; then
	echo
	echo "storage: commit rate of the storage process against plain SQLite"
	if [ -x ./bench_storage ]; then
		out=$(./bench_storage 2>&1) || status=1
		printf '%s\n' "$out" | grep -v ': schema version ' |
		    sed 's/^/  /'
	else
		echo "  bench_storage is not built (make bench builds it)"
	fi
	echo
	echo "storage: commit rate of the storage process on PostgreSQL" \
	    "against a plain libpq loop"
	if [ -x ./bench_storage ]; then
		# A server of its own, fsync on, stopped by pid at the end.
		out=$($PYTHON pgserver.py exec ./bench_storage -P 2>&1)
		rc=$?
		[ $rc = 0 ] || [ $rc = 3 ] || status=1
		printf '%s\n' "$out" | grep -v ': schema version ' |
		    sed 's/^/  /'
	fi
fi
exit $status
