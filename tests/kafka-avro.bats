#!/usr/bin/env bats
# Avro on Kafka: one record per message in the schema registry's wire format
# (-I/-O confluent) or single-object encoding (avro-single), framed by
# kcat's %R length or a --message-delimiter; a test registry on 127.0.0.1.

load helpers
load helpers-kafka

PY=/usr/bin/python3
# A delimiter for kcat -D: bytes that UTF-8 text never holds.
D='\xfe\xff\xfe\xff\xfe\xff\xfe\n'

setup() {
	cd "$BATS_TEST_TMPDIR"
	REG_PID=
}

teardown() {
	registry_stop
	kafka_stop
}

# Start the test registry (arguments: its options); sets REGISTRY.
registry_start() {
	local i
	$PY -c 'import avro' 2>/dev/null || skip "python3-avro is not installed"
	$PY "$BATS_TEST_DIRNAME/tools/registry.py" "$@" >reg.port 2>reg.log </dev/null 3>&- &
	REG_PID=$!
	for i in $(seq 200); do
		if [ -s reg.port ]; then
			REGISTRY=http://127.0.0.1:$(head -n 1 reg.port)
			return 0
		fi
		sleep 0.025
	done
	cat reg.log >&2
	fail "the test registry did not start"
}

registry_stop() {
	if [ -n "${REG_PID:-}" ]; then
		kill "$REG_PID" 2>/dev/null || true
		wait "$REG_PID" 2>/dev/null || true
		REG_PID=
	fi
}

# The fields every schema version has, as sorted compact JSON lines.
core() {
	jq -c '{event_id, ts, user, type, item, session}' "$@"
}

# Decode length-framed messages (stdin) with Avro's Python library.
py_decode() {
	$PY "$BATS_TEST_DIRNAME/tools/avro-msg.py" --decode "$@"
}

@test "Parsing Canonical Form and CRC-64-AVRO fingerprints: Avro's published vectors" {
	run avro-pcf "$RECO_ROOT/tests/fixtures/avro-canonical.tsv"
	[ "$status" -eq 0 ]
	[ "$output" = "34 vectors, 0 failed" ]
	# Our own schema: the logical type is not part of the canonical form.
	reco-ingest --schema=avro >event.avsc
	run avro-pcf -s event.avsc
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == '{"name":"reco.Event","type":"record","fields":[{"name":"event_id","type":"string"},{"name":"ts","type":"long"},'* ]]
}

@test "-O confluent registers reco.Event and writes 0, the id and the record; -I confluent reads the same events; Avro's Python library reads them too" {
	registry_start
	reco-gen --events 500 --seed 7 >ev.ndjson
	reco-clean ev.ndjson >want.ndjson
	reco-clean -O confluent --registry "$REGISTRY" ev.ndjson >ev.msg
	[ "$(curl -s "$REGISTRY/subjects")" = '["reco.Event"]' ]
	id=$(curl -s "$REGISTRY/subjects/reco.Event/versions/latest" | jq .id)
	# The first message: its length, then 00 and the id, big-endian.
	[ "$(head -c 9 ev.msg | od -An -tx1 | awk '{print $5,$6,$7,$8,$9}')" = "00 00 00 00 0$id" ]
	reco-clean -I confluent --registry "$REGISTRY" --stats ev.msg >back.ndjson 2>stats
	cmp want.ndjson back.ndjson
	[ "$(stats_counts stats)" = "500 500 0 0" ]
	py_decode --registry "$REGISTRY" <ev.msg >py.ndjson
	[ "$(core py.ndjson)" = "$(core want.ndjson)" ]
	# --subject names the subject (TopicNameStrategy: TOPIC-value).
	reco-clean -O confluent --registry "$REGISTRY/" --subject clicks-value ev.ndjson >/dev/null
	[ "$(curl -s "$REGISTRY/subjects")" = '["clicks-value", "reco.Event"]' ]
}

