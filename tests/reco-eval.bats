#!/usr/bin/env bats
# reco-eval.bats: reco-eval: metrics checked by hand, factorisation against popularity with and without planted structure, determinism, A/B numbers.

load helpers

bats_require_minimum_version 1.5.0

# Print field F of model M from a --json report in file J.
metric_of() {
	jq -r --arg m "$2" --arg f "$3" '.models[] | select(.model == $m) | .[$f]' "$1"
}

# Succeed if a >= b + margin (decimal numbers).
at_least() {
	awk -v a="$1" -v b="$2" -v d="$3" 'BEGIN { exit !(a >= b + d) }' ||
		fail "$1 is not at least $2 + $3"
}

# Succeed if |a - b| < 1e-6.
near() {
	awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-6) }' ||
		fail "$1 is not $2"
}

# ---- the contract ----

@test "the tool contract: help, version, bad options, files, stdin, full disk" {
	check_contract reco-eval
}

@test "usage errors exit 2" {
	local bad
	for bad in "--models pop,teleport" "--models pop,pop" "--models ," \
		"--weights mf" "--weights mf=x" "--weights nope=1" "--weights mf=-1" \
		"--eval-types view,teleport" "--window later" "--max-pending 0" \
		"--dim 0" "-O avro"; do
		# shellcheck disable=SC2086
		run --separate-stderr reco-eval $bad </dev/null
		[ "$status" -eq 2 ] || fail "$bad: status $status"
		[[ "$stderr" == *"reco-eval: "*"--help"* ]] || fail "$bad: $stderr"
		[ -z "$output" ]
	done
}

# ---- the measures, by hand ----

# eval-small.ndjson: u1 i1, u2 i1, u2 i2, u1 i2, u3 i3, u1 i3, u1 i3, u2 i1.
# Evaluated: u2 i2 (history i1), u1 i2 (i1), u1 i3 (i2, i1), u2 i1 (i2, i1);
# u3 has no history and the second u1 i3 repeats the item before it.
# Popularity, with the previous item left out:
#   u2 i2: i1 only, excluded: no list (empty), a miss
#   u1 i2: [i2] rank 1
#   u1 i3: i1 2, i2 2 (excluded), i3 1: [i1, i3] rank 2
#   u2 i1: i3 3, i1 2, i2 excluded: [i3, i1] rank 2
# HR 3/4, MRR (1 + 1/2 + 1/2)/4, NDCG (1 + 2/log2(3))/4.
# Co-occurrence:
#   u2 i2: i1 has no neighbours yet (empty); u1 i2: i1 -> [i2] rank 1;
#   u1 i3: [i1] (i3 never followed i2 yet), a miss;
#   u2 i1: i2's list [i1 2, i3 1.5] and half of i1's: i1 first, a hit.
@test "hit rate, MRR, NDCG, coverage and empty lists are those computed by hand" {
	run --separate-stderr reco-eval --json --models pop,cooc,mf "$(fixture train/eval-small.ndjson)"
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" >r.json
	[ "$(jq -r .evaluated r.json)" -eq 4 ]
	[ "$(jq -r .events r.json)" -eq 8 ]
	[ "$(jq -r .items r.json)" -eq 3 ]
	[ "$(jq -r .target_unknown r.json)" -eq 1 ]
	near "$(metric_of r.json pop hr@10)" 0.75
	near "$(metric_of r.json pop hr@20)" 0.75
	near "$(metric_of r.json pop mrr@20)" 0.5
	near "$(metric_of r.json pop ndcg@10)" 0.565465
	near "$(metric_of r.json pop coverage)" 1
	[ "$(metric_of r.json pop empty)" -eq 1 ]
	near "$(metric_of r.json cooc hr@20)" 0.5
	near "$(metric_of r.json cooc mrr@20)" 0.5
	near "$(metric_of r.json cooc ndcg@10)" 0.5
	[ "$(metric_of r.json cooc empty)" -eq 1 ]
	[ "$(metric_of r.json mf cold)" -eq 0 ]
	# The table says the same.
	run reco-eval --models pop "$(fixture train/eval-small.ndjson)"
	[[ "${lines[1]}" == "pop              4  0.7500  0.7500  0.5000  0.5655   1.0000       0       1" ]] ||
		fail "${lines[1]}"
}

