# helpers-redis.bash: a private redis-server on 127.0.0.1 and a free port for one test, stopped by its PID.

# Start redis-server without persistence on a free port of 127.0.0.1 and
# wait until it answers PING. Sets REDIS_PID, REDIS_PORT and REDIS_URL.
# Arguments go to redis-server (e.g. --unixsocket PATH, --requirepass P,
# with REDISCLI_AUTH=P in the environment for redis-cli).
# Skips the test when redis-server or redis-cli is missing.
redis_start() {
	local port tries=0 i
	command -v redis-server >/dev/null 2>&1 || skip "redis-server is not installed"
	command -v redis-cli >/dev/null 2>&1 || skip "redis-cli is not installed"
	while [ "$tries" -lt 20 ]; do
		tries=$((tries + 1))
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		# The server must not hold the test's output open (fd 3).
		redis-server --port "$port" --bind 127.0.0.1 --save '' \
		    --appendonly no --dir "$BATS_TEST_TMPDIR" "$@" \
		    >"$BATS_TEST_TMPDIR/redis-$port.log" 2>&1 </dev/null 3>&- &
		REDIS_PID=$!
		for i in $(seq 100); do
			if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
				REDIS_PORT=$port
				REDIS_URL=redis://127.0.0.1:$port/0
				export REDIS_PID REDIS_PORT REDIS_URL
				return 0
			fi
			kill -0 "$REDIS_PID" 2>/dev/null || break
			sleep 0.05
		done
		# The port was taken (or the server is slow): try another.
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
		REDIS_PID=
	done
	fail "redis-server: no free port after $tries tries"
}

# Stop the server redis_start started (if any), by its PID.
redis_stop() {
	if [ -n "${REDIS_PID:-}" ]; then
		kill -CONT "$REDIS_PID" 2>/dev/null || true
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
		REDIS_PID=
	fi
}

# Run redis-cli against the test's server.
rcli() {
	redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
}
