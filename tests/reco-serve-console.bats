#!/usr/bin/env bats
# reco-serve-console.bats: reco-serve --console: the user, item and live views driven in headless Chromium, checked against /recommend and reco-profile --get; the token; limits and errors of its endpoints.

load helpers
load helpers-serve

bats_require_minimum_version 1.5.0

setup() {
	common_setup
	serve_fixture
}

teardown() {
	serve_stop
}

# browse USER ITEM [ARGS...]: what the console shows in headless Chromium
# (tests/tools/console-check.py), as JSON in shown.json; screenshots go to
# the test's directory.
browse() {
	# Chromium's profile goes under the test's directory, removed with it.
	TMPDIR="$BATS_TEST_TMPDIR" /usr/bin/python3 "$BATS_TEST_DIRNAME/tools/console-check.py" "$URL" "$@" \
		--shots "$PWD" >shown.json || fail "console-check failed"
}

@test "the user view shows what /recommend answers and the profile reco-profile --get prints" {
	serve_start --model m.bin --store p.state --items "$F/items.csv" --console
	browse u1 i1
	curl -sf "$URL/recommend?user=u1&n=10" >answer.json
	# The same items, scores and reasons, in the same order.
	jq -c '[.items[] | [.item, .score, .reason]]' answer.json >want
	jq -c '.recs' shown.json >got
	same_bytes want got
	[ "$(jq length got)" -ge 3 ] || fail "too few recommendations: $(cat got)"
	# The profile: the history newest first, the purchases, the counts.
	reco-profile --get u1 --store p.state >profile.json
	jq -c '[.history | reverse | .[].item]' profile.json >want
	jq -c '.history' shown.json >got
	same_bytes want got
	jq -c '[.purchases[].item]' profile.json >want
	jq -c '.purchases' shown.json >got
	same_bytes want got
	[ "$(jq .profile_events shown.json)" = "$(jq .events profile.json)" ]
	[ "$(jq -r .counts shown.json)" = "$(jq -r '.counts | to_entries | map("\(.key) \(.value)") | join(", ")' profile.json)" ]
	# Each source alone, as /recommend with that source's weight only.
	local s
	for s in cooc seq sknn mf; do
		reco-serve --model m.bin --store p.state --weights "$s=1" \
			<<<'{"user":"u1","n":10}' | jq -c '[.items[].item]' >want
		jq -c --arg s "$s" '.sources[$s]' shown.json >got
		same_bytes want got
	done
	[ -s console-user.png ]
}

@test "the item view shows the item's attributes, neighbours and nearest items" {
	serve_start --model m.bin --items "$F/items.csv" --console
	browse u1 i1
	jq -e '.item.attrs == {"category":"shoes","brand":"acme","price":"50","stock":"3"}' shown.json >/dev/null ||
		fail "attrs: $(jq -c .item.attrs shown.json)"
	reco-train --inspect m.bin --item i1 >inspect.txt
	curl -sf "$URL/console/api/item?item=i1" >item.json
	jq -c '[.item.cooc[].item]' item.json >want
	jq -c '.item.cooc' shown.json >got
	same_bytes want got
	[ "$(jq '.item.cooc | length' shown.json)" -ge 1 ]
	[ "$(jq '.item.factors | length' shown.json)" -ge 1 ]
	# The neighbours are the model's: the first one is the one
	# reco-train --inspect lists first.
	first=$(jq -r '.item.cooc[0]' shown.json)
	grep -q "$first" inspect.txt || fail "$first not in: $(cat inspect.txt)"
	[ -s console-item.png ]
}

@test "the live view plots requests, latency and the snapshot's age after a burst of requests" {
	serve_start --model m.bin --store p.state --console
	browse u1 i1
	for s in rps p50 p99 age; do
		[ "$(jq --arg s $s '.live[$s].points' shown.json)" -ge 3 ] || fail "$s: $(jq -c .live shown.json)"
	done
	[ "$(jq '.live.rps.raised' shown.json)" -ge 1 ] || fail "no requests drawn: $(jq -c .live shown.json)"
	[ "$(jq '.live.p99.raised' shown.json)" -ge 1 ] || fail "no latency drawn: $(jq -c .live shown.json)"
	[ "$(jq '.live["e5"].raised' shown.json)" -eq 0 ]
	[ "$(jq -c .variants shown.json)" = '["A"]' ]
	# The console's own requests are not counted as requests.
	[ "$(metric_of 'reco_serve_requests_total{status="200"}')" -eq 300 ]
	[ -s console-live.png ]
}