@test "-O avro-single needs no registry: C3 01, the fingerprint, the record; read back, and by Avro's Python library" {
	reco-gen --events 300 --seed 8 >ev.ndjson
	reco-clean ev.ndjson >want.ndjson
	reco-clean -O avro-single ev.ndjson >ev.msg
	reco-ingest --schema=avro >event.avsc
	avro-pcf -s event.avsc | head -n 1 >event.avsc.canonical
	fp=$(avro-pcf -s event.avsc | tail -n 1)
	head=$(head -c 14 ev.msg | tail -c 10 | od -An -tx1 | tr -d ' \n')
	# Little-endian fingerprint after C3 01.
	le=$(echo "$fp" | sed 's/../& /g' | awk '{for (i = NF; i > 0; i--) printf "%s", $i}')
	[ "$head" = "c301$le" ]
	reco-clean -I avro-single ev.msg | cmp want.ndjson -
	# -I confluent reads single-object messages too (the first byte says).
	registry_start
	reco-clean -I confluent --registry "$REGISTRY" ev.msg | cmp want.ndjson -
	py_decode --schema event.avsc <ev.msg >py.ndjson
	[ "$(core py.ndjson)" = "$(core want.ndjson)" ]
}

@test "--message-delimiter frames messages for kcat -D, with --key for kcat -K; a message holding the delimiter is rejected, not cut" {
	reco-gen --events 200 --seed 9 >ev.ndjson
	reco-clean ev.ndjson >want.ndjson
	reco-clean -O avro-single --message-delimiter "$D" --key user ev.ndjson >ev.msg
	# KEY<TAB>MESSAGE<DELIMITER>: the keys are the users, in order.
	$PY -c 'import sys; d = b"\xfe\xff\xfe\xff\xfe\xff\xfe\n"
for m in open(sys.argv[1], "rb").read().split(d)[:-1]:
    k, v = m.split(b"\t", 1); assert v[:2] == b"\xc3\x01"; print(k.decode())' ev.msg >keys
	[ "$(cat keys)" = "$(jq -r .user want.ndjson)" ]
	run reco-clean -O avro-single --key user ev.ndjson
	[ "$status" -eq 2 ]
	[[ "$output" == *"--key with -O avro-single needs --message-delimiter"* ]]
	reco-clean -O avro-single --message-delimiter "$D" ev.ndjson >nokey.msg
	reco-clean -I avro-single --message-delimiter "$D" --stats nokey.msg >back.ndjson 2>stats
	cmp want.ndjson back.ndjson
	[ "$(stats_counts stats)" = "200 200 0 0" ]
	# A one-byte delimiter that some records hold: those are rejected
	# with the event as JSON, the others written whole.
	n=$(grep -c 'Safari' want.ndjson)
	[ "$n" -gt 0 ]
	reco-clean -O avro-single --message-delimiter 'S' --rejects rej.ndjson --stats ev.ndjson >s.msg 2>stats
	[ "$(jq -r .reason rej.ndjson | sort -u)" = delimiter_in_message ]
	[ "$(wc -l <rej.ndjson)" -ge "$n" ]
	rejected=$(wc -l <rej.ndjson)
	[ "$(stats_counts stats)" = "200 $((200 - rejected)) 0 $rejected" ]
	reco-clean -I avro-single --message-delimiter 'S' s.msg >back.ndjson
	[ "$(wc -l <back.ndjson)" -eq $((200 - rejected)) ]
	jq -c .raw rej.ndjson | jq -r . >rejected.ndjson
	[ "$(sort back.ndjson rejected.ndjson | core)" = "$(sort want.ndjson | core)" ]
}

