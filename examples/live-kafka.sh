#!/bin/sh
# live-kafka.sh: the live pipeline, from a Kafka topic of events through Redis profiles to a Kafka topic of profile updates.
#
#   KAFKA_BROKERS=host:9092 REDIS_URL=redis://127.0.0.1:6379/0 sh examples/live-kafka.sh
#
# Environment:
#   KAFKA_BROKERS      bootstrap servers (required)
#   REDIS_URL          where the profiles live (default redis://127.0.0.1:6379/0)
#   CLICKS_TOPIC       events, canonical NDJSON keyed by user (default clicks)
#   PROFILES_TOPIC     profile updates, keyed by user (default profiles)
#   KAFKA_GROUP        consume in this consumer group (kcat -G): start one
#                      copy of this script per machine or core and the
#                      group shares the partitions among them
#   KAFKA_EXIT_AT_END  1: stop at the end of the topic (a catch-up run)
#
# Every stage's record counts go to standard error at exit (--stats).
#
# Exactly-once effect: reco-profile stores, with each batch of profiles,
# the positions (topic/partition@offset) of the events it applied, and
# skips events it has already applied. So the consumer never commits
# offsets (kcat would commit what it has read, not what reached Redis) and
# every start reads the topic from its beginning: killing this pipeline at
# any moment and starting it again gives the same profiles as a run that
# was never interrupted. With KAFKA_GROUP, kcat -G may still commit the
# offsets it has read when its partitions are revoked, and a member that
# restarts then resumes from them: run without a group where a restart
# must never skip an event.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
[ -d "$top/build/bin" ] && PATH="$top/build/bin:$PATH"

: "${KAFKA_BROKERS:?set KAFKA_BROKERS to the bootstrap servers (host:port,...)}"
: "${REDIS_URL:=redis://127.0.0.1:6379/0}"
: "${CLICKS_TOPIC:=clicks}"
: "${PROFILES_TOPIC:=profiles}"
: "${KAFKA_GROUP:=}"
: "${KAFKA_EXIT_AT_END:=0}"

# Latency over throughput. fetch.wait.max.ms=10: the broker answers a
# fetch after at most 10 ms even when it has little data (the default
# 500 ms would add up to half a second to every event on a quiet topic),
# at the cost of more fetch requests while the topic is idle.
# linger.ms=0: the producer sends each update at once instead of waiting
# to fill a batch, at the cost of more and smaller produce requests under
# load. For a backfill, drop both and let the clients batch. kcat -u:
# write each message out at once; kcat's buffered output would hold the
# last few events of a quiet spell back until more arrive.
consume_opts="-X fetch.wait.max.ms=10 -X enable.auto.commit=false -X auto.offset.reset=earliest"
produce_opts="-X linger.ms=0 -X partitioner=murmur2_random"

# One writer per store: a group's members own distinct partitions, and
# each takes a lease of its own in Redis.
writer_opts=
if [ -n "$KAFKA_GROUP" ]; then
	writer_opts="--writer $(hostname)-$$"
	set -- -G "$KAFKA_GROUP" "$CLICKS_TOPIC"
else
	set -- -t "$CLICKS_TOPIC" -o beginning
fi
[ "$KAFKA_EXIT_AT_END" = 1 ] && set -- "$@" -e

# reco-clean: partitions arrive interleaved in any order while the topic,
# keyed by user, keeps each user's events in order; reordering across
# users would only delay events, and rejecting the "late" ones would lose
# them. murmur2_random puts each user's updates in the partition a Java
# producer would choose.
# shellcheck disable=SC2086
kcat -b "$KAFKA_BROKERS" -C -J -q -u $consume_opts "$@" |
	reco-ingest --from kcat-json --stats |
	reco-clean --max-lateness 0 --late pass --max-future 0 --stats |
	reco-enrich --stats |
	reco-profile --store "$REDIS_URL" $writer_opts --emit changed --key user --stats |
	kcat -b "$KAFKA_BROKERS" -P -t "$PROFILES_TOPIC" -K '\t' $produce_opts