@test "the report is the same every time, and the speed only on request" {
	reco-gen --events 4000 --seed 3 -o ev.ndjson
	reco-eval ev.ndjson >a.txt
	reco-eval ev.ndjson >b.txt
	same_bytes a.txt b.txt
	reco-eval --json ev.ndjson >a.json
	reco-ingest -O avro ev.ndjson | reco-eval --json >b.json
	same_bytes a.json b.json
	! grep -q "per_second" a.json
	run reco-eval --timing --json ev.ndjson
	[[ "$output" == *'"events_per_second":'* ]]
	[[ "$output" == *'"requests_per_second":'* ]]
	run reco-eval --timing ev.ndjson
	[[ "${lines[0]}" == *"req/s" ]]
	[[ "$output" == *" events/s"* ]]
}

# ---- what the models learn ----

# Measured over seeds 1, 2, 3, 7 and 11 at 30000 events: with structure,
# HR@20 of mf is 0.15 to 0.16 above pop's; without, 0.03 below.
@test "the factorisation clearly beats popularity on a stream with planted structure" {
	reco-gen --events 30000 --seed 7 -o ev.ndjson
	reco-eval --json --models pop,mf ev.ndjson >r.json
	at_least "$(metric_of r.json mf hr@20)" "$(metric_of r.json pop hr@20)" 0.10
	at_least "$(metric_of r.json mf hr@10)" "$(metric_of r.json pop hr@10)" 0.10
	at_least "$(metric_of r.json mf mrr@20)" "$(metric_of r.json pop mrr@20)" 0.05
}

@test "on a stream without structure the factorisation does not pretend to beat popularity" {
	reco-gen --events 30000 --seed 7 --no-structure -o ev.ndjson
	reco-eval --json --models pop,mf ev.ndjson >r.json
	! at_least "$(metric_of r.json mf hr@20)" "$(metric_of r.json pop hr@20)" 0.02 2>/dev/null
}

@test "the hybrid is at least as good as each of its sources on HR@20" {
	reco-gen --events 20000 --seed 2 -o ev.ndjson
	reco-eval --json ev.ndjson >r.json
	h=$(metric_of r.json hybrid hr@20)
	for m in pop dpop cooc seq sknn walk mf; do
		at_least "$h" "$(metric_of r.json "$m" hr@20)" 0
	done
}

@test "a single model scores the same alone as beside the others" {
	# Beside a blend the sources are asked for more candidates; a single
	# model's top 20 must not depend on that.
	reco-gen --seed 1 -o ev.ndjson
	reco-eval --json ev.ndjson >all.json
	for m in pop dpop cooc seq sknn walk mf; do
		reco-eval --json --models "$m" ev.ndjson >one.json
		jq -c --arg m "$m" '.models[] | select(.model == $m)' all.json >a
		jq -c --arg m "$m" '.models[] | select(.model == $m)' one.json >b
		same_bytes a b || fail "$m differs"
	done
}

@test "on every reco-gen regime the learned blend is at least as good as its best single source" {
	local r m best h v
	for r in shop sessions history; do
		reco-gen --regime "$r" --events 10000 --seed 4 -o "$r.ndjson"
		reco-eval --json --models pop,dpop,trend,cooc,seq,next,sknn,walk,mf,seen,cat,hybrid \
			"$r.ndjson" >"$r.json"
		h=$(metric_of "$r.json" hybrid hr@20)
		best=0
		for m in pop dpop trend cooc seq next sknn walk mf seen cat; do
			v=$(metric_of "$r.json" "$m" hr@20)
			best=$(awk -v a="$v" -v b="$best" 'BEGIN { print (a > b ? a : b) }')
		done
		at_least "$h" "$best" 0 || fail "$r: hybrid $h, best single source $best"
	done
	# The blend learned: its weights moved from where they started.
	jq -e '.models[] | select(.model == "hybrid") | .weights | has("sknn@raw")' history.json
}

