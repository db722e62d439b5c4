#!/usr/bin/env bats
# reco-serve.bats: reco-serve: answers, exclusions, filters, cold start and bad input on standard input; profiles read at request time; impressions and variants; HTTP, limits, metrics and hot reload.

load helpers
load helpers-serve
load helpers-redis

bats_require_minimum_version 1.5.0

setup() {
	common_setup
	serve_fixture
}

teardown() {
	serve_stop
	redis_stop
}

# ---- the contract ----

@test "the tool contract: help, version, bad options, files, stdin, full disk" {
	check_contract reco-serve
}

@test "usage errors exit 2" {
	local bad
	for bad in "--variant B" "--variant B=x.bin" "--variant B=x.bin:101" \
		"--variant B=m.bin:60 --variant C=m.bin:50" "--weights mf" \
		"--max-n 0" "--threads 0" "--reload-every soon" \
		"--listen nowhere" "--listen 127.0.0.1:99999"; do
		# shellcheck disable=SC2086
		run --separate-stderr reco-serve --model m.bin $bad </dev/null
		[ "$status" -eq 2 ] || fail "$bad: status $status"
		[[ "$stderr" == *"reco-serve: "*"--help"* ]] || fail "$bad: $stderr"
		[ -z "$output" ]
	done
}

@test "a corrupt snapshot at start exits 1 with a message" {
	head -c 300 m.bin >bad.bin
	run --separate-stderr reco-serve --model bad.bin </dev/null
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"bad.bin"* ]]
}

# ---- answers on standard input ----

@test "answers are one line per request, in order, byte for byte as expected" {
	reco-serve --model m.bin --store p.state --items "$F/items.csv" \
		"$F/requests.ndjson" >out.ndjson
	same_bytes "$F/expected.ndjson" out.ndjson
	# Twice the same: deterministic.
	reco-serve --model m.bin --store p.state --items "$F/items.csv" \
		<"$F/requests.ndjson" >out2.ndjson
	same_bytes out.ndjson out2.ndjson
	# Every line is JSON; answers carry items with reasons, the model
	# version and the variant.
	jq -e -s 'length == 17' out.ndjson
	[ "$(nlines out.ndjson)" -eq "$(grep -c . "$F/requests.ndjson")" ]
	jq -e -s '[.[] | select(.items)] | length == 6' out.ndjson
	jq -e -s '[.[] | select(.items) | .items[] | .reason] - ["mf","cooc","trend","dpop","pop","seen","cat","sknn","seq","next","walk"] == []' out.ndjson
	jq -e -s '[.[] | select(.items)] | all(.variant == "A" and (.model | test("^[0-9a-f]{8}$")))' out.ndjson
}

@test "a --metrics file that cannot be written: warned about once and counted, answers go on" {
	run --separate-stderr reco-serve --model m.bin --store p.state --metrics nodir/m.prom \
		"$F/requests.ndjson"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq "$(grep -c . "$F/requests.ndjson")" ]
	[ "$(grep -c 'cannot write the metrics' <<<"$stderr")" -eq 1 ]
}

@test "purchases, cart and the exclude list are excluded before the cut to n" {
	printf '%s\n' '{"user":"u1","n":7}' '{"user":"u2","n":7}' \
		'{"user":"u3","n":7,"exclude":["i6","i3"]}' >q.ndjson
	reco-serve --model m.bin --store p.state q.ndjson >out.ndjson
	# u1 bought i2, u2 has i4 in the cart.
	jq -e -s '.[0].items | map(.item) | index("i2") == null' out.ndjson
	jq -e -s '.[1].items | map(.item) | index("i4") == null' out.ndjson
	jq -e -s '.[2].items | map(.item) | (index("i6") == null and index("i3") == null)' out.ndjson
	# 7 items, one excluded: the other 6 come back.
	jq -e -s '(.[0].items | length) == 6 and (.[1].items | length) == 6 and (.[2].items | length) == 5' out.ndjson
	reco-serve --model m.bin --store p.state --keep-purchased --keep-cart q.ndjson >keep.ndjson
	jq -e -s '.[0].items | map(.item) | index("i2") != null' keep.ndjson
	jq -e -s '.[1].items | map(.item) | index("i4") != null' keep.ndjson
}