@test "a schema change mid-stream: another producer's version with a new defaulted field is read whole; an incompatible one, an unknown id and foreign bytes are rejected with their reasons" {
	registry_start
	reco-gen --events 100 --seed 10 >ev.ndjson
	reco-clean -O confluent --registry "$REGISTRY" ev.ndjson >v1.msg
	reco-ingest --schema=avro >event.avsc
	# v2: a new field with a default, and ts without its logical type.
	jq '.fields |= (map(if .name == "ts" then .type = "long" else . end) + [{"name":"channel","type":"string","default":"web"}])' event.avsc >v2.avsc
	jq -c '{event_id: (.event_id + "-v2"), ts, user, type, item, session,
		qty, price, query, source, attrs, v: 1, channel: "app"}' ev.ndjson >v2.json
	$PY "$BATS_TEST_DIRNAME/tools/avro-msg.py" --schema v2.avsc --registry "$REGISTRY" --subject events-value <v2.json >v2.msg
	# Incompatible: ts as a string.
	jq '.fields |= map(if .name == "ts" then .type = "string" else . end)' event.avsc >bad.avsc
	jq -c '{event_id, ts: (.ts | tostring), user, type, item, session,
		qty: null, price: null, query: null, source: null, attrs, v: 1}' ev.ndjson | head -n 3 >bad.json
	$PY "$BATS_TEST_DIRNAME/tools/avro-msg.py" --schema bad.avsc --registry "$REGISTRY" --subject events-value <bad.json >bad.msg
	# An id the registry does not have (887), and a message that is not Avro.
	printf '\000\000\000\006\000\000\000\003\167\000' >unknown.msg
	printf '\000\000\000\003abc' >foreign.msg
	cat v1.msg v2.msg bad.msg unknown.msg foreign.msg >all.msg
	run reco-clean -I confluent --registry "$REGISTRY" --stats --rejects rej.ndjson -o out.ndjson all.msg
	[ "$status" -eq 0 ]
	[[ "$output" == *"records in 205, out 200, dropped 0, rejected 5"* ]]
	[ "$(core out.ndjson | grep -c -- '-v2"')" -eq 100 ]
	[ "$(jq -c 'select(.event_id | endswith("-v2")) | del(.event_id)' out.ndjson)" = \
	  "$(reco-clean ev.ndjson | jq -c 'del(.event_id)')" ]
	[ "$(jq -r .reason rej.ndjson | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')" = \
	  "bad_avro=1 incompatible_schema=3 unknown_schema=1 " ]
	[[ "$(jq -r 'select(.reason == "incompatible_schema") | .message' rej.ndjson | head -n 1)" == *"Field ts isn't compatible"* ]]
	[ "$(jq -r 'select(.reason == "unknown_schema") | .record' rej.ndjson)" = 204 ]
	[[ "$output" == *"all.msg: message 204: "*"Schema 887 not found"* ]]
	# Each schema was asked for once.
	[ "$(grep -c 'GET /schemas/ids/' reg.log)" -eq 4 ]
}

@test "Avro messages: a registry that fails is exit 3 with its words; a cut message, a null one, NDJSON by mistake; usage errors" {
	reco-gen --events 20 --seed 11 >ev.ndjson
	registry_start --fail-after 1
	reco-clean -O confluent --registry "$REGISTRY" ev.ndjson >ev.msg
	run reco-clean -I confluent --registry "$REGISTRY" ev.msg
	[ "$status" -eq 3 ]
	[[ "$output" == *"schema id 1: schema registry $REGISTRY answered 500: Error in the backend datastore"* ]]
	registry_stop
	run reco-clean -I confluent --registry "$REGISTRY" ev.msg
	[ "$status" -eq 3 ]
	[[ "$output" == *"schema registry $REGISTRY: Couldn't connect to server"* ]]
	run reco-clean -O confluent --registry "$REGISTRY" ev.ndjson
	[ "$status" -eq 3 ]
	[[ "$output" == *"registering the schema under subject reco.Event: schema registry"* ]]
	# A null message (kcat's %R: -1) is dropped; a cut one rejected.
	reco-clean -O avro-single ev.ndjson >s.msg
	{ printf '\377\377\377\377'; cat s.msg; head -c 30 s.msg; } >odd.msg
	run reco-clean -I avro-single --stats --rejects rej.ndjson -o out.ndjson odd.msg
	[ "$status" -eq 0 ]
	[[ "$output" == *"records in 22, out 20, dropped 1, rejected 1"* ]]
	[[ "$output" == *'records_dropped_total{reason="null_message"} 1'* ]]
	[ "$(jq -r .message rej.ndjson)" = "a message cut by the end of the input" ]
	run reco-clean -I avro-single ev.ndjson
	[ "$status" -eq 1 ]
	[[ "$output" == *"ev.ndjson: this looks like NDJSON, not Avro messages: stopping (-I ndjson reads it)"* ]]
	run reco-clean -O confluent ev.ndjson
	[ "$status" -eq 2 ]
	[[ "$output" == *"-O confluent needs --registry URL"* ]]
	run reco-clean -I confluent ev.ndjson
	[ "$status" -eq 2 ]
	run reco-clean -I avro-single --registry ftp://x ev.ndjson
	[ "$status" -eq 2 ]
	[[ "$output" == *"--registry: expected an http:// or https:// URL"* ]]
	run reco-clean --message-delimiter '\xZZ' ev.ndjson
	[ "$status" -eq 2 ]
	run reco-serve --registry "$REGISTRY" --help
	[ "$status" -eq 2 ]
}

