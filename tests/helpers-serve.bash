# helpers-serve.bash: start reco-serve on a free loopback port for a test, ask its metrics, and stop it.

SERVE_PID=

# serve_fixture: the serve fixture's directory in F, its model in m.bin
# and its profiles in p.state.
serve_fixture() {
	F=$(fixture serve)
	reco-train -o m.bin <"$F/events.ndjson"
	reco-profile --store p.state <"$F/events.ndjson" >/dev/null
}

# serve_start [OPTION...]: start reco-serve --listen 127.0.0.1:0 with the
# options; set SERVE_PID and URL. Its standard error goes to serve.err.
serve_start() {
	local i port=
	reco-serve --listen 127.0.0.1:0 "$@" 2>serve.err </dev/null 3>&- &
	SERVE_PID=$!
	for i in $(seq 200); do
		port=$(sed -n 's/^reco-serve: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' serve.err)
		[ -n "$port" ] && break
		kill -0 "$SERVE_PID" 2>/dev/null || { cat serve.err >&2; fail "reco-serve did not start"; return 1; }
		sleep 0.02
	done
	[ -n "$port" ] || { fail "reco-serve: no port"; return 1; }
	URL=http://127.0.0.1:$port
}

# Stop the reco-serve that serve_start started, if any.
serve_stop() {
	if [ -n "${SERVE_PID:-}" ]; then
		kill "$SERVE_PID" 2>/dev/null || true
		wait "$SERVE_PID" 2>/dev/null || true
		SERVE_PID=
	fi
}

# metric_of NAME: the value of the sample NAME (with its labels, exactly
# as printed) in the server's /metrics.
metric_of() {
	curl -s "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

# attack ARGS...: the hostile and well-behaved clients of
# tests/tools/serve-attack.py, against the server of serve_start.
attack() {
	python3 "$BATS_TEST_DIRNAME/tools/serve-attack.py" "$@"
}

# serve_port: the port of the server of serve_start.
serve_port() {
	echo "${URL##*:}"
}

# rss_kb: the resident memory of the server of serve_start, in KiB.
rss_kb() {
	awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVE_PID/status"
}

# wait_inflight_zero: wait (5 s at most) until the server answers no
# request; fail if it does not come back to 0.
wait_inflight_zero() {
	local i v
	for i in $(seq 100); do
		v=$(metric_of reco_serve_inflight)
		[ "$v" = 0 ] && return 0
		sleep 0.05
	done
	fail "in-flight requests stay at $v"
}

# steady_check FILE MIN_RATE MAX_P99_MS: the well-behaved client's
# summary in FILE met the bounds.
steady_check() {
	jq -e --argjson r "$2" --argjson p "$3" \
		'.requests >= 50 and .rate >= $r and .p99_ms < $p' "$1" >/dev/null ||
		fail "well-behaved client: $(cat "$1") (wanted success >= $2, p99 < $3 ms)"
}
