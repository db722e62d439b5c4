#!/usr/bin/env bats
# reco-serve-attack.bats: reco-serve over HTTP under attack and faults: deadlines for slow bodies and headers, Redis stopped or killed, a corrupt or vanished store, health and readiness, the protocol edges; and the attack suite, where a well-behaved client must keep being answered.

load helpers
load helpers-serve
load helpers-redis

bats_require_minimum_version 1.5.0

# The well-behaved client during an attack: 30 requests a second for 6 s
# (open loop), at least 99% answered 200, p99 under this many ms.
P99_BOUND=500

setup() {
	common_setup
	command -v curl >/dev/null || skip "curl is not installed"
	command -v python3 >/dev/null || skip "python3 is not installed"
	F=$(fixture serve)
	reco-train -o m.bin <"$F/events.ndjson"
	reco-profile --store p.state <"$F/events.ndjson" >/dev/null
	cp p.state good.state
}

teardown() {
	[ -n "${APID:-}" ] && { kill "$APID" 2>/dev/null || true; wait "$APID" 2>/dev/null || true; }
	serve_stop
	redis_stop
	# A Redis started again by redis_fault, even if the test failed first.
	if [ -f "$BATS_TEST_TMPDIR/new-redis.pid" ]; then
		kill "$(cat "$BATS_TEST_TMPDIR/new-redis.pid")" 2>/dev/null || true
	fi
}

# hex STRING: the bytes of a printf format, in hex, for attack raw.
hex() {
	# shellcheck disable=SC2059
	printf "$1" | od -An -v -tx1 | tr -d ' \n'
}

# ---- 1. a slow body ----

@test "a body trickling in gets 408 at --timeout from its first byte, and its slot is free at once" {
	serve_start --model m.bin --timeout 1 --max-inflight 1
	local port t0 t1 st
	port=$(serve_port)
	exec {slow}<>/dev/tcp/127.0.0.1/"$port"
	t0=$(date +%s.%N)
	printf 'POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n{' >&"$slow"
	# A byte every 0.3 s: never idle, never done.
	trap '' PIPE
	(for i in $(seq 10); do sleep 0.3; printf ' ' >&"$slow" 2>/dev/null || exit 0; done) &
	APID=$!
	read -r -t 4 line <&"$slow" || true
	t1=$(date +%s.%N)
	[[ "$line" == "HTTP/1.1 408"* ]] || fail "slow body: \"$line\""
	awk -v a="$t0" -v b="$t1" 'BEGIN { exit !(b - a >= 0.9 && b - a < 1.8) }' ||
		fail "408 after $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') s, not at the 1 s deadline"
	# The JSON error object, as for every error.
	read -r -t 1 -d '{' _ <&"$slow" || true
	read -r -t 1 body <&"$slow" || true
	[[ "{$body" == *'"code":408'* ]] || fail "body: {$body"
	exec {slow}>&-
	# The only slot is free again while the client is still sending.
	st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/recommend?user=u1")
	[ "$st" = 200 ] || fail "after: $st"
	wait_inflight_zero
	[ "$(metric_of reco_serve_deadline_expired_total)" -eq 1 ]
	[ "$(metric_of 'reco_serve_requests_total{status="408"}')" -eq 1 ]
}

# ---- 2. slowloris ----

@test "headers sent a byte at a time are dropped at --timeout; --max-client-connections caps one address" {
	serve_start --model m.bin --timeout 1
	local port
	port=$(serve_port)
	# A header that never ends, a byte every 0.5 s: answered 408 and
	# closed at the deadline, not kept while bytes arrive.
	attack slowloris "$port" 2.5 1 >loris.json
	jq -e '.ends["408"] >= 1' loris.json || fail "$(cat loris.json)"
	serve_stop
	serve_start --model m.bin --timeout 1 --max-client-connections 3
	port=$(serve_port)
	# Three connections from 127.0.0.2 are held; the fourth is closed at
	# once; 127.0.0.1 still gets answers.
	attack slowloris "$port" 0.8 4 127.0.0.2 >cap.json &
	APID=$!
	sleep 0.3
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/recommend?user=u1")" = 200 ]
	wait "$APID"
	APID=
	jq -e '.ends.closed >= 1' cap.json || fail "$(cat cap.json)"
}

