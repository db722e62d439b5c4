#!/usr/bin/env bats
# reco-profile.bats: profiles from events: the update rules, output, the embedded and Redis stores, replays, kill -9 and restore.

load helpers
load helpers-redis

setup() {
	common_setup
	F=$(fixture profile)
}

teardown() {
	redis_stop
}

# Events with file positions (source file:gen.csv:LINE): generated as CSV
# and ingested from a named file.
positioned_events() {
	reco-gen --events "$1" --users "$2" --format csv -o gen.csv
	reco-ingest --from csv --map user=user_id,item=product_id,ts=event_time,type=event_type,session=user_session \
	    --type-map cart=add_to_cart --keep category_code,brand,price gen.csv >ev.ndjson
}

# Positioned events as the pipeline gives them: reco-clean puts the
# out-of-order ones back in time order, so their positions (lines of
# gen.csv) no longer grow. Checks that some do go down.
reordered_events() {
	reco-gen --seed 3 --events "$1" --users "$2" --ooo-rate 0.05 --format csv -o gen.csv
	reco-ingest --from csv --map user=user_id,item=product_id,ts=event_time,type=event_type,session=user_session \
	    --type-map cart=add_to_cart --keep category_code,brand,price gen.csv | reco-clean >ev.ndjson
	jq -r '.source | ltrimstr("file:gen.csv:")' ev.ndjson |
	    awk '$1 < max { down++ } $1 > max { max = $1 } END { exit !(down > 0) }'
}

# The events of ev.ndjson sorted by position.
by_position() {
	jq -c -s 'sort_by(.source | ltrimstr("file:gen.csv:") | tonumber) | .[]' ev.ndjson
}

# Each user's event counts, from a dump.
counts_of() {
	jq -c '[.user, .events, .counts]' "$1"
}

