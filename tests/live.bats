#!/usr/bin/env bats
# live.bats: the live pipeline end to end, from a Kafka topic through Redis to a Kafka topic, on a loopback broker.

load helpers
load helpers-redis
load helpers-kafka

# Events of a few hundred users, generated once per test.
EVENTS=3000

setup() {
	common_setup
	PIPE_PGID=
}

teardown() {
	local pg
	# Every pipeline still running, by its process group.
	for pg in ${PIPE_PGID:-}; do
		kill -KILL -- "-$pg" 2>/dev/null || true
		wait "$pg" 2>/dev/null || true
	done
	redis_stop
	kafka_stop
}

# reco-clean keeps the consumed order and passes late events: partitions
# arrive interleaved in any order, and every event must reach the profiles.
CLEAN_OPTS="--max-lateness 0 --late pass --max-future 0"

# The live pipeline: consume clicks (kcat options follow STORE and TAG),
# keep a copy of the envelopes in TAG.consumed, profiles into STORE,
# updates keyed by user to the profiles topic; --stats of each stage in
# TAG.STAGE.
live_pipeline() {
	local store=$1 tag=$2
	shift 2
	kcat -b "$KAFKA_BROKERS" -C -J -q -u "$@" | tee -a "$tag.consumed" |
		reco-ingest --from kcat-json --stats 2>"$tag.ingest" |
		reco-clean $CLEAN_OPTS --stats 2>"$tag.clean" |
		reco-enrich --stats 2>"$tag.enrich" |
		reco-profile --store "$store" --emit changed --key user --batch 100 \
		    --stats 2>"$tag.profile" |
		kcat -b "$KAFKA_BROKERS" -P -t profiles -K '\t' -X partitioner=murmur2_random
}

# The same chain offline: kcat -J envelopes from FILE into the state
# file STORE, then its dump on standard output.
offline_replay() {
	reco-ingest --from kcat-json "$1" | reco-clean $CLEAN_OPTS | reco-enrich |
		reco-profile --store "$2" --emit none
	reco-profile --store "$2" --dump
}

# Generate the events and produce them, keyed by user, to clicks.
produce_events() {
	reco-gen --events "$EVENTS" --users 300 --items 800 --seed "${1:-1}" >events.ndjson
	reco-ingest --key user events.ndjson >events.keyed
	kafka_produce clicks <events.keyed
}

# Check that each stage of run TAG accounts for every record it read and
# that the first stage read N records; print the profile stage's counts.
check_accounting() {
	local tag=$1 n=$2 prev=$2 st in out dropped rejected
	for st in ingest clean enrich profile; do
		read -r in out dropped rejected < <(stats_counts "$tag.$st")
		[ -n "$in" ] || { fail "$tag.$st: no --stats line"; cat "$tag.$st" >&2; return 1; }
		[ "$in" -eq "$prev" ] ||
			{ fail "$tag.$st: read $in records, the stage before gave $prev"; return 1; }
		[ "$in" -eq $((out + dropped + rejected)) ] ||
			{ fail "$tag.$st: in $in != out $out + dropped $dropped + rejected $rejected"; return 1; }
		prev=$out
	done
	[ "$(stats_counts "$tag.ingest" | cut -d' ' -f1)" -eq "$n" ]
}

# Start live_pipeline in the background in its own process group, with
# its stages' PIDs findable by pgrep -g; sets PIPE_PGID.
start_pipeline_group() {
	export -f live_pipeline
	export CLEAN_OPTS
	setsid bash -c 'live_pipeline "$@"' live_pipeline "$@" </dev/null 3>&- &
	PIPE_PGID=$!
}

# Wait until Redis holds a source position of clicks (reco-profile has
# committed a batch).
wait_for_positions() {
	local i
	for i in $(seq 200); do
		[ -n "$(rcli --scan --pattern 'reco:w:kafka:clicks/*' | head -n 1)" ] && return 0
		sleep 0.05
	done
	fail "no positions in Redis after 10 s"
}

@test "kafka-broker: kcat produces to it and consumes from it, across three brokers" {
	kafka_start -b 3 -t clicks:4
	[[ "$KAFKA_BROKERS" =~ ^127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+){2}$ ]]
	printf 'u%d\tpayload %d\n' 1 1 2 2 3 3 4 4 5 5 6 6 7 7 8 8 | kafka_produce clicks
	kafka_consume clicks >got.json
	[ "$(nlines got.json)" -eq 8 ]
	# Every key lands in one partition; the payloads all arrive.
	[ "$(jq -r '.payload' got.json | sort | tr '\n' ,)" = \
	    "payload 1,payload 2,payload 3,payload 4,payload 5,payload 6,payload 7,payload 8," ]
	[ "$(jq -r '.partition' got.json | sort -u | wc -l)" -gt 1 ]
	# SIGTERM stops it with status 0.
	kill "$KAFKA_PID"
	wait "$KAFKA_PID"
	KAFKA_PID=
}

