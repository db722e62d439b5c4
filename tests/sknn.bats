#!/usr/bin/env bats
# sknn.bats: the session-kNN index (lib/sknn.c) through sknn-check: learnable structure, self exclusion, deterministic snapshots, corrupt snapshots refused, bounds and evictions.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	common_setup
	reco-gen --seed 5 --events 30000 > gen.ndjson
}

# The value of key K on the line of sknn-check's output that starts with W.
field() {
	printf '%s\n' "$output" | awk -v w="$1" -v k="$2" \
		'$1 == w { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == k) print a[2] } }'
}

# Is A > B (decimals)?
gt() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'
}

@test "structure is learnt: HR@20 well above popularity on generated data" {
	run sknn-check --cooc gen.ndjson
	[ "$status" -eq 0 ]
	local hs hp ms mp hc
	hs=$(field sknn hr20)
	hp=$(field pop hr20)
	ms=$(field sknn mrr20)
	mp=$(field pop mrr20)
	[ "$(field sknn evaluated)" -gt 20000 ]
	gt "$hs" "$(awk -v p="$hp" 'BEGIN { print p * 1.4 }')" || fail "sknn HR@20 $hs, popularity $hp"
	gt "$ms" "$(awk -v p="$mp" 'BEGIN { print p * 2.5 }')" || fail "sknn MRR@20 $ms, popularity $mp"
	# On a par with plain session co-occurrence (generated sessions are
	# unordered bags, so neither has the edge).
	hc=$(field cooc hr20)
	gt "$hs" "$(awk -v p="$hc" 'BEGIN { print p * 0.97 }')" || fail "sknn HR@20 $hs, co-occurrence $hc"
}

@test "the current session is not its own neighbour" {
	# One user, one session: every request has only itself to learn from.
	for i in 1 2 3 4 5; do
		printf '{"event_id":"e%d","ts":%d,"user":"u1","type":"view","item":"i%d","session":"s1","v":1}\n' \
			"$i" "$((1569888000000 + i * 1000))" "$i"
	done > one.ndjson
	run sknn-check one.ndjson
	[ "$(field sknn evaluated)" -eq 4 ]
	[ "$(field sknn empty)" -eq 4 ]
	# (With itself as a neighbour, only the first request, whose one
	# item is excluded, has nothing.)
	run sknn-check --with-self one.ndjson
	[ "$(field sknn empty)" -eq 1 ]
	# A second user's session that shares i2 finds the first one.
	printf '{"event_id":"f0","ts":1569888100000,"user":"u2","type":"view","item":"i9","session":"s2","v":1}\n' >> one.ndjson
	printf '{"event_id":"f1","ts":1569888101000,"user":"u2","type":"view","item":"i2","session":"s2","v":1}\n' >> one.ndjson
	printf '{"event_id":"f2","ts":1569888102000,"user":"u2","type":"view","item":"i3","session":"s2","v":1}\n' >> one.ndjson
	run sknn-check one.ndjson
	[ "$(field sknn evaluated)" -eq 6 ]
	[ "$(field sknn empty)" -eq 5 ]
	[ "$(field sknn hr20)" = "0.1667" ]
}

@test "a session pushed out of the ring is no neighbour: stale index entries are skipped" {
	ev() {
		printf '{"event_id":"%s","ts":%d,"user":"%s","type":"view","item":"%s","session":"%s","v":1}\n' "$@"
	}
	{
		ev e1 1569888001000 u1 i1 s1
		ev e2 1569888002000 u1 i2 s1
		ev e3 1569888003000 u1 i3 s1
		ev e4 1569888004000 u3 i7 s3
		ev e5 1569888005000 u4 i8 s4
		ev e6 1569888006000 u4 i9 s4
		ev e7 1569888007000 u2 i1 s2
		ev e8 1569888008000 u2 i2 s2
	} > four.ndjson
	# Room for all: u2 finds u1's session through i1, and its next item i2.
	run sknn-check --stats --sessions 4 four.ndjson
	[ "$(field sknn evaluated)" -eq 4 ]
	[ "$(field sknn empty)" -eq 3 ]
	[ "$(field sknn hr20)" = "0.2500" ]
	# Two slots: u4's session took u1's slot, which i1 still lists; that
	# entry is stale and must not bring u4's items.
	run sknn-check --stats --sessions 2 four.ndjson
	[ "$(field sknn empty)" -eq 4 ]
	[ "$(field stats sessions_evicted)" -eq 2 ]
	[ "$(field stats entries)" -eq 8 ]
}

@test "the snapshot blob is deterministic and a save and load midway changes nothing" {
	sknn-check --save a.blob gen.ndjson > a.out
	sknn-check --save b.blob gen.ndjson > b.out
	cmp a.blob b.blob
	cmp a.out b.out
	sknn-check --split-at 12345 --save c.blob gen.ndjson > c.out
	cmp a.blob c.blob
	cmp a.out c.out
	# Other data, other bytes.
	reco-gen --seed 6 --events 30000 > gen6.ndjson
	sknn-check --save d.blob gen6.ndjson > /dev/null
	! cmp -s a.blob d.blob
	run sknn-check --load a.blob
	[ "$status" -eq 0 ]
	[ "$(field stats blob)" -eq "$(wc -c < a.blob)" ]
	[ "$(field stats adds)" -gt 25000 ]
}