@test "with --console-token, the console needs the token; the page sets it as a cookie" {
	printf 'sesame-0123456789-abcdef\n' >token
	serve_start --model m.bin --store p.state --console --console-token token
	[ "$(curl -s -o out.json -w '%{http_code}' "$URL/console/")" = 401 ]
	jq -e '.error.code == 401' out.json >/dev/null
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/console/api/user?user=u1")" = 401 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer wrong-token-0123456789' "$URL/console/api/live")" = 401 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/console/?token=wrong")" = 401 ]
	[ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer sesame-0123456789-abcdef' "$URL/console/api/user?user=u1")" = 200 ]
	curl -s -D headers -o page.html "$URL/console/?token=sesame-0123456789-abcdef"
	grep -qi '^set-cookie: reco_console=sesame-0123456789-abcdef; Path=/console; HttpOnly; SameSite=Strict' headers
	grep -qi '^cache-control: no-store' headers
	grep -q '<title>reco console</title>' page.html
	[ "$(curl -s -o /dev/null -w '%{http_code}' -b reco_console=sesame-0123456789-abcdef "$URL/console/app.js")" = 200 ]
	# /recommend does not ask for it.
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/recommend?user=u1")" = 200 ]
	# And the browser gets in through the token URL.
	browse u1 i1 --token sesame-0123456789-abcdef
	[ "$(jq '.recs | length' shown.json)" -ge 1 ]
}

@test "a console on a non-loopback address needs a token; bad tokens and options are refused before listening" {
	run --separate-stderr reco-serve --model m.bin --listen 0.0.0.0:0 --console
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--console: 0.0.0.0:0 is not a loopback address, and profiles are personal data: give --console-token FILE"* ]] || fail "$stderr"
	run --separate-stderr reco-serve --model m.bin --listen '[::]:0' --console
	[ "$status" -eq 2 ]
	run --separate-stderr reco-serve --model m.bin --console </dev/null
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--console: the console is served over HTTP (--listen)"* ]]
	run --separate-stderr reco-serve --model m.bin --listen 127.0.0.1:0 --console-token token
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--console-token: the console is off (--console)"* ]]
	printf 'short\n' >short
	run --separate-stderr reco-serve --model m.bin --listen 127.0.0.1:0 --console --console-token short
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"short: the console token must be at least 16 characters"* ]]
	run --separate-stderr reco-serve --model m.bin --listen 127.0.0.1:0 --console --console-token no-such-file
	[ "$status" -eq 3 ]
	[[ "$stderr" == *"no-such-file"* ]]
}

@test "the console's endpoints: off without --console, GET only, JSON errors, limits" {
	serve_start --model m.bin --store p.state --items "$F/items.csv"
	[ "$(curl -s -o out.json -w '%{http_code}' "$URL/console/")" = 404 ]
	serve_stop
	serve_start --model m.bin --store p.state --items "$F/items.csv" --console --max-id 8
	[ "$(curl -s -o out.json -w '%{http_code}' -X POST "$URL/console/api/live")" = 405 ]
	jq -e '.error.code == 405' out.json >/dev/null
	[ "$(curl -s -o out.json -w '%{http_code}' "$URL/console/api/user")" = 400 ]
	jq -e '.error.message | startswith("user:")' out.json >/dev/null
	[ "$(curl -s -o out.json -w '%{http_code}' "$URL/console/api/user?user=u1&n=0")" = 400 ]
	[ "$(curl -s -o out.json -w '%{http_code}' "$URL/console/api/user?user=a-very-long-user-id")" = 400 ]
	[ "$(curl -s -o out.json -w '%{http_code}' "$URL/console/api/item?item=nope")" = 404 ]
	jq -e '.error.code == 404' out.json >/dev/null
	[ "$(curl -s -o out.json -w '%{http_code}' "$URL/console/api/item?item=i1&variant=Z")" = 404 ]
	[ "$(curl -s -o out.json -w '%{http_code}' "$URL/console/nothing")" = 404 ]
	# An unknown user is a cold start, as on /recommend.
	curl -sf "$URL/console/api/user?user=stranger" >out.json
	jq -e '.answer.cold == true and .profile == null and .profile_status == "none"' out.json >/dev/null
	# A control character in the URL is refused as on /recommend.
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/console/api/user?user=a%00b")" = 400 ]
	# Nothing the console asks is counted as a request.
	[ "$(metric_of 'reco_serve_requests_total{status="200"}')" -eq 0 ]
}