# ---- 3. Redis as a dependency that fails ----

@test "Redis stopped or killed: answers at once without the profile, marked; strict gets 503; /readyz tells; the breaker closes again" {
	redis_start
	reco-profile --store "$REDIS_URL" <"$F/events.ndjson" >/dev/null
	serve_start --model m.bin --store "$REDIS_URL" --threads 2
	# u1 bought i2: excluded while the profile is read.
	[[ "$(curl -s "$URL/recommend?user=u1&n=7")" != *'"item":"i2"'* ]]
	kill -STOP "$REDIS_PID"
	# Ten requests at once: each answered within a second, none waits
	# for another's timeouts.
	seq 10 | xargs -P 10 -I{} curl -s -o /dev/null --max-time 5 \
		-w '%{http_code} %{time_total}\n' "$URL/recommend?user=u{}&n=3" >t.txt
	[ "$(grep -c '^200 ' t.txt)" -eq 10 ] || fail "$(cat t.txt)"
	awk '$2 >= 1 { exit 1 }' t.txt || fail "slow answers: $(cat t.txt)"
	run curl -s "$URL/recommend?user=u1&n=7"
	[[ "$output" == *'"profile":"unavailable"'* ]] || fail "$output"
	[[ "$output" == *'"item":"i2"'* ]]
	run curl -s -w ' %{http_code}' "$URL/recommend?user=u1&strict=true"
	[[ "$output" == *'"code":503'*' 503' ]] || fail "strict: $output"
	run curl -s -w ' %{http_code}' "$URL/readyz"
	[[ "$output" == *'"failed":"store"'*' 503' ]] || fail "readyz: $output"
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ]
	[ "$(metric_of reco_serve_breaker_open)" = 1 ]
	kill -CONT "$REDIS_PID"
	for i in $(seq 50); do
		[ "$(metric_of reco_serve_breaker_open)" = 0 ] && break
		sleep 0.05
	done
	[ "$(metric_of reco_serve_breaker_open)" = 0 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")" = 200 ]
	[[ "$(curl -s "$URL/recommend?user=u1&n=7")" != *'"profile"'* ]]
	# Killed: refused connections, the same answers at once.
	kill -KILL "$REDIS_PID"
	wait "$REDIS_PID" 2>/dev/null || true
	REDIS_PID=
	seq 10 | xargs -P 10 -I{} curl -s -o /dev/null --max-time 5 \
		-w '%{http_code} %{time_total}\n' "$URL/recommend?user=u{}&n=3" >k.txt
	[ "$(grep -c '^200 ' k.txt)" -eq 10 ] || fail "$(cat k.txt)"
	awk '$2 >= 1 { exit 1 }' k.txt || fail "slow answers: $(cat k.txt)"
	[ "$(metric_of reco_serve_breaker_opens_total)" -eq 2 ]
	[ "$(metric_of reco_serve_degraded_total)" -ge 21 ]
	# One message when the circuit opens, not one per request.
	[ "$(grep -c 'circuit open' serve.err)" -eq 2 ]
	[ "$(wc -l <serve.err)" -lt 30 ] || fail "$(cat serve.err)"
}

@test "the Redis flags: timeouts and retries are options; bad values are usage errors" {
	for bad in "--redis-timeout soon" "--redis-retries -1" "--breaker-failures 0" \
		"--breaker-probe 0" "--redis-connect-timeout x" "--max-client-connections -2"; do
		# shellcheck disable=SC2086
		run --separate-stderr reco-serve --model m.bin $bad </dev/null
		[ "$status" -eq 2 ] || fail "$bad: $status"
	done
	echo '{"user":"u1"}' | reco-serve --model m.bin --redis-timeout 20ms \
		--redis-connect-timeout 30ms --redis-retries 0 --breaker-failures 5 \
		--breaker-probe 1s | grep -q '"items"'
}

# ---- 4. a corrupt or vanished store ----