@test "a fixed blend with --weights is the blend the model started from" {
	reco-gen --events 5000 --seed 3 -o ev.ndjson
	reco-eval --json --models hybrid --blend-budget 0 ev.ndjson >learned0.json
	reco-eval --json --models hybrid \
		--weights mf=0.2,cooc=1,trend=0.05,dpop=0.1,seen=0.3,cat=0.1,sknn=1,seq=0.5,next=0.5,walk=0.5,tail=3 \
		ev.ndjson >fixed.json
	near "$(metric_of learned0.json hybrid hr@20)" "$(metric_of fixed.json hybrid hr@20)"
	near "$(metric_of learned0.json hybrid mrr@20)" "$(metric_of fixed.json hybrid mrr@20)"
	# Learning the blend changes the answers.
	reco-eval --json --models hybrid ev.ndjson >learned.json
	[ "$(metric_of learned.json hybrid mrr@20)" != "$(metric_of fixed.json hybrid mrr@20)" ]
}

@test "seen items are left out where users never come back, and kept where they do" {
	reco-gen --regime history --events 10000 --seed 5 -o hist.ndjson
	reco-eval --json --models hybrid hist.ndjson >auto.json
	reco-eval --json --models hybrid --exclude-seen none hist.ndjson >none.json
	at_least "$(metric_of auto.json hybrid hr@20)" "$(metric_of none.json hybrid hr@20)" 0.03
	reco-train -o h.bin hist.ndjson
	reco-train --inspect h.bin >h.txt
	grep -q '^seen .* seen items left out (--exclude-seen auto)' h.txt
	# A shop's users come back to what they viewed: auto keeps it.
	reco-gen --events 10000 --seed 5 -o shop.ndjson
	reco-train -o s.bin shop.ndjson
	reco-train --inspect s.bin >s.txt
	grep -q '^seen .* seen items recommended (--exclude-seen auto)' s.txt
	reco-eval --json --models hybrid shop.ndjson >sauto.json
	reco-eval --json --models hybrid --exclude-seen all shop.ndjson >sall.json
	at_least "$(metric_of sauto.json hybrid hr@20)" "$(metric_of sall.json hybrid hr@20)" 0.01
}

@test "a model started from a snapshot carries on where training stopped" {
	reco-gen --events 6000 --seed 4 -o ev.ndjson
	head -n 3000 ev.ndjson >p1.ndjson
	tail -n +3001 ev.ndjson >p2.ndjson
	reco-train -o m.bin p1.ndjson
	reco-eval --json --models cooc --model m.bin p2.ndjson >warm.json
	reco-eval --json --models cooc p2.ndjson >cold.json
	at_least "$(jq -r .evaluated warm.json)" "$(jq -r .evaluated cold.json)" 1
	head -c 300 m.bin >bad.bin
	run --separate-stderr reco-eval --model bad.bin p2.ndjson
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"bad.bin: truncated snapshot"* ]]
	[ -z "$output" ]
}

# ---- A/B ----

