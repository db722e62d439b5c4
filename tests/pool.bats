#!/usr/bin/env bats
# pool.bats: the block pool of the neighbour lists (lib/pool.c) through pool-check: random use with every byte checked, and lists moved to a new pool without a change to what the model learns.

load helpers

bats_require_minimum_version 1.5.0

setup() {
	common_setup
}

@test "random allocations, growths, frees and moves keep every byte, and the counts add up" {
	run pool-check unit 200000
	[ "$status" -eq 0 ]
	local moves
	moves=$(printf '%s\n' "$output" | sed -n 's/.* moves \([0-9]*\) .*/\1/p')
	[ "$moves" -ge 2 ]
}

@test "lists moved to a new pool whenever an eighth is free: the same snapshot as never moved" {
	# Few items, so that the lists grow to their cap and leave their
	# smaller blocks behind.
	reco-gen --regime sessions --items 200 --events 30000 --seed 3 > few.ndjson
	run pool-check learn few.ndjson a.bin b.bin
	[ "$status" -eq 0 ]
	[[ "$output" == "moves 0 "* ]]
	local moves
	moves=$(printf '%s\n' "$output" | awk '{ print $3 }')
	[ "$moves" -ge 3 ]
	cmp a.bin b.bin
}

@test "moves and evictions together: the same snapshot, and reco-train's" {
	reco-gen --regime sessions --items 200 --events 30000 --seed 4 > few.ndjson
	run pool-check learn few.ndjson a.bin b.bin 150
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | awk '{ print $3 }')" -ge 3 ]
	cmp a.bin b.bin
	reco-train --max-items 150 -o c.bin few.ndjson
	cmp a.bin c.bin
}