@test "a store swapped for a corrupt copy or removed: the last good copy served, one message, counted, in /readyz" {
	serve_start --model m.bin --store p.state
	[[ "$(curl -s "$URL/recommend?user=u1&n=7")" != *'"item":"i2"'* ]]
	head -c 300 good.state >bad.tmp && mv bad.tmp p.state
	for i in 1 2 3 4 5; do
		run curl -s "$URL/recommend?user=u1&n=7"
		[[ "$output" == *'"items"'* && "$output" != *'"item":"i2"'* ]] || fail "corrupt: $output"
	done
	run curl -s -w ' %{http_code}' "$URL/readyz"
	[[ "$output" == *'"stale":true'*'corrupt'*' 200' ]] || fail "readyz: $output"
	rm p.state
	sleep 0.2
	[[ "$(curl -s "$URL/recommend?user=u1&n=7")" != *'"item":"i2"'* ]]
	run curl -s "$URL/readyz"
	[[ "$output" == *'"stale":true'*'No such file'* ]] || fail "readyz: $output"
	[ "$(grep -c 'p.state: corrupt' serve.err)" -eq 1 ]
	[ "$(grep -c 'p.state: No such file' serve.err)" -eq 1 ]
	[ "$(metric_of reco_serve_store_reload_failures_total)" -eq 2 ]
	cp good.state p.tmp && mv p.tmp p.state
	sleep 0.2
	run curl -s "$URL/readyz"
	[[ "$output" == '{"checks":{"model":{"ok":true},"store":{"ok":true}},"status":"ready"}' ]] || fail "$output"
}

@test "a missing --store is waited for, like --model: answers without profiles, marked, until it appears" {
	rm p.state
	echo '{"user":"u1","n":7}' | reco-serve --model m.bin --store p.state 2>err.txt >out.ndjson
	grep -q '"profile":"unavailable"' out.ndjson
	grep -q 'p.state: no such file yet; waiting for it' err.txt
	serve_start --model m.bin --store p.state
	run curl -s -w ' %{http_code}' "$URL/readyz"
	[[ "$output" == *'"store":{"ok":false'*'"failed":"store"'*' 503' ]] || fail "$output"
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/recommend?user=u1&strict=1")" = 503 ]
	cp good.state p.state
	for i in $(seq 40); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")" = 200 ] && break
		sleep 0.05
	done
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")" = 200 ]
	[[ "$(curl -s "$URL/recommend?user=u1&n=7")" != *'"item":"i2"'* ]]
}

@test "/healthz is liveness, /readyz readiness: no model is alive but not ready, and says why" {
	serve_start --model none-yet.bin
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ]
	run curl -s -w ' %{http_code}' "$URL/readyz"
	[[ "$output" == *'"model":{"ok":false'*'"failed":"model"'*' 503' ]] || fail "$output"
	echo "${output% *}" | jq -e '.status == "not ready"'
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/readyz")" = 405 ]
}

# ---- 5. the protocol edges ----

@test "control bytes and NUL in ids and paths are 400; a repeated parameter is 400 for every one" {
	serve_start --model m.bin
	local u
	for u in 'recommend?user=u1%00x' 'recommend?user=u%01' 'healthz%00' \
		'recommend?user=u1&category=a%00' 'recommend?user=u1&n=2&n=3' \
		'recommend?user=u1&user=u2' 'recommend?user=u1&ts=1&ts=2' \
		'recommend?user=u1&in_stock=1&in_stock=0' 'recommend?user=u1&id=a&id=b' \
		'recommend?user=u1&strict=1&strict=1' 'recommend?user=u1&price_min=1&price_min=2'; do
		run curl -s -w ' %{http_code}' "$URL/$u"
		[[ "$output" == '{"v":1,'*'"error":{"code":400,'*' 400' ]] || fail "$u: $output"
	done
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"user":"u\u0001"}' "$URL/recommend")" = 400 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"user":"u\u0000"}' "$URL/recommend")" = 400 ]
	# Lists may still be repeated.
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/recommend?user=u1&context=i1&context=i2")" = 200 ]
}