# ab.ndjson, worked by hand. A: 10 impressions; click-throughs u1 i1,
# u2 i3 (cart), u3 i4 (a purchase) and u5 i2 (its request): 4; purchases
# u2 i3 (2 x 10) and u3 i4 (30): AOV 25 +- 1.96 * 5. B: 8 impressions, 7
# answered (v1 i2 and v3 i5 by a purchase); purchases 50, none, 40: AOV
# 45 +- 1.96 * 5. Left out: a second click, a click 30 minutes and 1 ms
# late, a click naming another request, a click of an item not shown, a
# view, an impression without a variant.
@test "A/B: click-through, conversion, order value and uplift with their intervals" {
	run --separate-stderr reco-eval --ab --json --stats "$(fixture train/ab.ndjson)"
	[ "$status" -eq 0 ]
	printf '%s\n' "$output" >r.json
	v() { jq -r --arg v "$1" ".variants[] | select(.variant == \$v) | $2" r.json; }
	[ "$(jq -r .control r.json)" = A ]
	[ "$(v A .impressions)" -eq 10 ]
	[ "$(v A .clicks)" -eq 4 ]
	[ "$(v A .conversions)" -eq 2 ]
	[ "$(v A .orders)" -eq 2 ]
	near "$(v A .ctr)" 0.4
	# Wilson: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
	near "$(v A '.ctr_ci[0]')" 0.16818
	near "$(v A '.ctr_ci[1]')" 0.687326
	near "$(v A .conversion)" 0.2
	near "$(v A .aov)" 25
	near "$(v A '.aov_ci[0]')" 15.20018
	near "$(v A '.aov_ci[1]')" 34.79982
	[ "$(v B .impressions)" -eq 8 ]
	[ "$(v B .clicks)" -eq 7 ]
	[ "$(v B .conversions)" -eq 3 ]
	[ "$(v B .orders)" -eq 3 ]
	near "$(v B .revenue)" 90
	near "$(v B .aov)" 45
	near "$(v B .uplift.ctr)" 1.1875
	# (0.875 - 0.4 +- 1.96 sqrt(0.4 0.6 / 10 + 0.875 0.125 / 8)) / 0.4
	near "$(v B '.uplift.ctr_ci[0]')" 0.236465
	near "$(v B '.uplift.ctr_ci[1]')" 2.138535
	near "$(v B .uplift.conversion)" 0.875
	near "$(v B .uplift.aov)" 0.8
	near "$(v B '.uplift.aov_ci[0]')" 0.245638
	[ "$(v A .uplift)" = null ]
	[[ "$stderr" == *"ab_clicks_unattributed_total 3"* ]]
	[[ "$stderr" == *"ab_no_variant_total 1"* ]]
	[[ "$stderr" == *"records in 38, out 37, dropped 1, rejected 0"* ]]
}

@test "A/B: the table, another control and a shorter window" {
	run reco-eval --ab "$(fixture train/ab.ndjson)"
	[ "$status" -eq 0 ]
	[[ "${lines[1]}" == "A                   10       4  0.4000  [0.1682, 0.6873]      2  0.2000  [0.0567, 0.5098]      2     25.00        [15.20, 34.80]       50.00" ]] ||
		fail "${lines[1]}"
	[[ "$output" == *"B           CTR +118.8% [+23.6%, +213.9%] *  conversion +87.5% [-121.1%, +296.1%]  AOV +80.0% [+24.6%, +135.4%] *"* ]]
	run reco-eval --ab --json --control B "$(fixture train/ab.ndjson)"
	[[ "$output" == *'"control":"B"'* ]]
	[[ "$output" == *'"variant":"A"'*'"uplift":{"against":"B"'* ]]
	# Within 55 seconds, only v1's click on i1 (50 s) is credited to B.
	run reco-eval --ab --json --window 55s "$(fixture train/ab.ndjson)"
	printf '%s\n' "$output" >r.json
	[ "$(jq -r '.variants[] | select(.variant == "B") | .clicks' r.json)" -eq 1 ]
	[ "$(jq -r '.variants[] | select(.variant == "A") | .clicks' r.json)" -eq 0 ]
}

@test "--tune races parameter sets and prints the winner's flags, which --params takes" {
	reco-gen --regime history --events 6000 --users 30 --seed 6 -o ev.ndjson
	run --separate-stderr reco-eval --tune --tune-configs 4 ev.ndjson
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == --neighbours\ * ]]
	[[ "$stderr" == *"tune round 1: 4 sets"* ]]
	[[ "$stderr" == *"tune: on the last 1800 events, hr@20 "* ]]
	printf '%s\n' "$output" >params.txt
	# The same search twice: the same answer.
	reco-eval -q --tune --tune-configs 4 ev.ndjson >again.txt
	same_bytes params.txt again.txt
	# reco-train and reco-eval take the line as it is.
	reco-train --params params.txt -o m.bin ev.ndjson
	reco-eval --params params.txt --models hybrid ev.ndjson >/dev/null
	echo '--neighbours' >bad.txt
	run --separate-stderr reco-train --params bad.txt ev.ndjson
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"bad.txt: --neighbours has no value"* ]]
	run --separate-stderr reco-eval --tune --tune-split 0.99 ev.ndjson
	[ "$status" -eq 2 ]
}
