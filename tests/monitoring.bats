#!/usr/bin/env bats
# monitoring.bats: examples/monitoring: the Prometheus config and rules pass promtool and their unit tests, every metric they and the Grafana dashboard name is one the tools export, and the dashboard is sound.

load helpers
load helpers-serve

bats_require_minimum_version 1.5.0

setup() {
	common_setup
	MON=$RECO_ROOT/examples/monitoring
	command -v promtool >/dev/null || fail "promtool is missing (Debian package prometheus: make deps)"
}

teardown() {
	serve_stop
}

# Print the PromQL expressions of a rules file, one a line (a folded
# "expr: >" block joined into one line).
rule_exprs() {
	awk '
	function flush() { if (e != "") print e; e = ""; inexpr = 0 }
	{
		match($0, /^ */); ind = RLENGTH
		if (inexpr && (ind > eind || $0 ~ /^ *$/)) { sub(/^ */, ""); e = e " " $0; next }
		if (inexpr) flush()
		if ($0 ~ /^ *expr:/) {
			eind = ind; e = $0; sub(/^ *expr: */, "", e)
			if (e == ">" || e == ">-" || e == "|") { e = " "; inexpr = 1 } else flush()
		}
	}
	END { flush() }' "$1"
}

# Print the PromQL expressions of the dashboard (targets and variables).
dashboard_exprs() {
	jq -r '(.. | objects | select(has("expr")) | .expr),
		(.templating.list[]? | .definition // empty)' "$1"
}

# Print the metric names (reco_*, node_*) and recorded names (reco:*)
# that expressions on standard input use, once each.
names_used() {
	# Drop quoted strings first: label values are not names.
	sed 's/"[^"]*"//g; s/`[^`]*`//g' |
		grep -oE '(^|[^a-zA-Z0-9_:])(reco|node)[_:][a-zA-Z0-9_:]*' |
		sed 's/^[^a-z]//' | sort -u
}

# ---- (a) promtool checks the configuration and the rules ----

@test "promtool: prometheus.yml and alerts.yml are valid" {
	run promtool check config "$MON/prometheus.yml"
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" >&2; false; }
	[[ "$output" == *"1 rule files found"* ]]
	run promtool check rules "$MON/alerts.yml"
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" >&2; false; }
}

@test "every alert has a for:, a severity and a summary and description" {
	run awk '
	function check() {
		if (name == "") return
		if (!f) { print name ": no for:"; bad = 1 }
		if (!s) { print name ": no severity: warning|critical"; bad = 1 }
		if (!su) { print name ": no summary"; bad = 1 }
		if (!d) { print name ": no description"; bad = 1 }
		n++
	}
	/^ *- (alert|record):|^ *- name:/ { check(); name = ""; f = s = su = d = 0 }
	/^ *- alert:/ { name = $3 }
	/^ *for: *[0-9]+[smh]/ { f = 1 }
	/^ *severity: *(warning|critical) *$/ { s = 1 }
	/^ *summary: *"/ { su = 1 }
	/^ *description: *>-/ { d = 1 }
	END { check(); print n " alerts"; exit bad }' "$MON/alerts.yml"
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" >&2; false; }
	# The alerts the deployment needs, by name.
	local a
	for a in RecoServeLatencyHigh RecoServeErrors RecoServeOverload \
		RecoServeSnapshotStale RecoModelLagsStream RecoServeReloadFailed \
		RecoInputStopped RecoInputLow RecoRejectsHigh RecoRejectsCritical \
		RecoMetricsFileStale RecoTargetDown RecoServeNoSnapshot; do
		grep -q "^ *- alert: $a\$" "$MON/alerts.yml" || fail "alerts.yml: no alert $a"
	done
}

# ---- (b) the rules' unit tests ----

@test "promtool test rules: every alert fires when it should and stays silent when it should not" {
	run promtool test rules "$MON/alerts.test.yml"
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" >&2; false; }
	[[ "$output" == *SUCCESS* ]]
	# Every alert of alerts.yml has a case where it fires and one where
	# it does not.
	local alerts a fires silent
	alerts=$(sed -n 's/^ *- alert: *//p' "$MON/alerts.yml")
	[ "$(printf '%s\n' "$alerts" | wc -l)" -ge 13 ]
	fires=$(awk '/alertname:/ { a = $2 } /exp_alerts: *$/ { print a }' "$MON/alerts.test.yml" | sort -u)
	silent=$(awk '/alertname:/ { a = $2 } /exp_alerts: *\[\] *$/ { print a }' "$MON/alerts.test.yml" | sort -u)
	for a in $alerts; do
		grep -qx "$a" <<<"$fires" || fail "alerts.test.yml: no case where $a fires"
		grep -qx "$a" <<<"$silent" || fail "alerts.test.yml: no case where $a stays silent"
	done
}

# ---- (c) the names used are the names the tools export ----

@test "every metric in alerts.yml and the dashboard is exported by the tools" {
	local l
	set -o pipefail
	junk() { cat; echo 'not json'; }
	# The pipeline, with planted faults and a bad line into each tool, so
	# that the by-reason counters (made at the first reject or drop) exist.
	# reco-gen first: reco-enrich reads the catalogue it writes.
	reco-gen --seed 3 --events 3000 --users 200 --items 300 --dup-rate 0.05 \
		--late-rate 0.02 --bot-users 0.05 --malformed-rate 0.02 \
		--items-out items.csv --users-out users.csv >events.ndjson
	reco-ingest -q --metrics reco-ingest.prom <events.ndjson | junk |
		reco-clean -q --metrics reco-clean.prom | junk |
		reco-enrich -q --items items.csv --users users.csv --metrics reco-enrich.prom |
		tee enriched.ndjson | junk |
		reco-profile -q --store p.state --metrics reco-profile.prom >/dev/null
	junk <enriched.ndjson | reco-train -q -o m.bin --metrics reco-train.prom
	# The drops the pipeline above does not make: a replayed position
	# (reco-profile), an access-log line with a 404 (reco-ingest).
	l=$(head -1 enriched.ndjson | jq -c '.source = "file:t.ndjson:1"')
	printf '%s\n' "$l" "$l" | reco-profile -q --metrics reco-profile-replay.prom >/dev/null
	reco-gen --format access-log --events 1 | sed 's/" 200 /" 404 /' |
		reco-ingest -q --from access-log --metrics reco-ingest-al.prom >/dev/null
	grep -q '^reco_profile_records_dropped_total{reason="replayed"} 1$' reco-profile-replay.prom
	grep -q '^reco_ingest_records_dropped_total{reason="http_status"} 1$' reco-ingest-al.prom

	serve_start --model m.bin --store p.state --metrics reco-serve.prom
	[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"user":"u1","n":3}' "$URL/recommend")" = 200 ]
	curl -sf "$URL/metrics" >serve-metrics.txt
	serve_stop
	no_sanitizer_report "$(cat serve.err)"
	[ -s reco-serve.prom ]

	# The names exported: every sample's name (histograms: _bucket, _sum
	# and _count) and every # TYPE, plus node_exporter's that the rules use.
	{
		cat ./*.prom serve-metrics.txt | grep -v '^#' | sed 's/[{ ].*//'
		cat ./*.prom serve-metrics.txt | sed -n 's/^# TYPE \([^ ]*\) .*/\1/p'
		printf '%s\n' node_textfile_mtime_seconds node_textfile_scrape_error
	} | sort -u >exported
	grep -qx reco_serve_request_duration_seconds_bucket exported
	grep -qx reco_clean_watermark_seconds exported
	# What every tool exports beside its own: the version and the start.
	grep -qx reco_build_info exported
	grep -qx process_start_time_seconds exported
	local f
	for f in ./*.prom serve-metrics.txt; do
		grep -q "^reco_build_info{tool=\"[a-z_]*\",version=\"$(reco-serve --version | sed 's/.* //')\"} 1$" "$f" ||
			fail "$f: no reco_build_info"
		grep -Eq '^process_start_time_seconds [0-9]{10}\.[0-9]{3}$' "$f" || fail "$f: no process_start_time_seconds"
		# The text format as Prometheus parses it, and its lint clean.
		promtool check metrics <"$f" >lint.out 2>&1 || fail "$f: $(cat lint.out)"
		[ ! -s lint.out ] || fail "$f: $(cat lint.out)"
	done

	# The names recorded by the rules.
	sed -n 's/^ *- record: *//p' "$MON/alerts.yml" | sort -u >recorded
	[ "$(wc -l <recorded)" -ge 8 ]

	rule_exprs "$MON/alerts.yml" >rules.exprs
	dashboard_exprs "$MON/grafana-dashboard.json" >dash.exprs
	[ "$(grep -c . rules.exprs)" -ge 50 ] || fail "too few expressions found in alerts.yml"
	names_used <rules.exprs >rules.names
	names_used <dash.exprs >dash.names
	# The extraction finds what it must (so the check below is not vacuous).
	[ "$(grep -c '^reco_' rules.names)" -ge 30 ]
	[ "$(grep -c '^reco_' dash.names)" -ge 30 ]
	grep -qx reco_serve_request_duration_seconds_bucket dash.names
	grep -qx node_textfile_mtime_seconds rules.names

	local n missing=
	for n in $(cat rules.names dash.names | sort -u); do
		case "$n" in
		reco:*) grep -qx "$n" recorded || missing="$missing $n(not recorded)" ;;
		*) grep -qx "$n" exported || missing="$missing $n" ;;
		esac
	done
	[ -z "$missing" ] || fail "names used but not exported:$missing"
	# Every recorded name is used by an alert or the dashboard.
	for n in $(cat recorded); do
		grep -qx "$n" rules.names || grep -qx "$n" dash.names ||
			fail "recorded but unused: $n"
	done
}

