# helpers-kafka.bash: a private loopback Kafka cluster (tests/tools/kafka-broker) for one test, stopped by its PID.

# Start kafka-broker in the background with the arguments given (such as
# -b 1 -t clicks:4) and wait for the bootstrap address it prints. Sets
# KAFKA_PID and KAFKA_BROKERS. Skips the test when kcat is missing.
kafka_start() {
	local addr="$BATS_TEST_TMPDIR/kafka-broker.addr" i
	command -v kcat >/dev/null 2>&1 || skip "kcat is not installed"
	command -v kafka-broker >/dev/null 2>&1 ||
		{ fail "kafka-broker is not built (make $RECO_TESTBIN/kafka-broker)"; return 1; }
	: >"$addr"
	# The broker must not hold the test's output open (fd 3).
	kafka-broker "$@" >"$addr" 2>"$BATS_TEST_TMPDIR/kafka-broker.log" </dev/null 3>&- &
	KAFKA_PID=$!
	for i in $(seq 200); do
		if [ -s "$addr" ] && [ "$(tail -c 1 "$addr" | od -An -c | tr -d ' ')" = '\n' ]; then
			KAFKA_BROKERS=$(head -n 1 "$addr")
			export KAFKA_PID KAFKA_BROKERS
			return 0
		fi
		kill -0 "$KAFKA_PID" 2>/dev/null || break
		sleep 0.025
	done
	cat "$BATS_TEST_TMPDIR/kafka-broker.log" >&2
	kafka_stop
	fail "kafka-broker did not print its address"
}

# Stop the broker kafka_start started (if any), by its PID.
kafka_stop() {
	if [ -n "${KAFKA_PID:-}" ]; then
		kill "$KAFKA_PID" 2>/dev/null || true
		wait "$KAFKA_PID" 2>/dev/null || true
		KAFKA_PID=
	fi
}

# Produce KEY<TAB>VALUE lines from standard input to TOPIC, partitioned
# by key the way the Java client does it.
kafka_produce() {
	kcat -b "$KAFKA_BROKERS" -P -t "$1" -K '\t' -X partitioner=murmur2_random
}

# Print every message of TOPIC as kcat -J envelopes and exit at its end.
kafka_consume() {
	kcat -b "$KAFKA_BROKERS" -C -t "$1" -J -e -q
}

# Print the "records in" count of a --stats file, then out, dropped and
# rejected, on one line.
stats_counts() {
	sed -n 's/^[^:]*: records in \([0-9]*\), out \([0-9]*\), dropped \([0-9]*\), rejected \([0-9]*\).*/\1 \2 \3 \4/p' "$1"
}