# Run the command given until it completes, killing it with SIGKILL after
# a random delay each time (at most 40 times); print the number of kills.
kill_until_done() {
	# The last argument is the input file. The first run reads it through a
	# FIFO that stalls partway, so at least one kill lands mid-input however
	# fast the machine; the later runs are killed at random points.
	local input=${!#} kills=0 pid feeder st attempt k
	local cmd=("${@:1:$#-1}")
	rm -f stall.fifo && mkfifo stall.fifo
	k=$(( $(wc -l <"$input") * (RANDOM % 60 + 20) / 100 ))
	(head -n "$k" "$input"; exec sleep 60) >stall.fifo 3>&- &
	feeder=$!
	"${cmd[@]}" stall.fifo >/dev/null 2>>kill.err 3>&- &
	pid=$!
	sleep 0.4
	kill -9 "$pid" 2>/dev/null || true
	st=0
	wait "$pid" || st=$?
	kill "$feeder" 2>/dev/null || true
	wait "$feeder" 2>/dev/null || true
	[ "$st" -eq 137 ] || { cat kill.err >&2; fail "stalled run: exit status $st"; return 1; }
	kills=1
	for attempt in $(seq 40); do
		"$@" >/dev/null 2>>kill.err 3>&- &
		pid=$!
		# Short delays first, so that it is killed a few times.
		if [ "$attempt" -le 6 ]; then
			sleep "0.$(printf '%03d' $((RANDOM % 140 + 10)))"
		else
			sleep "0.$(printf '%03d' $((RANDOM % 400 + 100)))"
		fi
		kill -9 "$pid" 2>/dev/null || true
		st=0
		wait "$pid" || st=$?
		if [ "$st" -eq 0 ]; then
			echo "$kills"
			return 0
		fi
		[ "$st" -eq 137 ] || { cat kill.err >&2; fail "exit status $st"; return 1; }
		kills=$((kills + 1))
	done
	"$@" >/dev/null || return 1
	echo "$kills"
}

@test "profiles from the fixture events: golden output" {
	reco-profile "$F/events.ndjson" >out.ndjson
	same_bytes "$F/expected.ndjson" out.ndjson
}

@test "every option of the rules: golden output, keyed, one update per event" {
	reco-profile --weights view=2,click=0,purchase=10 --half-life 1d --max-items 2 \
	    --max-categories 1 --max-brands 0 --history 3 --max-cart 1 --purchase-clears-cart \
	    --count-norm percentile --session-gap 1h --key user --emit every \
	    "$F/events.ndjson" >out.ndjson
	same_bytes "$F/expected-options.ndjson" out.ndjson
}

@test "the rules: decay, cart, purchases, sessions, counts, replayed positions" {
	reco-profile --stats "$F/events.ndjson" >out.ndjson 2>err
	ann=$(jq -c 'select(.user == "ann")' out.ndjson)
	# A week-old add_to_cart (4) and view (1) less a remove (2) decay to a
	# half; the purchase (8) adds to it.
	[ "$(jq '.items[0].id' <<<"$ann")" = '"i1"' ]
	jq -e '.items[0].score > 9.49 and .items[0].score < 9.51' <<<"$ann"
	jq -e '[.items[].norm] | add > 0.99 and add < 1.01' <<<"$ann"
	# i1 was bought (out of the cart), i2 stays.
	[ "$(jq -c '[.cart[].item]' <<<"$ann")" = '["i2"]' ]
	[ "$(jq -c '[.purchases[].item]' <<<"$ann")" = '["i1"]' ]
	[ "$(jq -c '.counts' <<<"$ann")" = '{"view":3,"add_to_cart":2,"remove_from_cart":1,"purchase":1}' ]
	# Categories and brands from attrs (category, category_code, brand).
	[ "$(jq -c '[.categories[].id]' <<<"$ann")" = '["shoes","hats"]' ]
	[ "$(jq -c '[.brands[].id]' <<<"$ann")" = '["acme","zed"]' ]
	# An impression counts but scores nothing and is not history.
	bob=$(jq -c 'select(.user == "bob")' out.ndjson)
	[ "$(jq '.counts.impression' <<<"$bob")" = 1 ]
	[ "$(jq '[.history[] | select(.type == "impression")] | length' <<<"$bob")" = 0 ]
	# Sessions without ids: a gap of more than 30 minutes.
	[ "$(jq '.sessions' <<<"$bob")" = 3 ]
	# The Kafka offset seen twice is applied once.
	[ "$(jq 'select(.user == "cy") | .events' out.ndjson)" = 3 ]
	grep -q 'records in 15, out 14, dropped 1, rejected 0' err
	grep -q 'dropped_total{reason="replayed"} 1' err
}

@test "same input, same output: byte for byte, NDJSON and Avro" {
	positioned_events 5000 300
	reco-profile --emit every ev.ndjson >a1
	reco-profile --emit every ev.ndjson >a2
	same_bytes a1 a2
	reco-profile -O avro --codec deflate ev.ndjson >b1
	reco-profile -O avro --codec deflate ev.ndjson >b2
	same_bytes b1 b2
	[ "$(head -c 4 b1 | od -An -c | tr -d ' ')" = 'Obj001' ]
}

@test "--emit: every writes one update per event, changed one per user and batch, none nothing" {
	positioned_events 3000 100
	n=$(wc -l <ev.ndjson)
	reco-profile --emit every ev.ndjson >every
	[ "$(nlines every)" -eq "$n" ]
	reco-profile --emit changed --batch 1000000 ev.ndjson >changed
	[ "$(nlines changed)" -eq "$(jq -r .user ev.ndjson | sort -u | wc -l)" ]
	reco-profile --emit changed --batch 100 ev.ndjson >small
	[ "$(nlines small)" -gt "$(nlines changed)" ]
	reco-profile --emit none ev.ndjson >none
	[ ! -s none ]
	# The last update of each user is the same whatever the batching.
	for f in every small changed; do
		jq -c . "$f" | awk '{ u = $0; sub(/^\{"user":/, "", u); sub(/,.*/, "", u); last[u] = $0 }
		    END { for (u in last) print last[u] }' | sort >"$f.last"
	done
	same_bytes every.last changed.last
	same_bytes small.last changed.last
}

@test "--key user writes USER<TAB>JSON; --key of another field is a usage error" {
	reco-profile --key user "$F/events.ndjson" >out
	cut -f1 out >keys
	printf 'ann\nbob\ncy\n' >want
	same_bytes want keys
	cut -f2- out | jq -e .user >/dev/null
	run reco-profile --key item "$F/events.ndjson"
	[ "$status" -eq 2 ]
}

@test "the embedded store: --get, --dump, unknown users, replays change nothing" {
	reco-profile --store p.state "$F/events.ndjson" >/dev/null
	[ -f p.state ]
	reco-profile --dump --store p.state >dump
	same_bytes "$F/expected.ndjson" dump
	reco-profile --get bob --store p.state >bob
	grep '"user":"bob"' "$F/expected.ndjson" >want
	same_bytes want bob
	run reco-profile --get nobody --store p.state
	[ "$status" -eq 1 ]
	[ -z "$output" ] || [[ "$output" == *nobody* ]]
	# The same input again: every positioned event is a replay; only the
	# unpositioned purchase of cy is applied again.
	reco-profile --store p.state --stats "$F/events.ndjson" >again 2>err
	grep -q 'records in 15, out 1, dropped 14' err
	[ "$(jq -r .user again)" = cy ]
	reco-profile --dump --store p.state | grep -v '"user":"cy"' >after
	grep -v '"user":"cy"' "$F/expected.ndjson" >want
	same_bytes want after
	ls p.state* >files
	echo p.state >want
	same_bytes want files
	run reco-profile --get ann --no-such-option
	[ "$status" -eq 2 ]
	run reco-profile --dump
	[ "$status" -eq 2 ]
}

@test "an interrupted-and-resumed input gives the uninterrupted store byte for byte" {
	positioned_events 4000 200
	reco-profile --emit none --store whole.state ev.ndjson
	head -1500 ev.ndjson >part1
	reco-profile --emit none --store split.state part1
	# The resumed run gets the whole input again: the first part is replayed.
	reco-profile --emit none --store split.state --stats ev.ndjson 2>err
	grep -q 'dropped_total{reason="replayed"} 1500' err
	same_bytes whole.state split.state
}

@test "--hot-users: packed profiles change nothing: the same updates, state files and dumps, packing everything or nothing" {
	positioned_events 6000 800
	reco-profile --hot-users 100000000 --batch 100 --store all.state ev.ndjson >all.out
	reco-profile --hot-users 0 --batch 100 --store none.state ev.ndjson >none.out
	reco-profile --hot-users 7 --batch 100 --emit every ev.ndjson >seven.every
	reco-profile --hot-users 100000000 --batch 100 --emit every ev.ndjson >all.every
	same_bytes all.out none.out
	same_bytes all.state none.state
	same_bytes all.every seven.every
	reco-profile --dump --store none.state >none.dump
	reco-profile --dump --store all.state >all.dump
	same_bytes all.dump none.dump
	# A writer keeps a loaded store packed; what it adds and dumps is the same.
	head -3000 ev.ndjson >part1
	reco-profile --hot-users 0 --emit none --store split.state part1
	reco-profile --hot-users 0 --emit none --store split.state ev.ndjson
	same_bytes all.state split.state
	# Packing is what makes a long tail of users small.
	reco-gen --regime sessions --events 20000 --seed 4 >tail.ndjson
	reco-profile --hot-users 0 --emit none --stats tail.ndjson 2>packed.err
	reco-profile --hot-users 100000000 --emit none --stats tail.ndjson 2>unpacked.err
	packed=$(sed -n 's/.*store_bytes //p' packed.err)
	unpacked=$(sed -n 's/.*store_bytes //p' unpacked.err)
	echo "# store bytes: packed $packed, unpacked $unpacked" >&3
	[ "$((packed * 2))" -lt "$unpacked" ]
}

@test "state files hold profiles packed (version 3); a version 2 file is read and written again as a new one would be" {
	# v2.state: the first 300 of these events, by a reco-profile that
	# wrote version 2 (profiles in reco.Profile's Avro encoding).
	positioned_events 600 50
	head -300 ev.ndjson >part1
	reco-profile --emit none --store new.state part1
	[ "$(head -c 20 new.state | tail -c 1 | od -An -tu1 | tr -d ' ')" = 6 ]  # zigzag 3
	[ "$(head -c 20 "$F/v2.state" | tail -c 1 | od -An -tu1 | tr -d ' ')" = 4 ]
	reco-profile --dump --store new.state >new.dump
	reco-profile --dump --store "$F/v2.state" >v2.dump
	same_bytes new.dump v2.dump
	old=$(wc -c <"$F/v2.state") new=$(wc -c <new.state)
	echo "# state file: version 2 $old bytes, version 3 $new" >&3
	[ "$((new * 4))" -lt "$((old * 3))" ]
	# Resumed from the old file, the store is the one a single run makes.
	cp "$F/v2.state" split.state
	reco-profile --emit none --store split.state ev.ndjson
	reco-profile --emit none --store whole.state ev.ndjson
	same_bytes whole.state split.state
}

@test "kill -9 at random points, restart on the same input: the embedded store equals one uninterrupted run" {
	positioned_events 50000 2000
	reco-profile --emit none --store ref.state ev.ndjson
	reco-profile --dump --store ref.state >ref.dump
	# The killed runs pack all but 100 profiles: that changes nothing.
	kills=$(kill_until_done reco-profile --emit none --batch 500 --checkpoint-every 5000 \
	    --hot-users 100 --store k.state ev.ndjson)
	echo "# killed $kills times" >&3
	[ "$kills" -ge 1 ]
	reco-profile --dump --store k.state >k.dump
	same_bytes ref.dump k.dump
	same_bytes ref.state k.state
	# No temporary file of a killed checkpoint is left.
	[ "$(ls k.state*)" = k.state ]
}

@test "events reordered by reco-clean: none is taken for a replay; the counts of the run by position" {
	reordered_events 8000 300
	reco-profile --emit none --store r.state --stats ev.ndjson 2>err
	n=$(nlines ev.ndjson)
	grep -q "records in $n, out $n, dropped 0" err
	! grep -q 'reason="replayed' err
	by_position >sorted.ndjson
	reco-profile --emit none --store s.state sorted.ndjson
	reco-profile --dump --store r.state >r.dump
	reco-profile --dump --store s.state >s.dump
	counts_of r.dump >r.counts
	counts_of s.dump >s.counts
	same_bytes s.counts r.counts
	# The memory store keeps the same window.
	reco-profile --stats ev.ndjson 2>err >/dev/null
	grep -q "records in $n, out $n, dropped 0" err
}

@test "the reordered stream again: every event is a replay, the store is byte for byte the same" {
	reordered_events 8000 300
	reco-profile --emit none --store r.state ev.ndjson
	cp r.state first.state
	n=$(nlines ev.ndjson)
	reco-profile --store r.state --stats ev.ndjson 2>err >out
	grep -q "records in $n, out 0, dropped $n" err
	grep -q "dropped_total{reason=\"replayed\"} $n" err
	[ ! -s out ]
	same_bytes first.state r.state
	# Half of it, then all of it: the store of one run.
	head -n $((n / 2)) ev.ndjson >half
	reco-profile --emit none --store h.state half
	reco-profile --emit none --store h.state --stats ev.ndjson 2>err
	grep -q "dropped_total{reason=\"replayed\"} $((n / 2))" err
	same_bytes first.state h.state
}

@test "--position-window: a position below the window is dropped as replayed_beyond_window" {
	reordered_events 3000 100
	n=$(nlines ev.ndjson)
	reco-profile --emit none --position-window 8 --stats ev.ndjson 2>err
	grep -q 'dropped_total{reason="replayed_beyond_window"} [1-9]' err
	! grep -q 'reason="replayed"}' err
	# A window of the whole input drops nothing.
	reco-profile --emit none --position-window 4096 --stats ev.ndjson 2>err
	grep -q "records in $n, out $n, dropped 0" err
	# The window may change between runs: what is applied stays applied.
	reco-profile --emit none --position-window 4096 --store w.state ev.ndjson
	reco-profile --emit none --position-window 64 --store w.state --stats ev.ndjson 2>err
	grep -q "records in $n, out 0, dropped $n" err
	reco-profile --emit none --store w.state --stats ev.ndjson 2>err
	grep -q "records in $n, out 0, dropped $n" err
	run reco-profile --position-window 12 ev.ndjson
	[ "$status" -eq 2 ]
	run reco-profile --position-window 0 ev.ndjson
	[ "$status" -eq 2 ]
}

@test "--max-sources: a source past it stops the tool with status 3, what was applied kept" {
	reco-profile --store m.state --max-sources 1 "$F/events.ndjson" 2>err >/dev/null || st=$?
	[ "${st:-0}" -eq 3 ]
	grep -q -- '--max-sources 1' err
	[ -f m.state ]
	reco-profile --store m.state "$F/events.ndjson" >/dev/null
	reco-profile --store ref.state "$F/events.ndjson" >/dev/null
	reco-profile --dump --store m.state | grep -v '"user":"cy"' >m.dump
	reco-profile --dump --store ref.state | grep -v '"user":"cy"' >ref.dump
	same_bytes ref.dump m.dump
}

@test "kill -9 at random points on the reordered stream: the embedded store equals one uninterrupted run" {
	reordered_events 50000 2000
	reco-profile --emit none --store ref.state ev.ndjson
	kills=$(kill_until_done reco-profile --emit none --batch 500 --checkpoint-every 5000 \
	    --store k.state ev.ndjson)
	echo "# killed $kills times" >&3
	[ "$kills" -ge 1 ]
	same_bytes ref.state k.state
}

@test "SIGTERM while waiting for input: what was read is applied and checkpointed, status 143" {
	positioned_events 500 50
	mkfifo in
	reco-profile --emit none --store s.state --checkpoint-every 0 in 2>err 3>&- &
	pid=$!
	exec 4>in
	head -200 ev.ndjson >&4
	sleep 0.3
	kill -TERM "$pid"
	st=0
	wait "$pid" || st=$?
	exec 4>&-
	[ "$st" -eq 143 ]
	grep -q 'stopped by a signal' err
	head -200 ev.ndjson >part
	reco-profile --emit none --store ref.state part
	same_bytes ref.state s.state
}

@test "--max-users refuses growth with a clear error and keeps what it applied" {
	positioned_events 2000 100
	run reco-profile --emit none --max-users 10 --store m.state ev.ndjson
	[ "$status" -eq 3 ]
	[[ "$output" == *"--max-users 10"* ]]
	[ "$(reco-profile --dump --store m.state | wc -l)" -eq 10 ]
	# A restart with room finishes the job as one run would have.
	reco-profile --emit none --store m.state ev.ndjson
	reco-profile --emit none --store ref.state ev.ndjson
	same_bytes ref.state m.state
}

@test "--restore rebuilds the store from the updates: NDJSON, keyed, Avro" {
	positioned_events 5000 300
	reco-profile --count-norm percentile --store ref.state ev.ndjson >changelog
	reco-profile --dump --store ref.state >ref.dump
	reco-profile --restore --store r1.state changelog
	reco-profile --dump --store r1.state >r1.dump
	same_bytes ref.dump r1.dump
	# The positions come back with the profiles: the input is a replay.
	reco-profile --count-norm percentile --store r1.state --stats ev.ndjson >/dev/null 2>err
	grep -q "records in 5000, out 0, dropped 5000" err
	# Keyed lines (kcat -K '\t') and Avro.
	reco-profile --count-norm percentile --key user ev.ndjson >keyed
	reco-profile --restore --store r2.state keyed
	reco-profile --dump --store r2.state | same_bytes ref.dump /dev/stdin
	reco-profile --count-norm percentile -O avro ev.ndjson >changelog.avro
	reco-profile --restore --store r3.state changelog.avro
	reco-profile --dump --store r3.state | same_bytes ref.dump /dev/stdin
	# A dump in Avro restores too.
	reco-profile --dump -O avro --store ref.state >dump.avro
	reco-profile --restore --store r4.state dump.avro
	reco-profile --dump --store r4.state | same_bytes ref.dump /dev/stdin
}

@test "--restore rejects a bad line and goes on" {
	reco-profile "$F/events.ndjson" >changelog
	printf '{"user":"x"}\nnot json\n' >>changelog
	reco-profile --restore --store r.state --rejects rej --stats changelog 2>err
	[ "$(nlines rej)" -eq 2 ]
	grep -q '"reason":"invalid_profile"' rej
	grep -q '"reason":"bad_json"' rej
	reco-profile --dump --store r.state | same_bytes "$F/expected.ndjson" /dev/stdin
}

@test "the checksum of a state file covers bodies past 4 GiB (zlib takes 4 GiB at a time)" {
	# The framing every state file and snapshot is read through, on a
	# body of 4 GiB and 20 bytes mapped without memory behind it: the
	# checksum equals zlib's in pieces, and a byte changed past 4 GiB is
	# seen.
	run crc-check 4294967320
	[ "$status" -eq 0 ] || fail "$output"
	run crc-check 64
	[ "$status" -eq 0 ] || fail "$output"
}

@test "a damaged state file stops the tool and is left alone" {
	reco-profile --store p.state "$F/events.ndjson" >/dev/null
	cp p.state good
	printf 'x' | dd of=p.state bs=1 seek=40 conv=notrunc 2>/dev/null
	run reco-profile --store p.state "$F/events.ndjson"
	[ "$status" -eq 3 ]
	[[ "$output" == *"corrupt state file"* ]]
	echo 'hello' >other
	run reco-profile --dump --store other
	[ "$status" -eq 3 ]
	[[ "$output" == *"not a reco-profile state file"* ]]
	run reco-profile --dump --store missing.state
	[ "$status" -eq 3 ]
}

@test "--schema prints the profile schema; the output follows it" {
	reco-profile --schema | jq -e '.title == "reco.Profile"' >/dev/null
	reco-profile --schema=avro | jq -e '.name == "Profile"' >/dev/null
	# Every key the schema requires is in every profile, in its order.
	req=$(reco-profile --schema | jq -c '.required')
	reco-profile "$F/events.ndjson" | jq -c --argjson r "$req" \
	    '[keys_unsorted[] | select(. as $k | $r | index($k))] == $r' | sort -u >ok
	[ "$(cat ok)" = true ]
	if command -v avrocat >/dev/null 2>&1; then
		reco-profile -O avro "$F/events.ndjson" >p.avro
		[ "$(avrocat p.avro | wc -l)" -eq 3 ]
	fi
}

@test "bad options exit 2" {
	run reco-profile --weights view
	[ "$status" -eq 2 ]
	run reco-profile --weights nosuch=1
	[ "$status" -eq 2 ]
	run reco-profile --half-life forever
	[ "$status" -eq 2 ]
	run reco-profile --count-norm sqrt
	[ "$status" -eq 2 ]
	run reco-profile --emit sometimes
	[ "$status" -eq 2 ]
	run reco-profile --restore
	[ "$status" -eq 2 ]
}

# ---- Redis ----

@test "Redis: the same profiles as the embedded store, and --get" {
	redis_start
	positioned_events 20000 1000
	reco-profile --emit none --store emb.state ev.ndjson
	reco-profile --emit none --batch 300 --cache-users 200 --store "$REDIS_URL" --stats ev.ndjson 2>err
	grep -q 'cache_evictions_total' err
	reco-profile --dump --store emb.state >emb.dump
	reco-profile --dump --store "$REDIS_URL" >redis.dump
	same_bytes emb.dump redis.dump
	u=$(head -1 emb.dump | jq -r .user)
	reco-profile --get "$u" --store "$REDIS_URL" | same_bytes <(head -1 emb.dump) /dev/stdin
	run reco-profile --get nobody --store "$REDIS_URL"
	[ "$status" -eq 1 ]
	# One key per user, one for the positions, one for the window.
	[ "$(rcli dbsize)" -eq $(($(nlines emb.dump) + 2)) ]
	[ "$(rcli strlen reco:w:file:gen.csv)" -eq 131072 ]
	[ "$(rcli hget reco:meta pos:file:gen.csv)" -eq 20001 ]
	# The input again changes nothing.
	reco-profile --emit none --store "$REDIS_URL" --stats ev.ndjson 2>err
	grep -q 'out 0, dropped 20000' err
	reco-profile --dump --store "$REDIS_URL" | same_bytes emb.dump /dev/stdin
}

@test "Redis: kill -9 at random points, restart on the same input: the store equals one uninterrupted run" {
	redis_start
	positioned_events 50000 2000
	reco-profile --emit none --store ref.state ev.ndjson
	reco-profile --dump --store ref.state >ref.dump
	kills=$(kill_until_done reco-profile --emit none --batch 200 --store "$REDIS_URL" ev.ndjson)
	echo "# killed $kills times" >&3
	[ "$kills" -ge 1 ]
	reco-profile --dump --store "$REDIS_URL" >k.dump
	same_bytes ref.dump k.dump
}

@test "Redis: the reordered stream: nothing dropped, a replay changes nothing, kill -9 and restart" {
	redis_start
	reordered_events 30000 1000
	n=$(nlines ev.ndjson)
	reco-profile --emit none --store ref.state ev.ndjson
	reco-profile --dump --store ref.state >ref.dump
	reco-profile --emit none --batch 300 --cache-users 200 --store "$REDIS_URL" --stats ev.ndjson 2>err
	grep -q "records in $n, out $n, dropped 0" err
	reco-profile --dump --store "$REDIS_URL" | same_bytes ref.dump /dev/stdin
	reco-profile --emit none --store "$REDIS_URL" --stats ev.ndjson 2>err
	grep -q "out 0, dropped $n" err
	reco-profile --dump --store "$REDIS_URL" | same_bytes ref.dump /dev/stdin
	# A window of another size is taken over.
	reco-profile --emit none --position-window 4096 --store "$REDIS_URL" --stats ev.ndjson 2>err
	grep -q "out 0, dropped $n" err
	rcli flushdb >/dev/null
	kills=$(kill_until_done reco-profile --emit none --batch 200 --store "$REDIS_URL" ev.ndjson)
	echo "# killed $kills times" >&3
	[ "$kills" -ge 1 ]
	reco-profile --dump --store "$REDIS_URL" | same_bytes ref.dump /dev/stdin
}

@test "Redis: a lost server: retries, exit 3, and a restart loses nothing" {
	redis_start
	positioned_events 6000 300
	reco-profile --emit none --store ref.state ev.ndjson
	reco-profile --dump --store ref.state >ref.dump
	mkfifo in
	reco-profile --emit none --store "$REDIS_URL" --redis-timeout 200ms --redis-retries 2 \
	    in 2>err 3>&- &
	pid=$!
	exec 4>in
	head -3000 ev.ndjson >&4
	# The first part is committed once the input is idle.
	for i in $(seq 100); do
		[ "$(rcli hget reco:meta pos:file:gen.csv)" = 3001 ] && break
		sleep 0.05
	done
	[ "$(rcli hget reco:meta pos:file:gen.csv)" = 3001 ]
	kill -STOP "$REDIS_PID"
	# It stops before it has read it all.
	tail -n +3001 ev.ndjson >&4 || true
	exec 4>&-
	st=0
	wait "$pid" || st=$?
	kill -CONT "$REDIS_PID"
	[ "$st" -eq 3 ]
	grep -q 'retrying (1 of 2)' err
	sleep 0.2
	reco-profile --emit none --store "$REDIS_URL" ev.ndjson
	reco-profile --dump --store "$REDIS_URL" | same_bytes ref.dump /dev/stdin
}

@test "Redis: --restore fills Redis from the updates" {
	redis_start
	reco-profile --store p.state "$F/events.ndjson" >changelog
	reco-profile --restore --store "$REDIS_URL" changelog
	reco-profile --dump --store "$REDIS_URL" | same_bytes "$F/expected.ndjson" /dev/stdin
	[ "$(rcli hget reco:meta pos:kafka:clicks/0)" = 8 ]
}

@test "Redis URLs as Redis clients take them: a Unix socket, passwords with escapes, a user, a database, IPv6" {
	local sock="$BATS_TEST_TMPDIR/r.sock" pw='p@ss:w/rd?' enc='p%40ss%3Aw%2Frd%3F' bind=127.0.0.1
	# IPv6 loopback where the machine has it.
	grep -q '^0\{31\}1 ' /proc/net/if_inet6 2>/dev/null && bind='127.0.0.1 ::1'
	export REDISCLI_AUTH=$pw
	redis_start --unixsocket "$sock" --unixsocketperm 700 --requirepass "$pw" --bind "$bind"
	# The same profiles through each form, in the database each names.
	reco-profile --emit none --store "unix://:$enc@$sock?db=2" "$F/events.ndjson"
	reco-profile --dump --store "redis+unix://:$enc@$sock?db=2" | same_bytes "$F/expected.ndjson" /dev/stdin
	reco-profile --dump --store "redis://:$enc@127.0.0.1:$REDIS_PORT/2" | same_bytes "$F/expected.ndjson" /dev/stdin
	reco-profile --dump --store "unix://$sock?db=2&password=$enc" | same_bytes "$F/expected.ndjson" /dev/stdin
	[ "$(rcli -n 2 hget reco:meta pos:kafka:clicks/0)" = 8 ]
	[ "$(rcli -n 0 dbsize)" = 0 ]
	# A user of its own (Redis 6 ACLs).
	rcli acl setuser shop on '>s3cret' '~*' '&*' '+@all' >/dev/null
	reco-profile --dump --store "redis://shop:s3cret@127.0.0.1:$REDIS_PORT/2" | same_bytes "$F/expected.ndjson" /dev/stdin
	run reco-profile --dump --store "redis://shop:wrong@127.0.0.1:$REDIS_PORT/2"
	[ "$status" -eq 3 ]
	[[ "$output" == *AUTH* ]] || fail "$output"
	run reco-profile --dump --store "unix://$sock?db=2"
	[ "$status" -eq 3 ]
	[[ "$output" == *"$sock"* ]] || fail "$output"
	# IPv6: served where the loopback has it, else the address is tried.
	if [ "$bind" != 127.0.0.1 ]; then
		reco-profile --dump --store "redis://:$enc@[::1]:$REDIS_PORT/2" | same_bytes "$F/expected.ndjson" /dev/stdin
	else
		run reco-profile --redis-retries 0 --dump --store "redis://:$enc@[::1]:$REDIS_PORT/2"
		[ "$status" -eq 3 ]
		[[ "$output" == *"[::1]:$REDIS_PORT"* ]] || fail "$output"
	fi
}

@test "a store with an unknown scheme is a usage error, never a file; rediss:// and bad URLs say what is wrong" {
	run reco-profile --store "foo://x" "$F/events.ndjson"
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown scheme"* ]] || fail "$output"
	run reco-serve --store "memcache://x" --model nothing.bin
	[ "$status" -eq 2 ]
	[[ "$output" == *"unknown scheme"* ]] || fail "$output"
	# A Unix socket URL is a socket, not a state file of that name.
	run reco-profile --redis-retries 0 --store "unix://$PWD/nosock" "$F/events.ndjson"
	[ "$status" -eq 3 ]
	[[ "$output" == *"$PWD/nosock: No such file or directory"* ]] || fail "$output"
	[ ! -e nosock ] && [ ! -e unix: ]
	run reco-profile --store "rediss://127.0.0.1:6380/0" "$F/events.ndjson"
	[ "$status" -eq 3 ]
	[[ "$output" == *"TLS"* ]] || fail "$output"
	local u
	for u in 'redis://[::1' 'redis://h:6379/x' 'redis://%zz@h' 'unix://host/x' 'redis://h/0?db=1&colour=red'; do
		run reco-profile --store "$u" "$F/events.ndjson"
		[ "$status" -eq 3 ]
		[[ "$output" == *"bad Redis URL"* ]] || fail "$u: $output"
	done
}

@test "Redis: a server that is not there: exit 3 after the retries" {
	command -v redis-server >/dev/null 2>&1 || skip "redis-server is not installed"
	run reco-profile --redis-retries 1 --store redis://127.0.0.1:1/0 "$F/events.ndjson"
	[ "$status" -eq 3 ]
	[[ "$output" == *"redis://127.0.0.1:1/0"* ]]
	run reco-profile --store redis://127.0.0.1:99999/0 "$F/events.ndjson"
	[ "$status" -eq 3 ]
	[[ "$output" == *"bad Redis URL"* ]]
}
