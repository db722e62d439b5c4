#!/bin/sh
# replay-incident.sh: replay one archived hour of Avro events from the state saved at its start, and get back the profiles and recommendations the live system had, byte for byte.
#
# Usage: replay-incident.sh [all | live | replay]
#
#   live    simulate the live system: a few hours of generated shop events,
#           archived as one Avro file an hour; the pipeline runs over each
#           hour as it is archived (reco-clean and reco-enrich keep their
#           windows and sessions in state files, reco-profile checkpoints its
#           embedded store, reco-train writes a model snapshot), and the
#           state is saved at the start of every hour, as a backup job
#           would. At the end of the incident hour it records what the
#           system had: every profile (reco-profile --dump) and what
#           reco-serve answered a few users.
#   replay  take the state saved at the start of the incident hour, replay
#           that hour's Avro file alone through the same pipeline, and
#           compare the profiles and reco-serve's answers with the live
#           ones. Exit 1 on any difference or failure.
#   all     both (the default).
#
# Environment:
#   WORK      the directory for everything (default: a temporary one,
#             removed at exit); live and replay on their own need it
#   HOURS     hours of events (default 4)
#   INCIDENT  the incident hour, 0 to HOURS-1 (default 2)
#   EVENTS, USERS  the generated events and users (default 40000, 1000)
#
# Everything runs on event time: the same hour from the same state gives
# the same bytes, on any machine, at any time.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
PATH="${RECO_BIN:-$top/build/bin}:$PATH"
HOURS=${HOURS:-4}
INCIDENT=${INCIDENT:-2}
EVENTS=${EVENTS:-40000}
USERS=${USERS:-1000}
START=2019-10-01T00:00:00Z
START_MS=1569888000000
mode=${1:-all}

say() { printf 'replay-incident: %s\n' "$*"; }
die() { printf 'replay-incident: %s\n' "$*" >&2; exit "${2:-1}"; }

case $mode in all | live | replay) ;; *) die "usage: replay-incident.sh [all | live | replay]" 2 ;; esac
for v in HOURS INCIDENT EVENTS USERS; do
	eval "x=\$$v"
	case $x in '' | *[!0-9]*) die "$v: expected a number, not '$x'" 2 ;; esac
done
[ "$INCIDENT" -lt "$HOURS" ] || die "INCIDENT: an hour from 0 to $((HOURS - 1))" 2

if [ -n "${WORK:-}" ]; then
	mkdir -p "$WORK"
	work=$(cd "$WORK" && pwd)
