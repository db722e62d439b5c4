#!/bin/sh
# deps.sh: install the Debian packages that building and testing reco need, if any are missing.
set -e

pkgs="build-essential pkg-config clang libclang-rt-14-dev libjansson-dev
libjsmn-dev libcsv-dev libavro-dev avro-bin zlib1g-dev libhiredis-dev libcurl4-openssl-dev
libmicrohttpd-dev librdkafka-dev bats jq mandoc time kcat redis-server
wrk curl prometheus python3 python3-avro chromium chromium-driver python3-selenium
fonts-dejavu-core systemd man-db"

missing=
for p in $pkgs; do
	if ! dpkg-query -W -f '${Status}\n' "$p" 2>/dev/null |
	    grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "deps: all packages present"
	exit 0
fi

echo "deps: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
	sudo=
elif command -v sudo >/dev/null 2>&1; then
	sudo=sudo
else
	echo "deps: not root and no sudo: install these by hand:$missing" >&2
	exit 1
fi
$sudo apt-get update
# shellcheck disable=SC2086
$sudo env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y --no-install-recommends $missing </dev/null

# The fuzz targets need clang's libFuzzer runtime.
if command -v clang >/dev/null 2>&1; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	    'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
	    > "$tmp/f.c"
	if ! clang -fsanitize=fuzzer,address,undefined -o "$tmp/f" "$tmp/f.c" \
	    >/dev/null 2>&1; then
		echo "deps: clang -fsanitize=fuzzer does not link" >&2
		exit 1
	fi
fi
echo "deps: done"