# ---- (d) the dashboard ----

@test "the Grafana dashboard is valid JSON with the expected panels" {
	local d=$MON/grafana-dashboard.json t
	jq -e . "$d" >/dev/null
	jq -e '.schemaVersion >= 36' "$d" >/dev/null
	jq -e '.__inputs | map(select(.name == "DS_PROMETHEUS" and .pluginId == "prometheus")) | length == 1' "$d" >/dev/null
	# Panel ids are unique; every graph reads ${DS_PROMETHEUS} and has
	# queries, none empty.
	jq -e '[.panels[].id] | length == (unique | length)' "$d" >/dev/null
	run jq -r '.panels[] | select(.type != "row") |
		select(.datasource.uid != "${DS_PROMETHEUS}" or (.targets | length) == 0 or
			any(.targets[]; (.expr // "") == "" or .datasource.uid != "${DS_PROMETHEUS}")) | .title' "$d"
	[ "$status" -eq 0 ] && [ -z "$output" ] || fail "panels without a proper query: $output"
	# No two panels overlap on the grid.
	run jq -r '[.panels[].gridPos] as $g | range(0; $g | length) as $i | range($i + 1; $g | length) as $j |
		select($g[$i].x < $g[$j].x + $g[$j].w and $g[$j].x < $g[$i].x + $g[$i].w and
			$g[$i].y < $g[$j].y + $g[$j].h and $g[$j].y < $g[$i].y + $g[$i].h) | "\($i) \($j)"' "$d"
	[ -z "$output" ] || fail "overlapping panels: $output"
	for t in "Events in per tool" "Events out per tool" "Dropped by reason" \
		"Rejected by reason" "Requests/s by status" "Latency p50 / p99 / p99.9" \
		"Inflight" "Snapshot age" "Reloads" "Profile updates and batches" \
		"Store cache (Redis)" "Training rates" "Users and items in the model"; do
		jq -e --arg t "$t" 'any(.panels[]; .title == $t)' "$d" >/dev/null ||
			fail "no panel \"$t\""
	done
	# The latency panel asks for the three quantiles.
	run jq -r '.panels[] | select(.title == "Latency p50 / p99 / p99.9") | .targets[].expr' "$d"
	[[ "$output" == *"histogram_quantile(0.5,"* ]]
	[[ "$output" == *"histogram_quantile(0.99,"* ]]
	[[ "$output" == *"histogram_quantile(0.999,"* ]]
	# Every query parses: promtool checks them as recording rules (with
	# the dashboard's variable replaced by a regular expression).
	{
		echo 'groups:'
		echo '  - name: dashboard'
		echo '    rules:'
		jq -r '.panels[] | select(.type != "row") | .targets[].expr' "$d" |
			sed 's/\$serve/.*/g' |
			jq -R -n -r '[inputs] | to_entries[] |
				"      - record: dashboard:expr_\(.key)\n        expr: \(.value | tojson)"'
	} >dash-rules.yml
	run promtool check rules dash-rules.yml
	[ "$status" -eq 0 ] || { printf '%s\n' "$output" >&2; false; }
	[[ "$output" == *"SUCCESS: "[1-9]*" rules found"* ]]
}