@test "business filters apply before the cut: n results whenever n qualify" {
	printf '%s\n' '{"user":"u5","n":3,"filter":{"category":"shoes"}}' \
		'{"user":"u5","n":10,"filter":{"in_stock":false}}' \
		'{"user":"u5","n":2,"filter":{"brand":"zed","price_max":100}}' \
		'{"user":"u5","n":10,"filter":{"category":["books","toys"],"price_min":10,"price_max":50}}' >q.ndjson
	reco-serve --model m.bin --items "$F/items.csv" q.ndjson >out.ndjson
	jq -e -s '.[0].items | map(.item) | sort == ["i1","i2","i4"]' out.ndjson
	jq -e -s '.[1].items | map(.item) | sort == ["i3","i7"]' out.ndjson
	jq -e -s '.[2].items | map(.item) | sort == ["i5","i7"]' out.ndjson
	jq -e -s '.[3].items | map(.item) | sort == ["i3","i6"]' out.ndjson
	# Without --items a filter is an error, not an empty list.
	run reco-serve --model m.bin q.ndjson
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *'"code":400'*"--items"* ]]
}

@test "cold start: an unknown user gets context neighbours and trending items; unknown context items are counted" {
	printf '%s\n' '{"user":"stranger","n":3,"context":{"items":["i6","no-such-item"]}}' \
		'{"user":"stranger","n":2}' >q.ndjson
	reco-serve --model m.bin --store p.state --metrics m.prom q.ndjson >out.ndjson
	jq -e -s '.[0].cold == true and .[0].unknown_context == 1' out.ndjson
	jq -e -s '.[0].items[0].reason | IN("cooc", "seq", "next")' out.ndjson
	jq -e -s '(.[1].items | length) == 2 and .[1].cold == true' out.ndjson
	jq -e -s '[.[1].items[].reason] - ["trend","dpop","pop"] == []' out.ndjson
	grep -qx 'reco_serve_unknown_context_items_total 1' m.prom
	grep -qx 'reco_serve_cold_starts_total 2' m.prom
	grep -qx 'reco_serve_requests_total{status="200"} 2' m.prom
}

@test "bad input gets an error object on its own line and the rest is served" {
	{
		printf '{"user":"u1","n":2}\n'
		printf '{"user":"%s"}\n' "$(head -c 300 /dev/zero | tr '\0' x)"
		printf '{"user":"u1","n":-1}\n'
		printf '{"user":"u\xc3"}\n'
		printf '{"user":"u1","n":2,"n":3}\n'
		printf 'x%.0s' $(seq 3000); printf '\n'
		printf '{"user":"u1","n":2}\n'
	} >q.ndjson
	run --separate-stderr reco-serve --model m.bin --max-line 2048 q.ndjson
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 7 ]
	for i in 1 2 3 4; do
		[[ "${lines[$i]}" == *'"error":{"code":400'* ]] || fail "line $i: ${lines[$i]}"
	done
	[[ "${lines[5]}" == *'"error":{"code":413'* ]]
	[[ "${lines[6]}" == *'"items":[{'* ]]
	printf '%s\n' "${lines[@]}" | jq -e -s 'length == 7'
}

@test "a profile is read at request time: a new event shows in the next answer" {
	local ans
	coproc SRV { reco-serve --model m.bin --store p.state 2>/dev/null; }
	echo '{"user":"u5","n":7}' >&"${SRV[1]}"
	read -r ans <&"${SRV[0]}"
	[[ "$ans" == *'"item":"i1"'* ]] || fail "before: $ans"
	echo '{"event_id":"new1","ts":1700000100000,"user":"u5","type":"purchase","item":"i1","qty":1,"price":5,"v":1}' |
		reco-profile --store p.state >/dev/null
	echo '{"user":"u5","n":7}' >&"${SRV[1]}"
	read -r ans <&"${SRV[0]}"
	[[ "$ans" != *'"item":"i1"'* ]] || fail "after: $ans"
	exec {SRV[1]}>&-
	wait "$SRV_PID"
}