@test "every documented limit answers its status: 900 context items are served, 1001 are a 400, a long URL 414, long headers 431" {
	serve_start --model m.bin
	local q port
	port=$(serve_port)
	q=$(seq 900 | sed 's/^/context=i/' | paste -sd '&')
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/recommend?user=u1&$q")" = 200 ]
	q=$(seq 1001 | sed 's/^/context=i/' | paste -sd '&')
	run curl -s -w ' %{http_code}' "$URL/recommend?user=u1&$q"
	[[ "$output" == *'more than 1000 entries'*' 400' ]] || fail "${output:0:300}"
	# More parameters than the connection's memory is sized for: 414.
	q=$(seq 2000 | sed 's/^/a=/' | paste -sd '&')
	run curl -s -w ' %{http_code}' "$URL/recommend?user=u1&$q"
	[[ "$output" == *'"code":414'*' 414' ]] || fail "${output:0:300}"
	attack raw "$port" "$(hex "GET /recommend?user=$(head -c 20000 /dev/zero | tr '\0' x) HTTP/1.1\r\nHost: x\r\n\r\n")" 3 >out.txt
	grep -q "^b'HTTP/1.1 414 .*application/json.*\"code\":414" out.txt || fail "$(cat out.txt)"
	attack raw "$port" "$(hex "GET /recommend?user=u1 HTTP/1.1\r\nHost: x\r\nX-A: $(head -c 20000 /dev/zero | tr '\0' y)\r\n\r\n")" 3 >out.txt
	grep -q "^b'HTTP/1.1 431 .*application/json.*\"code\":431" out.txt || fail "$(cat out.txt)"
	[ "$(metric_of 'reco_serve_requests_total{status="414"}')" -eq 2 ]
}

@test "the HTTP server's own errors are the JSON error object; bytes that are not HTTP are answered at once" {
	serve_start --model m.bin --timeout 5
	local port req
	port=$(serve_port)
	for req in 'GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n:505' \
		'GET /healthz\r\n\r\n:400' 'GET /healthz HTTP/1.1\r\nno colon\r\n\r\n:400' \
		'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n:400'; do
		attack raw "$port" "$(hex "${req%:*}")" 3 >out.txt
		grep -q "^b'HTTP/1.1 ${req##*:} .*Content-Type: application/json.*{\"v\":1,\"error\":{\"code\":${req##*:},\"message\":" out.txt ||
			fail "${req%:*}: $(cat out.txt)"
		! grep -qi html out.txt
	done
	# A TLS handshake, binary: a 400 at once, not silence until --timeout.
	attack raw "$port" 16030102000100010003 3 >out.txt
	grep -q "^b'HTTP/1.1 400 " out.txt || fail "$(cat out.txt)"
	awk 'NR == 2 { exit !($1 < 1) }' out.txt || fail "late: $(cat out.txt)"
}

@test "aborted connections are logged at most 10 times in 10 s" {
	serve_start --model m.bin
	python3 - "$(serve_port)" <<'EOF'
import socket, sys, time
ss = []
for i in range(100):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    ss.append(s)
time.sleep(0.5)
for s in ss:
    s.close()
EOF
	sleep 0.3
	[ "$(grep -c 'closed by remote' serve.err)" -le 10 ] || fail "$(wc -l <serve.err) lines"
	[ "$(metric_of reco_serve_log_suppressed_total)" -ge 80 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/recommend?user=u1")" = 200 ]
}

# ---- the attack suite: a well-behaved client during each attack ----

# during_attack NAME CMD...: run the attack CMD in the background while
# the well-behaved client runs; then check its bounds, in-flight back to
# 0 and memory back near its level before. The client's summary is left
# in NAME.json and added to attack.log.
during_attack() {
	local name=$1 before after
	shift
	attack steady "$(serve_port)" 1 30 >/dev/null
	before=$(rss_kb)
	"$@" >"$name.attack.json" &
	APID=$!
	sleep 0.5
	attack steady "$(serve_port)" 6 30 >"$name.json"
	wait "$APID" || true
	APID=
	# SERVE_ATTACK_LOG=FILE keeps the numbers of every attack.
	echo "$name: $(cat "$name.json") attack: $(cat "$name.attack.json")" >>"${SERVE_ATTACK_LOG:-/dev/null}"
	steady_check "$name.json" 0.99 "$P99_BOUND"
	wait_inflight_zero
	sleep 0.3
	after=$(rss_kb)
	# AddressSanitizer keeps freed memory in quarantine (256 MiB): under
	# it, only a bound on that.
	local slack=4096
	grep -q __asan_init "$(command -v reco-serve)" && slack=$((256 * 1024 + 4096))
	[ "$after" -le $((before * 5 / 4 + slack)) ] ||
		fail "memory: $before KiB before, $after KiB after"
}

