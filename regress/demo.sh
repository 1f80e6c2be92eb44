#!/bin/sh
# demo.sh (make demo): bridged on loopback with a throwaway certificate
# and a development configuration under regress/tmp/demo, and a chat
# session in this terminal. With DEMO_OPENAI_URL set (a local Ollama or
# llama.cpp server, say) it talks to that OpenAI-compatible server, model
# DEMO_MODEL; else with GEMINI_API_KEY set to the real Gemini API;
# otherwise to the project's fake upstream, slowed to a human pace, and
# it says which.
#
# bridged and the fake upstream run in sessions of their own (setsid):
# Ctrl-C and a closing terminal reach only this script and the client.
# Whatever way the demo ends, it stops both, by pid; a watchdog in its
# own session does it too if this script is killed outright.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/regress/tmp/demo
port=${DEMO_PORT:-65432}
pace=${DEMO_PACE:-250}
bridged=$top/bridged/bridged
bridgectl=$top/bridgectl/bridgectl
pid=
fakepid=
watchpid=

# Stop what this demo started, by pid, saying nothing: the terminal may
# be gone already.
cleanup() {
	set +e
	trap '' INT HUP TERM
	for p in $pid $fakepid $watchpid; do
		kill "$p" 2>/dev/null
	done
	i=0
	while [ $i -lt 50 ]; do
		alive=
		for p in $pid $fakepid; do
			kill -0 "$p" 2>/dev/null && alive=1
		done
		[ -z "$alive" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	for p in $pid $fakepid; do
		kill -KILL "$p" 2>/dev/null
	done
	pid= fakepid= watchpid=
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 129' HUP
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

case $port in
''|*[!0-9]*)
	echo "demo: DEMO_PORT=$port is not a port number" >&2
	exit 1
	;;
esac
# Someone else's daemon on the port is not ours to talk to.
if ! python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
	echo "demo: port $port is in use by another program;" \
	    "choose another with DEMO_PORT=N make demo" >&2
	exit 1
fi

# Nor is another demo's, which would lose its socket to this one.
if [ -S "$dir/bridged.sock" ] &&
    "$bridgectl" -s "$dir/bridged.sock" show status >/dev/null 2>&1; then
	echo "demo: another demo is running (its socket is" \
	    "$dir/bridged.sock); end it first" >&2
	exit 1
fi

mkdir -p "$dir/db" "$dir/empty"
chmod 755 "$top/regress/tmp" "$dir" "$dir/empty"
if [ "$(id -u)" = 0 ]; then
	user=nobody
	chown nobody "$dir/db"
else
	user=$(id -un)
fi
if [ ! -f "$dir/server.crt" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	    -nodes -keyout "$dir/server.key" -out "$dir/server.crt" \
	    -days 30 -subj /CN=localhost \
	    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
fi

provider=
if [ -n "${DEMO_OPENAI_URL:-}" ]; then
	echo "demo: using the OpenAI-compatible server at $DEMO_OPENAI_URL," \
	    "model ${DEMO_MODEL:-llama3.2}"
	provider="provider \"local\" {
	type openai
	url \"$DEMO_OPENAI_URL\"
	model \"${DEMO_MODEL:-llama3.2}\"
	timeout 900
}"
elif [ -n "${GEMINI_API_KEY:-}" ]; then
	url=https://generativelanguage.googleapis.com/v1beta
	echo "demo: using the real Gemini API (GEMINI_API_KEY is set)"
else
	GEMINI_API_KEY=demo-key
	export GEMINI_API_KEY
	rm -f "$dir/fake.port"
	(exec setsid python3 "$top/regress/fake_gemini.py" --port 0 \
	    --port-file "$dir/fake.port" --key demo-key --pace "$pace" \
	    </dev/null >"$dir/fake.log" 2>&1) &
	fakepid=$!
	i=0
	while [ ! -s "$dir/fake.port" ]; do
		sleep 0.05
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 "$fakepid" 2>/dev/null; then
			echo "demo: the fake upstream did not start;" \
			    "see $dir/fake.log" >&2
			exit 1
		fi
	done
	url=http://127.0.0.1:$(cat "$dir/fake.port")/v1beta
	echo "demo: GEMINI_API_KEY is not set: using the fake upstream" \
	    "(answers are echoes, at a human pace)"
fi
if [ -z "$provider" ]; then
	provider="provider \"gemini\" {
	type gemini
	url \"$url\"
	api key env \"GEMINI_API_KEY\"
	model \"gemini-2.0-flash\"
}"
fi

cat >"$dir/bridged.conf" <<CONF
listen on 127.0.0.1 port $port tls
tls certificate "$dir/server.crt"
tls key "$dir/server.key"
user "$user"
chroot "$dir/empty"
database "$dir/db/bridged.db"
socket "$dir/bridged.sock"
prefork 2
$provider
CONF

(exec setsid "$bridged" -d -f "$dir/bridged.conf" </dev/null \
    >"$dir/bridged.log" 2>&1) &
pid=$!
# The watchdog: if this script dies without its traps (SIGKILL), the
# daemon and the fake upstream go within a second.
(exec setsid sh -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done
	kill "$2" $3 2>/dev/null' "$dir/watchdog" $$ "$pid" "$fakepid" \
    </dev/null >/dev/null 2>&1) &
watchpid=$!

i=0
until "$bridgectl" -s "$dir/bridged.sock" show status 2>/dev/null |
    grep -qx "process: parent $pid"; do
	sleep 0.1
	i=$((i + 1))
	if [ $i -gt 150 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "demo: bridged did not start; the end of" \
		    "$dir/bridged.log:" >&2
		tail -n 5 "$dir/bridged.log" >&2
		exit 1
	fi
done
cat <<EOF
demo: bridged (pid $pid) listens on 127.0.0.1 port $port
demo: its control socket is $dir/bridged.sock; from another terminal:
    $bridgectl -s $dir/bridged.sock show status
demo: its log is $dir/bridged.log
demo: type a question; /help lists the commands; Ctrl-C stops an answer;
demo: Ctrl-D or /bye ends the demo and stops bridged
EOF
status=0
# Ctrl-C belongs to the client; this script only notes it.
trap : INT
"$bridgectl" connect -p "$port" -C "$dir/server.crt" 127.0.0.1 ||
    status=$?
trap 'cleanup; exit 130' INT
exit $status
