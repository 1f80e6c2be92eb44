#!/bin/sh
# demo.sh (make demo): bridged in the foreground on loopback with a
# throwaway certificate and a development configuration under
# regress/tmp/demo, and a chat session in this terminal. With
# DEMO_OPENAI_URL set (a local Ollama or llama.cpp server, say) it talks
# to that OpenAI-compatible server, model DEMO_MODEL; else with
# GEMINI_API_KEY set to the real Gemini API; otherwise to the project's
# fake upstream, and it says which.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/regress/tmp/demo
port=${DEMO_PORT:-65432}
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

fakepid=
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
	python3 "$top/regress/fake_gemini.py" --port 0 \
	    --port-file "$dir/fake.port" --key demo-key \
	    >"$dir/fake.log" 2>&1 &
	fakepid=$!
	i=0
	while [ ! -s "$dir/fake.port" ] && [ $i -lt 100 ]; do
		sleep 0.05; i=$((i + 1))
	done
	url=http://127.0.0.1:$(cat "$dir/fake.port")/v1beta
	echo "demo: GEMINI_API_KEY is not set: using the fake upstream" \
	    "(answers are echoes)"
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

"$top/bridged/bridged" -d -f "$dir/bridged.conf" 2>"$dir/bridged.log" &
pid=$!
cleanup() {
	kill "$pid" 2>/dev/null || true
	[ -n "$fakepid" ] && kill "$fakepid" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
i=0
until "$top/bridgectl/bridgectl" -s "$dir/bridged.sock" show status \
    >/dev/null 2>&1; do
	sleep 0.1; i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "demo: bridged did not start; see $dir/bridged.log" >&2
		exit 1
	fi
done
"$top/bridgectl/bridgectl" -s "$dir/bridged.sock" show status
echo "demo: logs in $dir/bridged.log; type HELP, IA to chat, QUIT to leave"
status=0
"$top/bridgectl/bridgectl" connect -p "$port" -C "$dir/server.crt" \
    127.0.0.1 || status=$?
trap - EXIT INT TERM
cleanup
exit $status