else
	[ "$mode" = all ] || die "$mode: set WORK, the directory of the live run" 2
	work=$(mktemp -d "${TMPDIR:-/tmp}/reco-replay.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	trap 'exit 130' INT TERM
fi
hh=$(printf '%02d' "$INCIDENT")
incident_file=$work/archive/events-2019-10-01T$hh.avro

# One hour through the pipeline: $1 the state directory, $2 the hour's
# Avro file. reco-clean and reco-enrich carry their windows and sessions
# over in state files; reco-profile applies the hour to its store (a
# checkpoint at the end); reco-train goes on from the last snapshot and
# writes the next. A failure of any stage stops the run.
run_hour() {
	s=$1 f=$2
	{ st=0; reco-clean -q --state "$s/clean.state" "$f" || st=$?; echo "$st" >"$s/clean.st"; } |
	{ st=0; reco-enrich -q --state "$s/enrich.state" --items "$work/items.csv" || st=$?
	  echo "$st" >"$s/enrich.st"; } >"$s/hour.ndjson"
	for stage in clean enrich; do
		st=$(cat "$s/$stage.st")
		[ "$st" = 0 ] || die "$f: reco-$stage failed (exit status $st)"
	done
	reco-profile -q --emit none --store "$s/profiles.state" "$s/hour.ndjson" ||
		die "$f: reco-profile failed"
	resume=
	[ -f "$s/model.bin" ] && resume="--resume $s/model.bin"
	# shellcheck disable=SC2086 # resume is one option and its file, or none
	reco-train -q $resume -o "$s/model.bin" "$s/hour.ndjson" ||
		die "$f: reco-train failed"
	rm -f "$s/hour.ndjson" "$s/clean.st" "$s/enrich.st"
}

# What the system answers at the end of the incident hour, from the state
# directory $1, into the directory $2: every profile and the answers to the
# recorded requests.
observe() {
	reco-profile --dump --store "$1/profiles.state" >"$2/profiles.ndjson"
	reco-serve --model "$1/model.bin" --store "$1/profiles.state" --items "$work/items.csv" \
		"$work/requests.ndjson" >"$2/answers.ndjson"
}

live() {
	rm -rf "$work/archive" "$work/live"
	mkdir -p "$work/archive" "$work/live/state" "$work/live/checkpoints" "$work/live/incident"
	say "live: $HOURS hours of shop events ($EVENTS events, $USERS users), archived as Avro, one file an hour"
	rate=$(awk -v n="$EVENTS" -v h="$HOURS" 'BEGIN { printf "%.6f", n / (h * 3600) }')
	reco-gen --seed 9 --events "$EVENTS" --users "$USERS" --start "$START" --rate "$rate" \
		--dup-rate 0.01 --ooo-rate 0.02 --malformed-rate 0.001 \
		--items-out "$work/items.csv" |
		awk -v dir="$work/archive" '
		BEGIN { h = 0 }
		# A line goes to the file of the hour it arrives in: the next
		# hour starts with its first event (late ones stay behind).
		match($0, /"ts":[0-9]+/) {
			t = int(substr($0, RSTART + 5, RLENGTH - 5) / 3600000) % 24
			if (t == h + 1) h = t
		}
		{ print > sprintf("%s/shop-2019-10-01T%02d.ndjson", dir, h) }'
	h=0
	while [ "$h" -lt "$HOURS" ]; do
		x=$(printf '%02d' "$h")
		reco-ingest --from json -q -O avro --codec deflate \
			-o "$work/archive/events-2019-10-01T$x.avro" "$work/archive/shop-2019-10-01T$x.ndjson"
		rm "$work/archive/shop-2019-10-01T$x.ndjson"
		h=$((h + 1))
	done
	# The requests to record: the five users most active in the incident
	# hour, and a visitor the model has never seen, at the hour's end.
	end_ms=$((START_MS + (INCIDENT + 1) * 3600000))
	reco-ingest "$incident_file" | grep -o '"user":"[^"]*"' | sort | uniq -c |
		sort -k1,1nr -k2,2 | head -5 | awk -v ts="$end_ms" '
		{ printf "{\"id\":\"r%d\",\"user\":%s,\"n\":5,\"ts\":%s}\n", NR, substr($2, 8), ts }
		END { printf "{\"id\":\"r%d\",\"user\":\"new-visitor\",\"n\":5,\"ts\":%s}\n", NR + 1, ts }' \
		>"$work/requests.ndjson"
	h=0
	while [ "$h" -lt "$HOURS" ]; do
		x=$(printf '%02d' "$h")
		# The backup of the state at the start of the hour.
		mkdir "$work/live/checkpoints/$x"
		for f in "$work"/live/state/*; do
			[ -f "$f" ] && cp "$f" "$work/live/checkpoints/$x/"
		done
		run_hour "$work/live/state" "$work/archive/events-2019-10-01T$x.avro"
		if [ "$h" = "$INCIDENT" ]; then
			observe "$work/live/state" "$work/live/incident"
			say "live: at the end of hour $x (the incident): $(wc -l <"$work/live/incident/profiles.ndjson" | tr -d ' ') profiles, $(wc -l <"$work/requests.ndjson" | tr -d ' ') answers recorded"
		fi
		h=$((h + 1))
	done
	say "live: $HOURS hours applied; the live state has moved on past the incident"
}

replay() {
	[ -d "$work/live/checkpoints/$hh" ] || die "no state saved at the start of hour $hh: run live first"
	[ -f "$incident_file" ] || die "$incident_file: no such archive"
	rm -rf "$work/replay"
	mkdir -p "$work/replay/state" "$work/replay/incident"
	for f in "$work/live/checkpoints/$hh"/*; do
		[ -f "$f" ] && cp "$f" "$work/replay/state/"
	done
	say "replay: the state saved at the start of hour $hh ($(ls "$work/replay/state" | tr '\n' ' ' | sed 's/ $//'))"
	say "replay: $(basename "$incident_file") through reco-clean | reco-enrich | reco-profile, reco-train"
	run_hour "$work/replay/state" "$incident_file"
	observe "$work/replay/state" "$work/replay/incident"
	bad=0
	for what in profiles answers; do
		if cmp -s "$work/live/incident/$what.ndjson" "$work/replay/incident/$what.ndjson"; then
			say "replay: $what: identical to the live system's ($(wc -l <"$work/replay/incident/$what.ndjson" | tr -d ' ') lines, $(cksum <"$work/replay/incident/$what.ndjson" | cut -d' ' -f1) cksum)"
		else
			printf 'replay-incident: MISMATCH: the replayed %s differ from the live ones:\n' "$what" >&2
			diff "$work/live/incident/$what.ndjson" "$work/replay/incident/$what.ndjson" |
				head -6 | cut -c1-200 >&2 || true
			bad=1
		fi
	done
	[ "$bad" = 0 ] || exit 1
	say "replay: for example, $(head -1 "$work/replay/incident/answers.ndjson" | cut -c1-160)..."
}

case $mode in
all) live; replay ;;
live) live ;;
replay) replay ;;
esac
echo "replay-incident: ok"
