#!/bin/sh
# backfill-cron.sh: a night's logs sharded by user over all cores, one reco-ingest | reco-clean | reco-enrich | reco-profile pipeline per core, checked against one unsharded run.
#
# From cron, on yesterday's logs (a crontab needs its % escaped):
#
#   15 2 * * * /usr/local/share/reco/examples/backfill-cron.sh /var/log/shop/$(date -d yesterday +\%F)*.ndjson
#
# Usage: backfill-cron.sh [LOG ...]
#
# The logs are the shop's NDJSON records, one interaction a line, with the
# fields of a canonical event (user, item, ts, type, ...), which
# reco-ingest --from json maps as they are (INGEST_OPTS changes that, for
# a CSV export say). Without logs, a day of events with duplicates, bots,
# disorder and garbage lines is generated with reco-gen, one file an hour,
# so that the example runs on its own.
#
# Shard I of N keeps the users whose id hashes to I modulo N (--shard I/N,
# see reco(7)); all shards read all the logs. Each shard has its own
# profile store, OUT/profiles.I-of-N.state, with its own source positions:
# running the job again on logs it has seen changes nothing.
#
# Environment:
#   JOBS          shards, one pipeline each (default: the cores, nproc)
#   OUT           keep the stores and the rejects in this directory
#                 (default: a temporary one, removed at exit)
#   ITEMS         an item catalogue (CSV) for reco-enrich (optional)
#   INGEST_OPTS   reco-ingest's source options (default: --from json)
#   MAX_REJECTS   a shard fails past this many rejected records (default 1000)
#   VERIFY        1 (default): also run the pipeline unsharded, into
#                 OUT/profiles.all.state, and check that the shard stores
#                 together hold exactly its profiles, byte for byte;
#                 0: skip this second run
#   EVENTS, USERS the generated day's size (default 200000 and 5000)
#
# Exit status: 0 when every stage of every shard succeeded and the check
# passed; 1 otherwise, with each failure named on standard error; 2 for a
# bad setting.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
PATH="${RECO_BIN:-$top/build/bin}:$PATH"
JOBS=${JOBS:-$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)}
INGEST_OPTS=${INGEST_OPTS:---from json}
MAX_REJECTS=${MAX_REJECTS:-1000}
VERIFY=${VERIFY:-1}
EVENTS=${EVENTS:-200000}
USERS=${USERS:-5000}

say() { printf 'backfill: %s\n' "$*"; }
die() { printf 'backfill: %s\n' "$*" >&2; exit "${2:-1}"; }

case $JOBS in '' | *[!0-9]*) die "JOBS: expected a number, not '$JOBS'" 2 ;; esac
[ "$JOBS" -ge 1 ] && [ "$JOBS" -le 65536 ] || die "JOBS: from 1 to 65536, not $JOBS" 2