@test "a corrupt, truncated or foreign blob is refused with a reason" {
	sknn-check --save a.blob gen.ndjson > /dev/null
	head -c 2000 a.blob > short.blob
	run sknn-check --load short.blob
	[ "$status" -eq 1 ]
	[[ "$output" == "refused: sknn: truncated"* ]]
	{ printf 'XKNN'; tail -c +5 a.blob; } > magic.blob
	run sknn-check --load magic.blob
	[ "$status" -eq 1 ]
	[[ "$output" == *"bad magic"* ]]
	{ cat a.blob; printf 'x'; } > long.blob
	run sknn-check --load long.blob
	[ "$status" -eq 1 ]
	[[ "$output" == *"trailing bytes"* ]]
	# The items of the snapshot must exist in the model that loads it.
	run sknn-check --load a.blob --nitems 10
	[ "$status" -eq 1 ]
	[[ "$output" == *"out of range"* || "$output" == *"item count"* ]]
	# Random damage: refused, or loaded and usable (sanitizer builds catch
	# any stray access).
	local n=300
	[ "${ADVERSARIAL_LONG:-0}" = 1 ] && n=20000
	run sknn-check --fuzz $n gen.ndjson
	[ "$status" -eq 0 ]
	[[ "$output" == *"fuzz tried=$n "* ]]
	[ "$(field fuzz refused)" -gt $((n / 3)) ]
}

@test "tiny bounds are respected and every eviction is counted" {
	run sknn-check --stats --sessions 500 --per-item 3 --items 2 --k 5 gen.ndjson
	[ "$status" -eq 0 ]
	[ "$(field stats live)" -eq 500 ]
	[ "$(field stats sessions_evicted)" -eq $(($(field stats sessions) - 500)) ]
	[ "$(field stats index_evicted)" -gt 0 ]
	[ "$(field stats items_dropped)" -gt 0 ]
	[ "$(field stats entries)" -le $(($(field stats items) * 3)) ]
	[ "$(field stats bytes)" -lt 200000 ]
	local small=$(field stats bytes)
	# Purges and evictions carry over a save and load too.
	sknn-check --sessions 500 --per-item 5 --items 2 --save a.blob gen.ndjson > a.out
	sknn-check --sessions 500 --per-item 5 --items 2 --split-at 9999 --save b.blob gen.ndjson > b.out
	cmp a.blob b.blob
	cmp a.out b.out
	run sknn-check --stats gen.ndjson
	[ "$(field stats sessions_evicted)" -eq 0 ]
	[ "$(field stats bytes)" -gt "$small" ]
}

@test "renumbering the items keeps the index working and consistent" {
	run sknn-check --stats --remap-at 15000 gen.ndjson
	[ "$status" -eq 0 ]
	[ "$(field stats remapped_out)" -gt 0 ]
	gt "$(field sknn hr20)" 0.35
	sknn-check --remap-at 15000 --save a.blob gen.ndjson > a.out
	sknn-check --remap-at 15000 --split-at 20000 --save b.blob gen.ndjson > b.out
	cmp a.blob b.blob
	cmp a.out b.out
}

@test "settings: name=value lists are parsed and checked, bad ones refused" {
	run sknn-check --stats --spec "k=5,l2=1h,l1=0.5,norm=1,per_item=7" /dev/null
	[ "$status" -eq 0 ]
	[[ "$output" == *"params sessions=200000 per_item=7 items=16 k=5 l1=0.5 l2=3600000 l3=12 idf=0 norm=1"* ]]
	for bad in "k=1.5" "kk=3" "norm=2" "l2=x" "k" "sessions=0" "l1=-1" "items=300" "per_item=70000"; do
		run --separate-stderr sknn-check --spec "$bad" /dev/null
		[ "$status" -eq 2 ] || fail "$bad: status $status"
		[[ "$stderr" == *"--spec: sknn: "* ]] || fail "$bad: $stderr"
	done
}

@test "synthetic load: keys that are counters, a ring that wraps, the counters add up" {
	run sknn-check --synth 20000 --sessions 5000 --per-item 8
	[ "$status" -eq 0 ]
	[ "$(field stats sessions)" -eq 20000 ]
	[ "$(field stats sessions_evicted)" -eq 15000 ]
	[ "$(field stats live)" -eq 5000 ]
	[ "$(field stats adds)" -eq "$(field synth adds)" ]
	[ "$(field stats entries)" -le $(($(field stats items) * 8)) ]
	gt "$(field synth candidates)" 10
}

@test "retuning: the scoring settings of a loaded index change, its bounds cannot" {
	run sknn-check --k 20 --l3 0 gen.ndjson
	local want=$(field sknn hr20)
	run sknn-check --split-at 1 --retune k=20,l3=0 gen.ndjson
	[ "$status" -eq 0 ]
	[ "$(field sknn hr20)" = "$want" ]
	run sknn-check gen.ndjson
	[ "$(field sknn hr20)" != "$want" ]
	run --separate-stderr sknn-check --split-at 1 --retune per_item=5 gen.ndjson
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"cannot change"* ]]
}
