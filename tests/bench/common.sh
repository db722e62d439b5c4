# common.sh: what the benchmark scripts share, sourced after they set $tmp:
# the optional tools (perl for latency, jq for references) and the latency probe.

if command -v perl >/dev/null 2>&1 &&
    perl -MTime::HiRes -MIPC::Open2 -e 1 2>/dev/null; then
	PERL=perl
else
	PERL=
	echo "bench: perl with Time::HiRes is missing (Debian package perl): latency is not measured" >&2
fi
if command -v jq >/dev/null 2>&1; then
	JQ=jq
else
	JQ=
	echo "bench: jq is missing: no jq reference" >&2
fi

# The latency probe: "first CMD" prints the milliseconds until the first
# byte of CMD's output; "live FILE N CMD" sends the first N lines of FILE
# one at a time, waits for each one's output line, and prints the 50th,
# 90th and 99th percentiles of that round trip in microseconds. Either prints "-" on a
# timeout.
cat >"$tmp/probe.pl" <<'EOF'
use strict;
use warnings;
use IPC::Open2;
use Time::HiRes qw(time);

$SIG{ALRM} = sub { print "-\n"; exit 0 };
alarm 60;
my $mode = shift;
if ($mode eq "first") {
	my $t0 = time;
	my $pid = open2(my $out, my $in, "sh", "-c", "exec 2>/dev/null; " . $ARGV[0]);
	close $in;
	my $n = sysread($out, my $b, 1);
	my $t = time - $t0;
	close $out;
	waitpid $pid, 0;
	print $n ? sprintf("%.1f\n", 1000 * $t) : "-\n";
	exit 0;
}
my ($file, $n, $cmd) = @ARGV;
open my $f, "<", $file or die "$file: $!";
my $pid = open2(my $out, my $in, "sh", "-c", "exec 2>/dev/null; " . $cmd);
$in->autoflush(1);
my @lat;
while (@lat < $n && defined(my $line = <$f>)) {
	my $t0 = time;
	print $in $line;
	my $r = <$out>;
	last unless defined $r;
	push @lat, 1e6 * (time - $t0);
}
close $in;
close $out;
waitpid $pid, 0;
if (@lat < $n) { print "-\n"; exit 0 }
@lat = sort { $a <=> $b } @lat;
printf "%.0f/%.0f/%.0f\n", map { $lat[int($_ * (@lat - 1))] } (0.5, 0.9, 0.99);
EOF

# Milliseconds since the epoch (seconds where date has no %N).
now_ms() {
	t=$(date +%s%N)
	case $t in
	*N) echo $(($(date +%s) * 1000)) ;;
	*) echo $((t / 1000000)) ;;
	esac
}

# Start redis-server without persistence on a free port of 127.0.0.1;
# set REDIS_PID and REDIS_PORT, or return 1 (REDIS_PID empty) if it
# would not start. The caller stops it by REDIS_PID.
# The end of a benchmark that may start redis-server: stop it (by
# REDIS_PID), remove $tmp; and /usr/bin/time, which every row needs.
bench_redis_cleanup() {
	if [ -n "${REDIS_PID:-}" ]; then
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
bench_redis_traps() {
	REDIS_PID=
	trap bench_redis_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	if [ ! -x /usr/bin/time ]; then
		echo "bench: /usr/bin/time is missing (Debian package time): cannot measure" >&2
		exit 1
	fi
}

bench_redis_start() {
	REDIS_PORT=
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		_p=$((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
		redis-server --port "$_p" --bind 127.0.0.1 --save '' --appendonly no \
		    --dir "$tmp" >"$tmp/redis.log" 2>&1 </dev/null &
		REDIS_PID=$!
		for _i in $(seq 100); do
			if [ "$(redis-cli -p "$_p" ping 2>/dev/null)" = PONG ]; then
				REDIS_PORT=$_p
				return 0
			fi
			sleep 0.05
		done
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
		REDIS_PID=
	done
	return 1
}

# Start reco-serve --listen 127.0.0.1:0 with the options given, its
# standard error in $tmp/serve.err; set SPID and PORT (the port it chose),
# or exit 1 if it does not start. The caller stops it by SPID.
bench_serve_start() {
	reco-serve --listen 127.0.0.1:0 "$@" 2>"$tmp/serve.err" </dev/null &
	SPID=$!
	PORT=
	_i=0
	while [ -z "$PORT" ] && [ $_i -lt 500 ]; do
		PORT=$(sed -n 's/^reco-serve: listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$tmp/serve.err")
		_i=$((_i + 1))
		[ -n "$PORT" ] || sleep 0.02
	done
	[ -n "$PORT" ] || { echo "bench: reco-serve did not start: $(cat "$tmp/serve.err")" >&2; exit 1; }
}
