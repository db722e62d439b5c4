#!/usr/bin/env bats
# live.bats: the live pipeline end to end, from a Kafka topic through Redis to a Kafka topic, on a loopback broker.

load helpers
load helpers-redis
load helpers-kafka
load helpers-serve

# Events of a few hundred users, generated once per test.
EVENTS=3000

setup() {
	common_setup
	PIPE_PGID= SERVE_PID=
}

teardown() {
	local pg
	# Every pipeline still running, by its process group.
	for pg in ${PIPE_PGID:-}; do
		kill -KILL -- "-$pg" 2>/dev/null || true
		wait "$pg" 2>/dev/null || true
	done
	serve_stop
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

@test "--shard-by murmur2 and crc32: shard I of N holds exactly the users kcat puts in partition I (murmur2_random, consistent)" {
	kafka_start -t j:4 -t c:4 -t j5:5
	reco-gen --events 3000 --users 400 --seed 5 >ev.ndjson
	jq -r '"\(.user)\t\(tojson)"' ev.ndjson >keyed
	kcat -b "$KAFKA_BROKERS" -P -t j -K '\t' -X partitioner=murmur2_random <keyed
	kcat -b "$KAFKA_BROKERS" -P -t j5 -K '\t' -X partitioner=murmur2_random <keyed
	kcat -b "$KAFKA_BROKERS" -P -t c -K '\t' -X partitioner=consistent <keyed
	local topic by n i
	for topic in j:murmur2:4 j5:kafka:5 c:crc32:4; do
		IFS=: read -r topic by n <<<"$topic"
		kafka_consume "$topic" >"$topic.json"
		[ "$(nlines "$topic.json")" -eq 3000 ]
		for ((i = 0; i < n; i++)); do
			jq -r --argjson p "$i" 'select(.partition == $p) | .payload | fromjson | .event_id' \
				"$topic.json" | sort >want
			reco-ingest --shard "$i/$n" --shard-by "$by" ev.ndjson | jq -r .event_id | sort >got
			[ -s want ] || fail "$topic: partition $i is empty"
			same_bytes want got
		done
	done
	# The project's own hash shards differently: the flag matters.
	reco-ingest --shard 0/4 ev.ndjson | jq -r .event_id | sort >own
	jq -r 'select(.partition == 0) | .payload | fromjson | .event_id' j.json | sort >want
	! cmp -s own want
	run reco-ingest --shard-by fnv ev.ndjson
	[ "$status" -eq 2 ]
	[[ "$output" == *"none of hash, murmur2 (kafka), crc32"* ]]
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

# ---- a consumer group ----

# The consumer settings of a group member: no offsets committed (every
# run starts at the beginning, reco-profile skips what it applied), fast
# heartbeats and a short session, so that a member that joins late is let
# in within the session timeout less a second (the loopback broker waits
# that long for the other members to rejoin) and a live member is never
# taken for dead.
GROUP_OPTS="-X auto.offset.reset=earliest -X enable.auto.commit=false -X session.timeout.ms=6000 -X heartbeat.interval.ms=200 -X fetch.wait.max.ms=10"

# One member of consumer group GROUP: the live pipeline from clicks into
# STORE, its updates to TAG.updates; kcat's messages (-v: the partitions
# assigned and revoked) in TAG.kcat, the rest as in live_pipeline.
group_pipeline() {
	local store=$1 tag=$2 group=$3
	# shellcheck disable=SC2086
	kcat -b "$KAFKA_BROKERS" -G "$group" -J -u -q -v $GROUP_OPTS clicks 2>"$tag.kcat" |
		tee -a "$tag.consumed" |
		reco-ingest --from kcat-json --stats 2>"$tag.ingest" |
		reco-clean $CLEAN_OPTS --stats 2>"$tag.clean" |
		reco-enrich --stats 2>"$tag.enrich" |
		reco-profile --store "$store" --writer "$tag" --emit changed --key user --batch 100 \
		    --stats 2>"$tag.profile" >"$tag.updates"
}

# Start group_pipeline in its own process group; adds it to PIPE_PGID.
start_group_member() {
	export -f group_pipeline
	export CLEAN_OPTS GROUP_OPTS
	setsid bash -c 'group_pipeline "$@"' group_pipeline "$@" </dev/null 3>&- &
	PIPE_PGID="$PIPE_PGID $!"
}

# Print the partitions of the last assignment kcat -G -v reported in
# FILE, "0 1 ", or nothing while it has none (none yet, or its last
# message is a revocation).
last_assignment() {
	grep '^% Group .* rebalanced ' "$1" 2>/dev/null | tail -n 1 | grep ': assigned: ' |
		grep -o '\[[0-9]*\]' | tr -d '[]' | tr '\n' ' '
}

@test "live: two pipelines in one consumer group share the partitions; together they give the profiles of one pipeline, each event applied once" {
	local i a= b= pa pb pg pid n m p got=0
	redis_start
	kafka_start -t clicks:4
	# Both members write into one Redis store, the one serving reads:
	# each keeps the positions of its own partitions there.
	start_group_member "$REDIS_URL" a group1
	start_group_member "$REDIS_URL" b group1
	# Produce only when the group is stable: both members' last messages
	# are assignments, disjoint and covering the four partitions. A member
	# that joins late makes the broker wait up to the session timeout.
	for i in $(seq 300); do
		a=$(last_assignment a.kcat) b=$(last_assignment b.kcat)
		if [ -n "$a" ] && [ -n "$b" ] &&
		    [ "$(printf '%s\n' $a $b | sort | tr '\n' ' ')" = "0 1 2 3 " ]; then
			break
		fi
		a= b=
		sleep 0.05
	done
	[ -n "$a" ] || { cat a.kcat b.kcat >&2; fail "the group did not settle in 15 s"; }
	produce_events 5

	# The end: every event consumed by one member or the other.
	for i in $(seq 300); do
		got=$(($(nlines a.consumed) + $(nlines b.consumed)))
		[ "$got" -ge "$EVENTS" ] && break
		sleep 0.05
	done
	[ "$got" -eq "$EVENTS" ] || fail "consumed $got of $EVENTS events"
	# Stop the consumers at once (SIGKILL: a member that leaves would
	# hand its partitions to the other); the rest of each pipeline reads
	# to the end, commits and exits.
	for pg in $PIPE_PGID; do
		pid=$(pgrep -g "$pg" -x kcat)
		[ -n "$pid" ]
		kill -KILL "$pid"
	done
	for pg in $PIPE_PGID; do
		wait "$pg"
	done
	PIPE_PGID=
	# No rebalance happened while the events flowed.
	[ "$(last_assignment a.kcat)" = "$a" ]
	[ "$(last_assignment b.kcat)" = "$b" ]

	# Each member read a share, from its own partitions only, and each
	# event was read once.
	pa=$(jq -r '.partition' a.consumed | sort -u | tr '\n' ' ')
	pb=$(jq -r '.partition' b.consumed | sort -u | tr '\n' ' ')
	[ "$(nlines a.consumed)" -gt 0 ]
	[ "$(nlines b.consumed)" -gt 0 ]
	[ "$pa" = "$a" ] || fail "a read partitions $pa, assigned $a"
	[ "$pb" = "$b" ] || fail "b read partitions $pb, assigned $b"
	cat a.consumed b.consumed | jq -r '"\(.partition) \(.offset)"' | sort >offsets
	[ "$(uniq -d offsets)" = "" ]
	[ "$(nlines offsets)" -eq "$EVENTS" ]

	# Each applied what it read, all of it, once: nothing dropped as a
	# replay of the other's work.
	for m in a b; do
		n=$(nlines "$m.consumed")
		check_accounting "$m" "$n"
		[ "$(stats_counts "$m.profile")" = "$n $n 0 0" ]
	done

	# The single-pipeline result: the whole topic replayed offline.
	kafka_consume clicks >all.json
	[ "$(nlines all.json)" -eq "$EVENTS" ]
	offline_replay all.json offline.state >offline.dump
	[ "$(nlines offline.dump)" -gt 100 ]
	# Each member's profiles, the last update of each user it changed:
	# no user in both, and together the single pipeline's profiles.
	for m in a b; do
		awk -F '\t' '{ last[$1] = $0 } END { for (u in last) print last[u] }' "$m.updates" |
			sort >"$m.last"
		cut -f1 "$m.last" >"$m.users"
		[ "$(nlines "$m.users")" -gt 0 ]
	done
	[ "$(comm -12 a.users b.users)" = "" ]
	sort a.last b.last | cut -f2- >union.dump
	same_bytes union.dump offline.dump
	# The shared store holds the same, and each partition's position is
	# its last offset, whichever member wrote it.
	reco-profile --store "$REDIS_URL" --dump >redis.dump
	same_bytes redis.dump offline.dump
	for p in 0 1 2 3; do
		[ "$(rcli hget reco:meta "pos:kafka:clicks/$p")" = \
		    "$(jq -r "select(.partition == $p) | .offset" all.json | sort -n | tail -n 1)" ]
	done
}

# ---- the model: reco-train on the topic, reco-serve hot-reloading it ----

# Print view events as canonical NDJSON, one per line of "ID TS USER ITEM
# SESSION" on standard input.
views() {
	awk '{ printf "{\"event_id\":\"%s\",\"ts\":%s,\"user\":\"%s\",\"type\":\"view\",\"item\":\"%s\",\"session\":\"%s\",\"v\":1}\n", $1, $2, $3, $4, $5 }'
}

# The trainer: clicks from the beginning into reco-train, a snapshot in
# snap.bin each time event time enters a new hour; the envelopes consumed
# in train.consumed, --stats in train.err.
train_pipeline() {
	kcat -b "$KAFKA_BROKERS" -C -J -q -u -t clicks -o beginning -X fetch.wait.max.ms=10 |
		tee -a train.consumed |
		reco-ingest --from kcat-json | reco-clean $CLEAN_OPTS | reco-enrich |
		reco-train -o snap.bin --snapshot-every 1h --stats 2>train.err
}

# A batch of views in hour H after the start of the generated events: 40
# new users (PREFIX1 ...) each viewing t0 then the items given, so that
# t0's co-occurrence neighbours are those items; then, with FOR_USER, that
# user's view of t0; then a view in hour H + 1, which starts a new period
# of reco-train's --snapshot-every 1h: the snapshot holds the batch.
targeted_batch() {
	local h=$1 prefix=$2 for_user=$3 k j item t
	shift 3
	t=$((1569888000000 + h * 3600000))
	for k in $(seq 40); do
		j=0
		for item in t0 "$@"; do
			echo "$prefix$k-$j $((t + 1000 + k * 8000 + j * 1000)) $prefix$k $item s$prefix$k"
			j=$((j + 1))
		done
	done
	[ -z "$for_user" ] || echo "$prefix-c $((t + 600000)) $for_user t0 s$for_user-$prefix"
	echo "tick$h $((t + 3600000)) tick i1 tick-$h"
}

# The recommendations of USER at URL, as "MODEL ITEM ...".
answer_of() {
	curl -s --max-time 10 "$URL/recommend?user=$1&n=10" | jq -r '[.model] + [.items[].item] | join(" ")'
}

# Wait until USER's answer comes from another snapshot than VERSION;
# print the answer.
wait_for_new_model() {
	local i ans=
	for i in $(seq 300); do
		ans=$(answer_of "$1")
		[ -n "$ans" ] && [ "${ans%% *}" != "$2" ] && break
		sleep 0.05
	done
	printf '%s\n' "$ans"
}

@test "live: reco-train on the topic writes snapshots that reco-serve hot-reloads: answers change with new events, no request fails" {
	local i a1 a2 a3 v1 r0 r3 n ok pid loop train
	command -v curl >/dev/null || skip "curl is not installed"
	# One partition: the events, and the view that closes each batch,
	# reach reco-train in the order they were produced.
	kafka_start -t clicks:1
	reco-gen --events 2000 --users 200 --items 300 --seed 11 >events.ndjson
	echo "tick0 $((1569888000000 + 3600000)) tick i1 tick-0" | views >>events.ndjson
	reco-ingest --key user events.ndjson | kafka_produce clicks

	# The trainer: a snapshot each time event time enters a new hour.
	export -f train_pipeline
	export CLEAN_OPTS
	setsid bash -c train_pipeline </dev/null 3>&- &
	train=$!
	PIPE_PGID=$train
	for i in $(seq 300); do
		[ -f snap.bin ] && break
		sleep 0.05
	done
	[ -f snap.bin ] || { cat train.err >&2; fail "no snapshot after 15 s"; }

	serve_start --model snap.bin --reload-every 50ms
	a1=$(answer_of u4)
	v1=${a1%% *}
	[ -n "$v1" ]
	[ "$v1" != null ]
	r0=$(metric_of reco_serve_reloads_total)
	# A steady stream of requests, for u4 and others, until told to stop.
	for i in $(seq 20); do
		printf 'url = "%s/recommend?user=u%d&n=10"\noutput = "/dev/null"\n' "$URL" "$((i * 7 % 200))"
	done >urls.txt
	setsid bash -c 'while [ ! -e stop ]; do
		curl -s --max-time 10 -K urls.txt -w "%{http_code}\n" >>codes.txt
	done' </dev/null 3>&- &
	loop=$!
	PIPE_PGID="$train $loop"

	# New events: 40 users view t0 then t1, t2, t3, and u4 views t0.
	targeted_batch 1 w u4 t1 t2 t3 | views | reco-ingest --key user | kafka_produce clicks
	a2=$(wait_for_new_model u4 "$v1")
	[ "${a2%% *}" != "$v1" ] || fail "no new snapshot served: $a2"
	# Before, nothing of t0's neighbours; after, all three.
	[[ " $a1 " != *" t"[0-9]" "* ]] || fail "before: $a1"
	for i in t1 t2 t3; do
		[[ " $a2 " == *" $i "* ]] || fail "after the batch, no $i for u4: $a2"
	done
	# Another batch: t0 with t4.
	targeted_batch 2 x "" t4 | views | reco-ingest --key user | kafka_produce clicks
	a3=$(wait_for_new_model u4 "${a2%% *}")
	[ "${a3%% *}" != "${a2%% *}" ] || fail "no second new snapshot served: $a3"
	[[ " $a3 " == *" t4 "* ]] || fail "after the second batch, no t4 for u4: $a3"

	touch stop
	wait "$loop"
	PIPE_PGID=$train
	r3=$(metric_of reco_serve_reloads_total)
	[ "$r3" -ge $((r0 + 2)) ] || fail "reloads: $r0 then $r3"
	# Every request was answered with 200, during both reloads.
	n=$(nlines codes.txt)
	ok=$(grep -c '^200$' codes.txt || true)
	[ "$n" -ge 40 ] || fail "only $n requests"
	[ "$ok" -eq "$n" ] || { sort codes.txt | uniq -c >&2; fail "$ok of $n requests answered 200"; }
	[ "$(metric_of 'reco_serve_requests_total{status="200"}')" -ge "$n" ]

	# The snapshot served is the one an offline run on the same events
	# writes: stop the trainer (its last snapshot, at the end of its
	# input, is the same model) and compare the answers.
	pid=$(pgrep -g "$train" -x kcat)
	[ -n "$pid" ]
	kill "$pid"
	wait "$train"
	PIPE_PGID=
	reco-ingest --from kcat-json train.consumed | reco-clean $CLEAN_OPTS | reco-enrich |
		reco-train -o offline.bin
	cmp snap.bin offline.bin
	echo '{"user":"u4","n":10}' | reco-serve --model offline.bin |
		jq -r '[.model] + [.items[].item] | join(" ")' >offline.answer
	[ "$(cat offline.answer)" = "$a3" ]
	grep -q "records in $(nlines train.consumed), out " train.err ||
		{ cat train.err >&2; fail "reco-train did not read every event"; }
}