@test "live: clicks (4 partitions) to Redis and a profiles topic: every event accounted for, same profiles as an offline replay" {
	redis_start
	kafka_start -t clicks:4 -t profiles:4
	produce_events
	live_pipeline "$REDIS_URL" run -t clicks -e
	[ "$(nlines run.consumed)" -eq "$EVENTS" ]
	check_accounting run "$EVENTS"
	# Nothing is lost on the way: every event reaches the profiles.
	[ "$(stats_counts run.profile)" = "$EVENTS $EVENTS 0 0" ]
	# The four partitions all carried events, keyed by user.
	[ "$(jq -r '.partition' run.consumed | sort -u | tr '\n' ,)" = "0,1,2,3," ]
	[ "$(jq -r 'select(.key != (.payload | fromjson | .user)) | .offset' run.consumed)" = "" ]

	reco-profile --store "$REDIS_URL" --dump >redis.dump
	[ "$(nlines redis.dump)" -gt 100 ]
	offline_replay run.consumed offline.state >offline.dump
	same_bytes redis.dump offline.dump

	# The profiles topic: one message per update, keyed by user, each user
	# in the partition its clicks use (both partitioned by murmur2), and
	# the changelog rebuilds the same profiles.
	kafka_consume profiles >profiles.json
	updates=$(sed -n 's/^reco-profile:   updates_total //p' run.profile)
	[ "$(nlines profiles.json)" -eq "$updates" ]
	[ "$(jq -r 'select(.key != (.payload | fromjson | .user)) | .offset' profiles.json)" = "" ]
	jq -r '"\(.key) \(.partition)"' run.consumed | sort -u >clicks.parts
	jq -r '"\(.key) \(.partition)"' profiles.json | sort -u >profiles.parts
	[ "$(cut -d' ' -f1 profiles.parts | uniq -d)" = "" ]
	[ "$(comm -13 clicks.parts profiles.parts)" = "" ]
	jq -r '.payload' profiles.json | reco-profile --restore --store restored.state
	reco-profile --store restored.state --dump >restored.dump
	same_bytes redis.dump restored.dump
}

# Kill the live pipeline while events flow, produce the rest, restart it
# from the beginning of the topic: reco-profile skips what it applied.
# WHAT is "profile" (kill reco-profile alone) or "group" (every stage).
kill_and_restart() {
	local what=$1 i pid
	redis_start
	kafka_start -t clicks:4 -t profiles:4
	reco-gen --events "$EVENTS" --users 300 --items 800 --seed 7 >events.ndjson
	reco-ingest --key user events.ndjson >events.keyed
	split -n l/20 -d events.keyed chunk.
	cat chunk.0[0-9] | kafka_produce clicks

	start_pipeline_group "$REDIS_URL" first -t clicks
	wait_for_positions
	for i in 10 11 12 13 14; do
		kafka_produce clicks <"chunk.$i"
	done
	if [ "$what" = profile ]; then
		pid=$(pgrep -g "$PIPE_PGID" -x reco-profile)
		[ -n "$pid" ]
		kill -KILL "$pid"
	fi
	kill -KILL -- "-$PIPE_PGID"
	wait "$PIPE_PGID" || true
	PIPE_PGID=
	for i in 15 16 17 18 19; do
		kafka_produce clicks <"chunk.$i"
	done

	live_pipeline "$REDIS_URL" second -t clicks -e
	check_accounting second "$EVENTS"
	read -r in out dropped rejected < <(stats_counts second.profile)
	# The first run applied some events, the second the rest, once.
	[ "$dropped" -gt 0 ]
	[ "$out" -gt 0 ]
	[ "$rejected" -eq 0 ]
	grep -q "records_dropped_total{reason=\"replayed\"} $dropped\$" second.profile

	reco-profile --store "$REDIS_URL" --dump >redis.dump
	offline_replay second.consumed offline.state >offline.dump
	same_bytes redis.dump offline.dump
	# The same as a run on the events in their generated order, but for
	# the source of each profile's last event.
	reco-ingest events.ndjson | reco-clean $CLEAN_OPTS | reco-enrich |
		reco-profile --store plain.state --emit none
	reco-profile --store plain.state --dump | jq -c 'del(.source)' >plain.dump
	jq -c 'del(.source)' redis.dump >redis.nosource
	same_bytes redis.nosource plain.dump
}

@test "live: reco-profile killed mid-stream and restarted: the same profiles as an uninterrupted run" {
	kill_and_restart profile
}

@test "live: the whole pipeline killed mid-stream and restarted: the same profiles as an uninterrupted run" {
	kill_and_restart group
}

# Run examples/live-kafka.sh to the end of clicks with the environment
# given (NAME=VALUE ...), profiles into Redis database DB; the --stats of
# each stage go to TAG.STAGE.
run_example() {
	local db=$1 tag=$2 st
	shift 2
	env KAFKA_BROKERS="$KAFKA_BROKERS" REDIS_URL="redis://127.0.0.1:$REDIS_PORT/$db" \
	    KAFKA_EXIT_AT_END=1 "$@" sh "$RECO_ROOT/examples/live-kafka.sh" 2>"$tag.err" </dev/null 3>&- ||
		{ cat "$tag.err" >&2; return 1; }
	for st in ingest clean enrich profile; do
		grep "^reco-$st: " "$tag.err" >"$tag.$st" || true
	done
}

@test "examples/live-kafka.sh: every event to Redis and the profiles topic, the same profiles as an offline replay" {
	redis_start
	kafka_start -t clicks:4 -t profiles:4
	produce_events 3
	run_example 0 ex
	check_accounting ex "$EVENTS"
	[ "$(stats_counts ex.profile)" = "$EVENTS $EVENTS 0 0" ]
	reco-profile --store "$REDIS_URL" --dump >redis.dump
	kafka_consume clicks >clicks.json
	offline_replay clicks.json offline.state >offline.dump
	same_bytes redis.dump offline.dump
	updates=$(sed -n 's/^reco-profile:   updates_total //p' ex.profile)
	[ "$updates" -gt 0 ]
	[ "$(kafka_consume profiles | wc -l)" -eq "$updates" ]
}
