#!/bin/sh
# setup.sh: make sure clang and its libFuzzer and sanitizer runtimes
# are installed (Debian: clang, libclang-rt-N-dev); install them with
# apt-get when they are not. Exit 0 when a fuzz target can be linked.
cd "$(dirname "$0")"

works() {
	command -v clang >/dev/null 2>&1 || return 1
	t=$(mktemp -d) || return 1
	printf '%s\n' '#include <stddef.h>' \
	    'int LLVMFuzzerTestOneInput(const unsigned char *d, size_t n)' \
	    '{ (void)d; (void)n; return 0; }' >"$t/t.c"
	clang -fsanitize=fuzzer,address,undefined -o "$t/t" "$t/t.c" \
	    >/dev/null 2>&1
	r=$?
	rm -rf "$t"
	return $r
}

works && exit 0
[ "$1" = -n ] && exit 1
if ! command -v apt-get >/dev/null 2>&1; then
	echo "setup.sh: install clang with its libFuzzer runtime" >&2
	exit 1
fi
[ "$(id -u)" = 0 ] && sudo= || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
echo "setup.sh: installing clang and its fuzzer runtime" >&2
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends clang >/dev/null
v=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' |
    head -1)
works || $sudo apt-get install -y -qq --no-install-recommends \
    "libclang-rt-$v-dev" >/dev/null
works