@test "the registry's basic authentication: user:password@ in --registry" {
	registry_start --user 'shop:s3cret'
	reco-gen --events 10 --seed 12 >ev.ndjson
	run reco-clean -O confluent --registry "$REGISTRY" ev.ndjson
	[ "$status" -eq 3 ]
	[[ "$output" == *"answered 401: Unauthorized"* ]]
	url=${REGISTRY/http:\/\//http://shop:s3cret@}
	reco-clean -O confluent --registry "$url" ev.ndjson >ev.msg
	reco-clean -I confluent --registry "$url" ev.msg | cmp - <(reco-clean ev.ndjson)
}

@test "kafka: Avro messages through kcat and the loopback broker, ingest to profiles and back, with a schema change mid-topic" {
	registry_start
	kafka_start -b 1 -t events:3 -t profiles:3
	reco-gen --events 600 --seed 13 >ev.ndjson
	head -n 300 ev.ndjson >a.ndjson
	tail -n 300 ev.ndjson >b.ndjson
	# The first half as reco.Event, keyed by user (kcat -K, -D) ...
	reco-ingest -O confluent --registry "$REGISTRY" --subject events-value \
		--key user --message-delimiter "$D" a.ndjson |
		kcat -b "$KAFKA_BROKERS" -P -t events -K '\t' -D "$D" -X partitioner=murmur2_random
	# ... the second half by another producer, a newer schema version.
	reco-ingest --schema=avro | jq '.fields |= (map(if .name == "ts" then .type = "long" else . end) + [{"name":"channel","type":"string","default":"web"}])' >v2.avsc
	jq -c '{event_id, ts, user, type, item, session, qty, price, query, source, attrs, v: 1, channel: "app"}' b.ndjson >v2.json
	$PY "$BATS_TEST_DIRNAME/tools/avro-msg.py" --schema v2.avsc --registry "$REGISTRY" \
		--subject events-value --delimiter feff7e7e <v2.json |
		kcat -b "$KAFKA_BROKERS" -P -t events -D '\xfe\xff\x7e\x7e'
	[ "$(kcat -b "$KAFKA_BROKERS" -C -t events -e -q -f '%o\n' | wc -l)" -eq 600 ]
	# Consume: kcat's %R%s keeps binary messages exact.
	kcat -b "$KAFKA_BROKERS" -C -t events -e -q -f '%R%s' |
		reco-ingest -I confluent --registry "$REGISTRY" |
		reco-clean --max-lateness 1d | reco-profile -O confluent --registry "$REGISTRY" \
			--key user --message-delimiter "$D" --stats 2>profile.stats |
		kcat -b "$KAFKA_BROKERS" -P -t profiles -K '\t' -D "$D"
	grep -q 'records in 600' profile.stats
	[ "$(curl -s "$REGISTRY/subjects")" = '["events-value", "reco.Profile"]' ]
	# The profiles topic, read back, equals the NDJSON pipeline's profiles.
	kcat -b "$KAFKA_BROKERS" -C -t profiles -e -q -f '%R%s' >profiles.msg
	py_decode --registry "$REGISTRY" <profiles.msg >profiles.json
	# (Updates are one per user and batch, so compare each user's last.)
	last='group_by(.user) | map(max_by(.events) | {user, events, sessions, last_seen}) | .[]'
	jq -s -c "$last" profiles.json >got
	reco-clean --max-lateness 1d ev.ndjson | reco-profile | jq -s -c "$last" >want
	[ "$(wc -l <want)" -gt 300 ]
	diff want got
}
