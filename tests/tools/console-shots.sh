#!/bin/sh
# console-shots.sh: the screenshots of reco-serve's console in docs/, taken in headless Chromium on a generated shop (make console-shots).
set -eu

: "${RECO_BIN:?RECO_BIN must name the directory of the built tools}"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$RECO_BIN:$PATH
tmp=$(mktemp -d "${TMPDIR:-/tmp}/reco-shots.XXXXXX")
pid=
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
cd "$tmp"
reco-gen --seed 3 --events 20000 --items-out items.csv -o raw.ndjson
reco-enrich --items items.csv raw.ndjson >ev.ndjson
reco-train -q -o m.bin ev.ndjson
reco-profile -q --store p.state ev.ndjson >/dev/null
# The user with the most events, and the item recommended to them first.
user=$(jq -r 'select(.item) | .user' ev.ndjson | sort | uniq -c | sort -k1,1nr -k2 | awk 'NR == 1 { print $2 }')
reco-serve --model m.bin --store p.state --items items.csv --listen 127.0.0.1:0 \
	--console 2>serve.err &
pid=$!
port=
for _ in $(seq 200); do
	port=$(sed -n 's/^reco-serve: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' serve.err)
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { cat serve.err >&2; exit 1; }
item=$(curl -sf "http://127.0.0.1:$port/recommend?user=$user&n=1" | jq -r '.items[0].item')
/usr/bin/python3 "$ROOT/tests/tools/console-check.py" "http://127.0.0.1:$port" "$user" "$item" \
	--shots "$ROOT/docs" >/dev/null
echo "console-shots: docs/console-user.png, docs/console-item.png, docs/console-live.png ($user, $item)"