@test "impressions: one event per item shown, read by reco-eval --ab" {
	printf '%s\n' '{"id":"q1","user":"u1","n":3,"ts":1700000200000}' \
		'{"id":"q2","user":"u5","n":2,"ts":1700000201000}' >q.ndjson
	reco-serve --model m.bin --variant B=m.bin:50 --impressions imp.ndjson q.ndjson >out.ndjson
	[ "$(nlines imp.ndjson)" -eq 5 ]
	jq -e -s 'all(.type == "impression" and .v == 1 and (.attrs.variant | test("^[AB]$")))' imp.ndjson
	jq -e -s '[.[] | select(.attrs.request == "q1") | .attrs.rank] == ["1","2","3"]' imp.ndjson
	jq -e -s '.[0].ts == 1700000200000 and .[0].user == "u1"' imp.ndjson
	# The same items as the answers, in the same order.
	diff <(jq -r '.items[].item' out.ndjson) <(jq -r .item imp.ndjson)
	reco-ingest imp.ndjson >/dev/null
	run reco-eval --ab imp.ndjson
	[ "$status" -eq 0 ]
}

@test "variants: a stable share of users by hash, each answer says its variant" {
	cp m.bin b.bin
	for i in $(seq 400); do printf '{"user":"user%d","n":1}\n' "$i"; done >q.ndjson
	reco-serve --model m.bin --variant B=b.bin:25 q.ndjson >out1.ndjson
	reco-serve --model m.bin --variant B=b.bin:25 q.ndjson >out2.ndjson
	same_bytes out1.ndjson out2.ndjson
	local nb
	nb=$(jq -r .variant out1.ndjson | grep -c '^B$')
	[ "$nb" -gt 70 ] && [ "$nb" -lt 130 ] || fail "B got $nb of 400"
	reco-serve --model m.bin --control ctl --variant B=b.bin:0 q.ndjson | jq -e -s 'all(.variant == "ctl")'
}

@test "a missing snapshot answers 503 until it appears" {
	echo '{"user":"u1"}' | reco-serve --model not-yet.bin 2>err.txt >out.ndjson
	grep -q '"code":503' out.ndjson
	grep -q 'not-yet.bin' err.txt
}

# ---- HTTP ----

