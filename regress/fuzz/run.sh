#!/bin/sh
# run.sh: run the libFuzzer targets of regress/fuzz.
#
#   run.sh fuzz SECONDS [target ...]
#	Fuzz each target SECONDS s, starting from its seeds (corpus/T)
#	and what earlier runs found (../tmp/fuzz/T); print per target
#	the executions, the coverage and what it found. A crash, leak,
#	hang or UB report leaves its input in ../tmp/fuzz/T-*.
#   run.sh check
#	Run each target once over every input of corpus/T: what was
#	once found stays fixed. Prints ok/FAIL/skip lines for run.py.
cd "$(dirname "$0")"

TARGETS="fuzz_proto fuzz_reply fuzz_reply_feed fuzz_sse fuzz_gemini_stream
 fuzz_gemini_models fuzz_openai_stream fuzz_openai_models
 fuzz_anthropic_stream fuzz_anthropic_models fuzz_imsg fuzz_config fuzz_config_recv fuzz_storage
 fuzz_provider fuzz_worker fuzz_parent"
# Only the targets that are built (a Makefile may add more).
for t in fuzz_*.c; do
	[ "$t" = fuzz_common.c ] && continue
	t=${t%.c}
	case " $(echo $TARGETS) " in *" $t "*) ;; *) TARGETS="$TARGETS $t" ;;
	esac
done
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

check() {
	if ! sh setup.sh -n; then
		echo "skip fuzz: clang with libFuzzer is not installed" \
		    "(make fuzz installs it); the corpora were not run"
		return 0
	fi
	for t in $TARGETS; do
		if [ ! -x "$t" ]; then
			echo "FAIL fuzz/$t: not built"
			continue
		fi
		n=$(ls corpus/$t 2>/dev/null | wc -l)
		if [ "$n" -eq 0 ]; then
			echo "FAIL fuzz/$t: no corpus in corpus/$t"
			continue
		fi
		log=$(mktemp)
		# -runs=0: the corpus only, each input checked for leaks.
		if ./$t -runs=0 -close_fd_mask=3 -timeout=25 \
		    -rss_limit_mb=4096 corpus/$t >"$log" 2>&1; then
			# An exit 0 before the end is no pass either.
			if grep -q '^Done ' "$log"; then
				echo "ok fuzz/$t: $n inputs"
			else
				echo "FAIL fuzz/$t: exited before the end of" \
				    "its corpus: $(tail -1 "$log")"
			fi
		else
			echo "FAIL fuzz/$t: $(grep -E 'ERROR|SUMMARY|Running' \
			    "$log" | tail -3 | tr '\n' ' ')"
		fi
		rm -f "$log"
	done
}

fuzz() {
	secs=$1
	shift
	[ $# -gt 0 ] && TARGETS="$*"
	work=../tmp/fuzz
	mkdir -p "$work"
	bad=0
	printf '%-20s %6s %10s %14s %7s %6s  %s\n' target seconds executions \
	    "edges (of)" features inputs found
	for t in $TARGETS; do
		mkdir -p "$work/$t"
		dict=
		[ -f "dict/$t.dict" ] && dict="-dict=dict/$t.dict"
		log=$work/$t.log
		./$t -max_total_time="$secs" -print_final_stats=1 \
		    -close_fd_mask=3 -timeout=25 -rss_limit_mb=4096 \
		    -artifact_prefix="$work/$t-" $dict \
		    "$work/$t" corpus/$t >"$log" 2>&1
		rc=$?
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		total=$(sed -n 's/.*Loaded 1 modules *(\([0-9]*\) inline.*/\1/p' \
		    "$log" | head -1)
		last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -1)
		cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
		ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
		corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
		found=nothing
		if [ $rc -ne 0 ]; then
			bad=1
			found=$(grep -E '^SUMMARY|ERROR: libFuzzer' "$log" |
			    head -1 | cut -c1-70)
			found="$found; input: $(ls -t "$work/$t"-* 2>/dev/null |
			    head -1)"
		fi
		printf '%-20s %6s %10s %14s %7s %6s  %s\n' "$t" "$secs" \
		    "${execs:-?}" "${cov:-?} ($total)" "${ft:-?}" \
		    "${corp:-?}" "$found"
	done
	return $bad
}

case "$1" in
check)
	check
	;;
fuzz)
	shift
	secs=${1:-60}
	[ $# -gt 0 ] && shift
	fuzz "$secs" "$@"
	;;
*)
	echo "usage: run.sh check | fuzz SECONDS [target ...]" >&2
	exit 2
	;;
esac
