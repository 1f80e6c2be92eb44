#!/bin/sh
# bench_setup.sh: what `make bench` needs beyond the build: nginx with
# its stream module (Debian's nginx-light and libnginx-mod-stream), the
# floor of the connection figures. Installed once, as root, with the
# system's package manager; nginx is never started here: bench_driver.py
# starts its own on loopback and stops it by pid.
MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

if command -v nginx >/dev/null 2>&1 && [ -f "$MODULE" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "bench: nginx with the stream module is missing; the nginx" \
	    "floor will be left out" >&2
	exit 0
fi
echo "bench: installing nginx-light and libnginx-mod-stream" >&2
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends nginx-light libnginx-mod-stream >/dev/null; then
	apt-get update -q >/dev/null 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends nginx-light libnginx-mod-stream \
	    >/dev/null || echo "bench: could not install nginx" >&2
fi
exit 0