work=$(mktemp -d "${TMPDIR:-/tmp}/reco-backfill.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
out=${OUT:-$work/out}
mkdir -p "$out"

if [ $# -eq 0 ]; then
	say "no logs given: generating a day, $EVENTS events of $USERS users, one file an hour"
	mkdir "$work/logs"
	rate=$(awk -v n="$EVENTS" 'BEGIN { printf "%.6f", n / 86400 }')
	reco-gen --seed 42 --events "$EVENTS" --users "$USERS" --start 2019-10-01T00:00:00Z \
		--rate "$rate" --dup-rate 0.01 --ooo-rate 0.01 --bot-users 0.0004 \
		--malformed-rate 0.0005 --items-out "$work/items.csv" |
		awk -v dir="$work/logs" '
		BEGIN { h = 0 }
		# A line goes to the file of the hour it arrives in: the next
		# hour starts with its first event (late ones stay behind).
		match($0, /"ts":[0-9]+/) {
			t = int(substr($0, RSTART + 5, RLENGTH - 5) / 3600000) % 24
			if (t == h + 1) h = t
		}
		{ print > sprintf("%s/shop-2019-10-01T%02d.ndjson", dir, h) }'
	set -- "$work"/logs/*.ndjson
	ITEMS=${ITEMS:-$work/items.csv}
fi
for f in "$@"; do
	[ -r "$f" ] || die "$f: cannot read it"
done
enrich_opts=
[ -n "${ITEMS:-}" ] && enrich_opts="--items $ITEMS"

# One shard's pipeline: $1 the shard, $2 the store, $3 the directory of
# its metrics and exit statuses; the logs after. Every stage writes its
# exit status to DIR/STAGE.st (a pipeline's status is only its last
# stage's), and the pipeline's messages go to DIR/stderr.
pipeline() {
	shard=$1 store=$2 d=$3
	shift 3
	mkdir -p "$d"
	sh_opt=
	[ "$shard" = all ] || sh_opt="--shard $shard"
	# shellcheck disable=SC2086 # the option lists are split on purpose
	{
		{ st=0; reco-ingest $INGEST_OPTS $sh_opt -q --max-rejects "$MAX_REJECTS" \
			--rejects "$d/rejects.ndjson" --metrics "$d/ingest.prom" "$@" || st=$?
		  echo "$st" >"$d/ingest.st"; } |
		{ st=0; reco-clean $sh_opt -q --metrics "$d/clean.prom" || st=$?
		  echo "$st" >"$d/clean.st"; } |
		{ st=0; reco-enrich $sh_opt -q $enrich_opts --metrics "$d/enrich.prom" || st=$?
		  echo "$st" >"$d/enrich.st"; } |
		{ st=0; reco-profile $sh_opt -q --emit none --store "$store" \
			--metrics "$d/profile.prom" || st=$?
		  echo "$st" >"$d/profile.st"; }
	} 2>"$d/stderr"
}

# Print the failed stages of a pipeline (directory $2, named $1) on
# standard error; return 1 if there is one.
failed() {
	bad=0
	for stage in ingest clean enrich profile; do
		st=$(cat "$2/$stage.st" 2>/dev/null || echo "no status")
		if [ "$st" != 0 ]; then
			printf 'backfill: %s: reco-%s failed (exit status %s)\n' "$1" "$stage" "$st" >&2
			bad=1
		fi
	done
	if [ "$bad" = 1 ] && [ -s "$2/stderr" ]; then
		sed "s|^|backfill: $1: |" "$2/stderr" >&2
	fi
	return "$bad"
}

# The value of a counter in a metrics file (0 if absent).
metric() {
	awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }' "$1" 2>/dev/null || echo 0
}

n=$JOBS
say "$# log file(s), $n shard(s), one pipeline each, in parallel"
pids=
i=0
while [ "$i" -lt "$n" ]; do
	pipeline "$i/$n" "$out/profiles.$i-of-$n.state" "$work/shard$i" "$@" &
	pids="$pids $!"
	i=$((i + 1))
done
for pid in $pids; do
	wait "$pid" || true
done

# Every stage of every shard, checked; then the totals.
: >"$out/rejects.ndjson"
fail=0
records=0 events=0 rejected=0 cleaned=0 applied=0 users=0
i=0
while [ "$i" -lt "$n" ]; do
	d=$work/shard$i
	failed "shard $i/$n" "$d" || fail=1
	[ -f "$d/rejects.ndjson" ] && cat "$d/rejects.ndjson" >>"$out/rejects.ndjson"
	records=$(metric "$d/ingest.prom" reco_ingest_records_in_total)
	e=$(metric "$d/ingest.prom" reco_ingest_records_out_total)
	r=$(metric "$d/ingest.prom" reco_ingest_records_rejected_all_total)
	c=$(metric "$d/clean.prom" reco_clean_records_out_total)
	a=$(metric "$d/profile.prom" reco_profile_records_out_total)
	u=$(metric "$d/profile.prom" reco_profile_users)
	say "shard $i/$n: $e events, $r rejected, $c after reco-clean, $a applied, $u profiles"
	events=$((events + e)) rejected=$((rejected + r)) cleaned=$((cleaned + c))
	applied=$((applied + a)) users=$((users + u))
	i=$((i + 1))
done
[ "$fail" = 0 ] || die "FAILED: at least one shard did not complete; see above"
kept=
[ -n "${OUT:-}" ] && kept=" (in $out/rejects.ndjson)"
say "total: $records records read; $events events, $rejected rejected$kept;" \
	"$cleaned after reco-clean; $applied applied to $users profiles"

if [ "$VERIFY" = 1 ]; then
	say "check: the same logs through one unsharded pipeline"
	pipeline all "$out/profiles.all.state" "$work/all" "$@"
	failed "unsharded run" "$work/all" || die "FAILED: the unsharded run did not complete"
	reco-profile --dump --store "$out/profiles.all.state" | sort >"$work/want.dump"
	i=0
	while [ "$i" -lt "$n" ]; do
		reco-profile --dump --store "$out/profiles.$i-of-$n.state"
		i=$((i + 1))
	done | sort >"$work/got.dump"
	cmp -s "$work/want.dump" "$work/got.dump" ||
		die "MISMATCH: the $n shard stores do not hold the profiles of the unsharded run"
	[ "$(metric "$work/all/profile.prom" reco_profile_records_out_total)" = "$applied" ] ||
		die "MISMATCH: the unsharded run applied $(metric "$work/all/profile.prom" reco_profile_records_out_total) events, the shards $applied"
	say "check: the $n shard stores hold the same $(wc -l <"$work/want.dump" | tr -d ' ') profiles as one unsharded run, byte for byte"
fi
echo "backfill-cron: ok"
