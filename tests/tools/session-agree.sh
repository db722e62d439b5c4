#!/bin/sh
# session-agree.sh: how often two sessionings of the same events agree, over consecutive event pairs of each user.
#
# usage: session-agree.sh [-a ATTR] [file ...]
#
# Reads NDJSON events (standard input without a file) that carry two
# sessions: the event's "session" and attrs.ATTR (default source_session,
# as written by reco-enrich --source-session-attr source_session). For each
# user, every event and the user's previous one (in input order) form a
# pair; the pair agrees when both sessionings put the two events in the
# same session, or both start a new session between them. Pairs where
# either event lacks either session are skipped. Prints one line:
#
#   PERCENT% of N pairs agree (same in both S, new in both B,
#   split only by session X, split only by ATTR Y)
#
# Exit status 0, or 1 if there are no pairs, 2 on a usage error.
set -eu

attr=source_session
while getopts a: opt; do
	case $opt in
	a) attr=$OPTARG ;;
	*) echo "usage: session-agree.sh [-a ATTR] [file ...]" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))

command -v jq >/dev/null 2>&1 || { echo "session-agree.sh: jq is missing" >&2; exit 2; }

jq -r --arg a "$attr" '
	[.user, (.session // ""), ((.attrs // {})[$a] // "")] | @tsv' "$@" |
awk -F '\t' -v attr="$attr" '
{
	u = $1; s = $2; r = $3
	if (s == "" || r == "") { delete seen[u]; next }
	if (u in seen) {
		a = (s == ps[u]); b = (r == pr[u])
		n++
		if (a && b) same++
		else if (!a && !b) both++
		else if (!a) onlys++
		else onlyr++
	}
	seen[u] = 1; ps[u] = s; pr[u] = r
}
END {
	if (n == 0) { print "session-agree.sh: no pairs" > "/dev/stderr"; exit 1 }
	printf "%.2f%% of %d pairs agree (same in both %d, new in both %d, split only by session %d, split only by %s %d)\n",
	    100 * (same + both) / n, n, same, both, onlys, attr, onlyr
}'
