#!/bin/sh
# quickstart.sh: from raw store events to canonical, archived events, offline, on generated data.
#
# Runs from the top of the source tree after `make` (or with the tools on
# PATH). Everything happens in a temporary directory that is removed at exit.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
PATH="${RECO_BIN:-$top/build/bin}:$PATH"
work=$(mktemp -d "${TMPDIR:-/tmp}/reco-quickstart.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
cd "$work"

echo "== 1. a store's export: 20000 generated events as CSV, with planted faults"
reco-gen --seed 7 --events 20000 --users 500 --items 2000 --format csv \
	--dup-rate 0.01 --malformed-rate 0.002 --items-out items.csv > export.csv
head -3 export.csv

echo "== 2. reco-ingest: CSV to canonical events (bad rows go to rejects.ndjson)"
reco-ingest --from csv \
	--map user=user_id,item=product_id,ts=event_time,type=event_type,session=user_session \
	--type-map cart=add_to_cart \
	--keep category_code,brand \
	--rejects rejects.ndjson --stats -q export.csv > events.ndjson
head -2 events.ndjson
echo "rejected records (first 2):"
head -2 rejects.ndjson

echo "== 3. archive as Avro (deflate) and read back: byte-identical"
reco-ingest -O avro --codec deflate events.ndjson > events.avro
reco-ingest events.avro | cmp - events.ndjson
ls -l events.ndjson events.avro | awk '{print $5, $9}'

echo "== 4. replay: the same input gives the same bytes"
reco-ingest --from csv \
	--map user=user_id,item=product_id,ts=event_time,type=event_type,session=user_session \
	--type-map cart=add_to_cart --keep category_code,brand -q export.csv |
	cmp - events.ndjson && echo "identical"

echo "== 5. reco-clean (duplicates, bots, order) and reco-enrich (sessions, item attributes)"
reco-clean --stats -q events.avro |
	reco-enrich --items items.csv --item-fields stock --stats -q > enriched.ndjson
head -2 enriched.ndjson

echo "== 6. reco-train: one model snapshot (MF, co-occurrence, popularity)"
reco-train -o model.bin enriched.ndjson
reco-train --inspect model.bin | head -12

echo "== 7. reco-eval: test-then-train, model by model"
reco-eval --models pop,dpop,cooc,mf,hybrid enriched.ndjson

echo "== 8. reco-profile: live user profiles in the embedded store"
reco-profile --store profiles.state --emit none --stats -q < enriched.ndjson
reco-profile --store profiles.state --get u290 | cut -c1-300

echo "== 9. reco-serve: top-5 recommendations, from the model and the profiles"
printf '%s\n' '{"user":"u290","n":5}' '{"user":"new-visitor","n":3,"context":{"items":["i1633"]}}' |
	reco-serve --model model.bin --store profiles.state --items items.csv

echo "== 10. keyed by user for a Kafka topic (kcat -P -K '\\t')"
reco-ingest --key user -o keyed.tsv enriched.ndjson
head -2 keyed.tsv

echo "quickstart: ok"