@test "attack: 300 slow bodies from one address" {
	serve_start --model m.bin --timeout 2 --max-client-connections 64
	during_attack slowbody attack slowbody "$(serve_port)" 7 300 127.0.0.2
	jq -e '.ends["408"] >= 60' slowbody.attack.json || fail "$(cat slowbody.attack.json)"
}

@test "attack: slowloris beyond --max-connections" {
	serve_start --model m.bin --timeout 2 --max-connections 256 --max-client-connections 64
	during_attack slowloris attack slowloris "$(serve_port)" 7 400 127.0.0.2
	jq -e '.ends["408"] >= 60' slowloris.attack.json || fail "$(cat slowloris.attack.json)"
}

# redis_fault SIG: stop (SIGSTOP, then SIGCONT) or kill (then start a new
# server on the same port) Redis for 3 s.
redis_fault() {
	sleep 1
	if [ "$1" = STOP ]; then
		kill -STOP "$REDIS_PID"
		sleep 3
		kill -CONT "$REDIS_PID"
	else
		kill -KILL "$REDIS_PID"
		sleep 3
		redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
			>/dev/null 2>&1 </dev/null 3>&- &
		echo "$!" >"$BATS_TEST_TMPDIR/new-redis.pid"
	fi
	echo '{}'
}

@test "attack: Redis stopped (SIGSTOP) mid-load" {
	redis_start
	reco-profile --store "$REDIS_URL" <"$F/events.ndjson" >/dev/null
	serve_start --model m.bin --store "$REDIS_URL" --timeout 2
	during_attack redis-stop redis_fault STOP
	[ "$(metric_of reco_serve_breaker_opens_total)" -ge 1 ]
	[ "$(metric_of reco_serve_breaker_open)" = 0 ]
}

@test "attack: Redis killed mid-load" {
	redis_start
	reco-profile --store "$REDIS_URL" <"$F/events.ndjson" >/dev/null
	serve_start --model m.bin --store "$REDIS_URL" --timeout 2
	during_attack redis-kill redis_fault KILL
	REDIS_PID=$(cat "$BATS_TEST_TMPDIR/new-redis.pid")
	rm "$BATS_TEST_TMPDIR/new-redis.pid"
	[ "$(metric_of reco_serve_breaker_opens_total)" -ge 1 ]
	for i in $(seq 40); do
		[ "$(metric_of reco_serve_breaker_open)" = 0 ] && break
		sleep 0.05
	done
	[ "$(metric_of reco_serve_breaker_open)" = 0 ]
}

# store_swap: a corrupt copy, then none, then a good one again, while
# checking that u1's purchase stays excluded (the profile is used).
store_swap() {
	local bad=0
	sleep 1
	head -c 300 good.state >bad.tmp && mv bad.tmp p.state
	for i in $(seq 10); do
		curl -s "$URL/recommend?user=u1&n=7" | grep -q '"item":"i2"' && bad=$((bad + 1))
		sleep 0.1
	done
	rm p.state
	sleep 1
	cp good.state p.tmp && mv p.tmp p.state
	echo "{\"purchase_shown\":$bad}"
}

@test "attack: the store swapped for a corrupt copy, then removed" {
	serve_start --model m.bin --store p.state --timeout 2
	during_attack store store_swap
	jq -e '.purchase_shown == 0' store.attack.json || fail "$(cat store.attack.json)"
	[ "$(metric_of reco_serve_store_reload_failures_total)" -eq 2 ]
}

@test "attack: the protocol edges in a loop" {
	serve_start --model m.bin --timeout 2
	during_attack edges attack edges "$(serve_port)" 7
	# Every edge answered: no close without an answer (a 408 is one: on a
	# loaded machine an edge may take longer than --timeout to send).
	jq -e '(.ends | keys) - ["200", "400", "408", "414", "431", "505"] == []' edges.attack.json ||
		fail "$(cat edges.attack.json)"
}