@test "HTTP: GET and POST /recommend, /healthz, /metrics and error statuses" {
	command -v curl >/dev/null || skip "curl is not installed"
	serve_start --model m.bin --store p.state --items "$F/items.csv" --max-request 1024
	run curl -s -w ' %{http_code}' "$URL/recommend?user=u1&n=2&category=shoes&context=i3"
	[[ "$output" == *'"user":"u1"'*'"items":[{'*' 200' ]] || fail "$output"
	run curl -s -w ' %{http_code}' -X POST -H 'Content-Type: application/json' \
		-d '{"user":"u1","n":2,"filter":{"category":"shoes"}}' "$URL/recommend"
	[[ "$output" == *'"items":[{'*' 200' ]] || fail "$output"
	# GET and POST give the same items.
	a=$(curl -s "$URL/recommend?user=u3&n=3&exclude=i6" | jq -c .items)
	b=$(curl -s -X POST -d '{"user":"u3","n":3,"exclude":["i6"]}' "$URL/recommend" | jq -c .items)
	[ "$a" = "$b" ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/recommend?user=u1&n=0")" = 400 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/recommend?user=u1&colour=red")" = 400 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{bad' "$URL/recommend")" = 400 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/recommend?user=%ff")" = 400 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/nowhere")" = 404 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/recommend")" = 405 ]
	head -c 5000 /dev/zero | tr '\0' ' ' >big.json
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary @big.json "$URL/recommend")" = 413 ]
	hdrs=()
	for i in $(seq 80); do hdrs+=(-H "X-H$i: v"); done
	[ "$(curl -s -o /dev/null -w '%{http_code}' "${hdrs[@]}" "$URL/recommend?user=u1")" = 431 ]
	# Still serving.
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/recommend?user=u1")" = 200 ]
	curl -s "$URL/metrics" >m.prom
	grep -q '^# TYPE reco_serve_request_duration_seconds histogram' m.prom
	grep -q '^reco_serve_request_duration_seconds_bucket{le="+Inf"} ' m.prom
	[ "$(awk '$1 == "reco_serve_requests_total{status=\"400\"}" { print $2 }' m.prom)" -eq 4 ]
	[ "$(awk '$1 == "reco_serve_requests_total{status=\"413\"}" { print $2 }' m.prom)" -eq 1 ]
	[ "$(awk '$1 == "reco_serve_requests_total{status=\"431\"}" { print $2 }' m.prom)" -eq 1 ]
	# The five answers of /recommend; /healthz and the scrapes are not
	# requests.
	curl -s "$URL/metrics" >/dev/null
	curl -s "$URL/metrics" >m.prom
	[ "$(awk '$1 == "reco_serve_requests_total{status=\"200\"}" { print $2 }' m.prom)" -eq 5 ]
	# Answers keep the connection open: three requests, one connection.
	curl -sv "$URL/recommend?user=u1&n=1" "$URL/recommend?user=u2&n=1" --next \
		-X POST -d '{"user":"u3","n":1}' "$URL/recommend" >ka.out 2>ka.err
	[ "$(grep -c '"items"' ka.out)" -eq 3 ]
	[ "$(grep -c 'Re-using existing connection' ka.err)" -eq 2 ]
	! grep -qi '^< Connection: close' ka.err
}

@test "HTTP: /metrics and --metrics: one # TYPE a family, label values escaped, promtool's lint clean" {
	command -v curl >/dev/null || skip "curl is not installed"
	# A variant whose name needs escaping, and one without a snapshot yet.
	serve_start --model m.bin --store p.state --metrics m.prom \
		--variant 'q"\x=m.bin:30' --variant 'late=late.bin:20'
	curl -s "$URL/metrics" >scrape.txt
	serve_stop
	local f
	for f in scrape.txt m.prom; do
		grep -qxF 'reco_serve_variant_requests_total{variant="q\"\\x"} 0' "$f" || fail "$f: label not escaped"
		grep -qxF 'reco_serve_variant_requests_total{variant="late"} 0' "$f"
		grep -q '^reco_serve_model_items{variant="A",version="[0-9a-f]\{8\}"} [1-9]' "$f"
		! grep -q '^reco_serve_model_items{variant="late"' "$f"
		# Every family once, under one # HELP and one # TYPE.
		[ -z "$(sed -n 's/^# TYPE \([^ ]*\) .*/\1/p' "$f" | sort | uniq -d)" ]
		[ -z "$(sed -n 's/^# HELP \([^ ]*\) .*/\1/p' "$f" | sort | uniq -d)" ]
		grep -q '^reco_serve_request_duration_seconds_bucket{le="0.00025"} 0$' "$f"
		grep -q '^reco_serve_request_duration_seconds_count 0$' "$f"
		grep -q '^reco_serve_request_duration_seconds_sum 0$' "$f"
		if command -v promtool >/dev/null; then
			promtool check metrics <"$f" >lint.out 2>&1 || fail "$f: $(cat lint.out)"
			[ ! -s lint.out ] || fail "$f: $(cat lint.out)"
		fi
	done
	# The file is the scrape, but for the scrape in flight.
	diff <(grep -v '^reco_serve_inflight ' scrape.txt) <(grep -v '^reco_serve_inflight ' m.prom)
}

@test "HTTP: a slow body gets 408, and beyond --max-inflight a fast 503" {
	command -v curl >/dev/null || skip "curl is not installed"
	serve_start --model m.bin --timeout 1 --max-inflight 1
	local port=${URL##*:} st
	# A body that never completes holds the only slot...
	exec {slow}<>/dev/tcp/127.0.0.1/"$port"
	printf 'POST /recommend HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n{"user":' >&"$slow"
	sleep 0.2
	# ...so the next request is refused at once.
	st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/recommend?user=u1")
	[ "$st" = 503 ] || fail "busy: $st"
	# The body trickles in, never idle for --timeout but slower than it
	# in all: 408 at the deadline, without waiting for the rest.
	trap '' PIPE
	for i in 1 2 3 4 5 6; do
		sleep 0.25
		printf ' ' >&"$slow" 2>/dev/null || break
	done
	read -r -t 3 status_line <&"$slow" || true
	exec {slow}>&-
	[[ "$status_line" == "HTTP/1.1 408"* ]] || fail "slow: $status_line"
	sleep 0.1
	st=$(curl -s -o /dev/null -w '%{http_code}' "$URL/recommend?user=u1")
	[ "$st" = 200 ] || fail "after: $st"
	[ "$(metric_of reco_serve_overload_total)" -eq 1 ]
}

@test "HTTP: a replaced snapshot is swapped in; a corrupt one is refused and the old kept; SIGHUP reloads" {
	command -v curl >/dev/null || skip "curl is not installed"
	serve_start --model m.bin --reload-every 100ms
	local v1 v2
	v1=$(curl -s "$URL/recommend?user=u1" | jq -r .model)
	# A new snapshot, written atomically by reco-train.
	head -20 "$F/events.ndjson" | reco-train -o m.bin
	for i in $(seq 50); do
		v2=$(curl -s "$URL/recommend?user=u1" | jq -r .model)
		[ "$v2" != "$v1" ] && break
		sleep 0.05
	done
	[ "$v2" != "$v1" ] || fail "not reloaded"
	[ "$(metric_of reco_serve_reloads_total)" -eq 1 ]
	# A corrupt file renamed over it: refused, the old one kept.
	head -c 1000 m.bin >tmp.bin && mv tmp.bin m.bin
	for i in $(seq 50); do
		[ "$(metric_of reco_serve_reload_failures_total)" = 1 ] && break
		sleep 0.05
	done
	[ "$(metric_of reco_serve_reload_failures_total)" -eq 1 ]
	[ "$(curl -s "$URL/recommend?user=u1" | jq -r .model)" = "$v2" ]
	grep -q 'm.bin.*keeping snapshot' serve.err
	# SIGHUP: a reload now (of a good file again).
	reco-train -o m.bin <"$F/events.ndjson"
	kill -HUP "$SERVE_PID"
	for i in $(seq 50); do
		[ "$(curl -s "$URL/recommend?user=u1" | jq -r .model)" = "$v1" ] && break
		sleep 0.05
	done
	[ "$(curl -s "$URL/recommend?user=u1" | jq -r .model)" = "$v1" ]
}

@test "HTTP: a reload under load drops no request" {
	command -v curl >/dev/null || skip "curl is not installed"
	serve_start --model m.bin --reload-every 50ms
	for i in $(seq 200); do echo "url = \"$URL/recommend?user=u$((i % 9))&n=3\""; done >urls.txt
	curl -s -K urls.txt -o /dev/null -w '%{http_code}\n' >codes.txt &
	local cpid=$!
	for i in 1 2 3 4 5; do
		reco-train -o m.bin <"$F/events.ndjson" --seed "$i"
		sleep 0.05
	done
	wait "$cpid"
	[ "$(grep -c '^200$' codes.txt)" -eq 200 ] || { sort codes.txt | uniq -c; fail "dropped"; }
}

@test "places 18 to 20 go to the walk's items that the places before do not hold" {
	reco-gen --regime sessions --events 20000 --seed 2 >ev.ndjson
	reco-train -o g.bin ev.ndjson
	reco-profile --store g.state ev.ndjson >/dev/null
	jq -r '.user' ev.ndjson | awk '!seen[$0]++' | head -200 >users.txt
	awk '{ printf "{\"user\":\"%s\",\"n\":%d}\n", $1, NR % 2 ? 20 : 30 }' users.txt >q30.ndjson
	awk '{ printf "{\"user\":\"%s\",\"n\":20}\n", $1 }' users.txt >q20.ndjson
	reco-serve --model g.bin --store g.state q30.ndjson >a30.ndjson
	reco-serve --model g.bin --store g.state q20.ndjson >a20.ndjson
	# No list holds an item twice; scores do not rise along a list.
	jq -e -s 'all(.[]; ([.items[]?.item] | length) == ([.items[]?.item] | unique | length))' a30.ndjson
	jq -e -s 'all(.[]; [.items[]?.score] as $s | all(range(1; $s | length); $s[.] <= $s[. - 1]))' a30.ndjson
	# Places 18 to 20 are mostly the walk's; with a fixed blend that
	# names no tail, none is.
	local walked
	walked=$(jq -s '[.[] | .items[17:20][]? | select(.reason == "walk")] | length' a20.ndjson)
	[ "$walked" -ge 300 ] || fail "places 18-20 from the walk: $walked of 600"
	reco-serve --model g.bin --store g.state --weights cooc=1 q20.ndjson >c.ndjson
	jq -e -s '[.[] | .items[]? | select(.reason == "walk")] | length == 0' c.ndjson
	# cooc=1,tail=3: cooc's first 17, then the walk's.
	reco-serve --model g.bin --store g.state --weights cooc=1,tail=3 q20.ndjson >ct.ndjson
	jq -s -c '.[] | [.items[]?.item][:17]' c.ndjson >c17
	jq -s -c '.[] | [.items[]?.item][:17]' ct.ndjson >ct17
	same_bytes c17 ct17
	jq -e -s '[.[] | .items[17:20][]? | select(.reason == "walk")] | length >= 300' ct.ndjson
	run reco-serve --model g.bin --weights cooc=1,tail=-1 q20.ndjson
	[ "$status" -eq 2 ]
	[[ "$output" == *"bad tail"* ]]
}

@test "the index of a snapshot changes the cost, not the answers; the 8-bit factors are the snapshot's" {
	reco-gen --events 30000 --users 600 --items 3000 --items-out items.csv >ev.ndjson
	reco-train -o g.bin ev.ndjson
	reco-profile --store g.state ev.ndjson >/dev/null
	# 1000 requests: known and unknown users, excludes, filters that leave many items
	# and filters that leave few.
	awk 'BEGIN {
		srand(3)
		for (k = 0; k < 1000; k++) {
			u = (k % 7 == 6) ? "nobody" k : "u" int(rand() * 600 + 1)
			f = ""
			if (k % 5 == 1) f = ",\"filter\":{\"category\":\"apparel.shoes\"}"
			if (k % 5 == 2) f = ",\"filter\":{\"price_max\":20}"
			if (k % 5 == 3) f = ",\"exclude\":[\"i" int(rand() * 3000 + 1) "\",\"i2\"]"
			if (k % 5 == 4) f = ",\"context\":{\"items\":[\"i" int(rand() * 3000 + 1) "\"]}"
			printf "{\"user\":\"%s\",\"n\":%d%s}\n", u, k % 3 == 0 ? 50 : 10, f
		}
	}' >q.ndjson
	reco-serve --model g.bin --store g.state --items items.csv --index-depth 0 q.ndjson >full.ndjson
	reco-serve --model g.bin --store g.state --items items.csv q.ndjson >ix.ndjson
	reco-serve --model g.bin --store g.state --items items.csv --index-depth 40 q.ndjson >short.ndjson
	same_bytes full.ndjson ix.ndjson
	same_bytes full.ndjson short.ndjson
	# With mf in the blend, its 8-bit pass and exact rescoring give the
	# full pass's lists.
	local w
	for w in mf=1 mf=0.3,cooc=1,trend=0.05; do
		reco-serve --model g.bin --store g.state --items items.csv --weights "$w" --index-depth 0 q.ndjson >full.ndjson
		reco-serve --model g.bin --store g.state --items items.csv --weights "$w" q.ndjson >ix.ndjson
		same_bytes full.ndjson ix.ndjson
		jq -e -s '[.[] | .items[]? | select(.reason == "mf")] | length >= 500' ix.ndjson >/dev/null ||
			fail "mf gave too few items with --weights $w"
	done
	# The 8-bit factors are the snapshot's own (a section of 16-item
	# blocks: 16 rows of 32 bytes and 16 scales), mapped, not a copy.
	local items
	items=$(reco-train --inspect g.bin | sed -n 's/^items *\([0-9]*\) .*/\1/p')
	reco-train --inspect g.bin | grep -q "^  item_factors8 .* size *$(( (items + 15) / 16 * 16 * (32 + 4) )) " ||
		fail "no item_factors8 section of $items items: $(reco-train --inspect g.bin | grep factors)"
	# A snapshot of version 4 has none: reco-serve makes them, with the
	# same answers.
	cp "$(fixture model/v4.bin)" v4.bin
	for k in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
		printf '{"user":"u%d","n":15}\n' "$k"
	done >q4.ndjson
	reco-serve --model v4.bin --weights mf=1 --index-depth 0 q4.ndjson >full4.ndjson
	reco-serve --model v4.bin --weights mf=1 q4.ndjson >ix4.ndjson
	same_bytes full4.ndjson ix4.ndjson
	[ "$(jq -s '[.[] | .items[]? | select(.reason == "mf")] | length' ix4.ndjson)" -ge 100 ]
	# The requests were answered, most with a full list.
	[ "$(jq -s '[.[] | select(.items and (.items | length) >= 10)] | length' full.ndjson)" -ge 750 ]
	jq -e -s '[.[] | .items[]?.reason] | unique | length >= 3' full.ndjson
	run reco-serve --model g.bin --index-depth -1 q.ndjson
	[ "$status" -eq 2 ]
}

@test "--schema prints the request and the response schema; the answers follow it" {
	reco-serve --schema >req.json
	jq -e '."$id" == "reco.Request/1"' req.json
	reco-serve --schema=request | same_bytes req.json /dev/stdin
	reco-serve --schema=response >resp.json
	jq -e '."$id" == "reco.Response/1"' resp.json
	run reco-serve --schema=avro
	[ "$status" -eq 2 ]
	# Every answer and error of the fixture has the keys the schema
	# names, the required ones, and items of the documented shape.
	reco-serve --model m.bin --store p.state --items "$F/items.csv" \
		"$F/requests.ndjson" >out.ndjson
	jq -e -s --slurpfile s resp.json '
		($s[0].properties | keys) as $keys
		| ($s[0].properties.items.items.properties | keys) as $ikeys
		| ($s[0].properties.items.items.properties.reason.enum) as $reasons
		| all(.[]; ((keys - $keys) == []) and has("v")
			and ((has("items") and has("user") and has("model") and has("variant") and has("id"))
			     or has("error"))
			and ([.items[]? | ((keys - $ikeys) == []) and (.reason as $r | $reasons | index($r) != null)] | all))' out.ndjson
	# A request of every documented field is accepted.
	jq -e '.properties | has("user") and has("n") and has("context") and has("exclude") and has("filter")' req.json
}

@test "HTTP with Redis: each thread asks over its own connection; a new event shows in the next answer" {
	redis_start
	reco-profile --store "$REDIS_URL" <"$F/events.ndjson" >/dev/null
	serve_start --model m.bin --store "$REDIS_URL" --threads 3
	# The same answers as from the embedded store.
	for u in u1 u2 u3 u5; do
		a=$(curl -s "$URL/recommend?user=$u&n=7" | jq -c .items)
		b=$(echo "{\"user\":\"$u\",\"n\":7}" | reco-serve --model m.bin --store p.state | jq -c .items)
		[ "$a" = "$b" ] || fail "$u: $a != $b"
	done
	[[ "$(curl -s "$URL/recommend?user=u5&n=7")" == *'"item":"i1"'* ]]
	echo '{"event_id":"new1","ts":1700000100000,"user":"u5","type":"purchase","item":"i1","qty":1,"price":5,"v":1}' |
		reco-profile --store "$REDIS_URL" >/dev/null
	[[ "$(curl -s "$URL/recommend?user=u5&n=7")" != *'"item":"i1"'* ]]
	# Requests at once from many connections: the threads have their own
	# connections (the first one, and one per thread that served).
	seq 60 | xargs -P 8 -I{} curl -s -o /dev/null "$URL/recommend?user=u{}&n=3"
	[ "$(rcli client list | wc -l)" -ge 3 ]
	[ "$(metric_of 'reco_serve_store_errors_total')" -eq 0 ]
	[ "$(metric_of 'reco_serve_requests_total{status="200"}')" -ge 66 ]
}
