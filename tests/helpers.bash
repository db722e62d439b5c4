# helpers.bash: what every bats suite of reco loads: the environment, fixtures and the tool contract checks.

export LC_ALL=C

RECO_ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
: "${RECO_BIN:=$RECO_ROOT/build/bin}"
: "${RECO_TESTBIN:=$RECO_ROOT/build/tests}"
export RECO_ROOT RECO_BIN RECO_TESTBIN
export PATH="$RECO_BIN:$RECO_TESTBIN:$PATH"

# Sanitizer builds (make SANITIZE=...): find leaks, and exit with a status
# that no tool uses, so that a report is never mistaken for a data error.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:exitcode=86:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=87}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-exitcode=86}"

# The common setup: each test runs in its own empty directory. A suite
# that needs more defines its own setup() and calls common_setup first.
common_setup() {
	cd "$BATS_TEST_TMPDIR" || return 1
}

setup() {
	common_setup
}

# Print the path of tests/fixtures/NAME.
fixture() {
	printf '%s\n' "$RECO_ROOT/tests/fixtures/$1"
}

# Fail the test with a message on the test's output.
fail() {
	printf '%s\n' "$*" >&2
	return 1
}

# Print the tool binaries that are built (reco-*), one a line.
reco_tools() {
	local f
	for f in "$RECO_BIN"/reco-*; do
		[ -x "$f" ] && [ -f "$f" ] && basename "$f"
	done
}

# Run a command with its standard output on /dev/full.
to_full() {
	"$@" >/dev/full
}

# Compare two files byte for byte; on a difference show it and fail.
same_bytes() {
	if ! cmp -s "$1" "$2"; then
		printf 'files differ: %s %s\n' "$1" "$2" >&2
		diff -u "$1" "$2" | head -40 >&2 || true
		cmp "$1" "$2" >&2 || true
		return 1
	fi
}

# Fail if a sanitizer wrote a report into the text given.
no_sanitizer_report() {
	case "$1" in
	*"ERROR: AddressSanitizer"* | *"ERROR: LeakSanitizer"* | *"runtime error:"*)
		printf '%s\n' "$1" >&2
		return 1 ;;
	esac
}

# Print the number of lines of a file (0 if it is missing).
nlines() {
	if [ -f "$1" ]; then
		wc -l <"$1" | tr -d ' '
	else
		echo 0
	fi
}

# Print one line per block of an Avro object container file:
# "DATA_START DATA_END COUNT END" (byte offsets; END is past the sync
# marker). Stops quietly at a truncated block.
avro_blocks() {
	od -An -v -tu1 "$1" | awk '
	{ for (i = 1; i <= NF; i++) b[n++] = $i }
	function varint(   z, m, c) {
		z = 0; m = 1
		do {
			if (p >= n) { bad = 1; return 0 }
			c = b[p++]; z += (c % 128) * m; m *= 128
		} while (c >= 128)
		return (z % 2) ? -(z + 1) / 2 : z / 2
	}
	END {
		p = 4; bad = 0
		for (;;) {
			cnt = varint()
			if (bad) exit 1
			if (cnt == 0) break
			if (cnt < 0) { cnt = -cnt; varint() }
			for (k = 0; k < 2 * cnt; k++) { len = varint(); p += len }
		}
		p += 16
		while (p < n) {
			cnt = varint(); size = varint()
			if (bad || p + size + 16 > n) exit 0
			printf "%d %d %d %d\n", p, p + size, cnt, p + size + 16
			p += size + 16
		}
	}'
}

# ---- the contract every tool keeps (STYLE.md) ----

# Print the extra arguments a tool needs for a plain run: those listed one
# a line in tests/fixtures/contract/TOOL.args, if that file exists.
contract_args() {
	local f="$RECO_ROOT/tests/fixtures/contract/$1.args"
	[ -f "$f" ] && grep -v '^#' "$f"
	return 0
}

# Print the input file for a plain run of a tool that reads files.
contract_input() {
	local f="$RECO_ROOT/tests/fixtures/contract/$1.input"
	if [ -f "$f" ]; then
		printf '%s\n' "$f"
	else
		fixture contract-events.ndjson
	fi
}

# Return 0 if the tool's usage says it reads files ("[file ...]").
reads_files() {
	"$1" --help 2>/dev/null | grep -q '\[file \.\.\.\]'
}

# -h and --help: the usage on stdout, nothing on stderr, status 0.
contract_help() {
	local t=$1 opt out err st
	for opt in --help -h; do
		out=$("$t" "$opt" 2>"$BATS_TEST_TMPDIR/err" </dev/null) && st=0 || st=$?
		err=$(cat "$BATS_TEST_TMPDIR/err")
		[ "$st" -eq 0 ] || { fail "$t $opt: exit status $st, not 0"; return 1; }
		case "$out" in
		"usage: $t"*) ;;
		*) fail "$t $opt: stdout does not start with \"usage: $t\": $out"; return 1 ;;
		esac
		[ -z "$err" ] || { fail "$t $opt: wrote to stderr: $err"; return 1; }
	done
}

# -V and --version: "reco-X (reco) VERSION" on stdout, status 0.
contract_version() {
	local t=$1 opt out st
	for opt in --version -V; do
		out=$("$t" "$opt" </dev/null) && st=0 || st=$?
		[ "$st" -eq 0 ] || { fail "$t $opt: exit status $st, not 0"; return 1; }
		[[ "$out" =~ ^$t\ \(reco\)\ [0-9]+\.[0-9]+\.[0-9]+[^[:space:]]*$ ]] ||
			{ fail "$t $opt: printed \"$out\", not \"$t (reco) VERSION\""; return 1; }
	done
}

# An unknown option: status 2, a hint on stderr, nothing on stdout.
contract_bad_option() {
	local t=$1 opt out err st
	for opt in --no-such-option-at-all -@; do
		out=$("$t" "$opt" 2>"$BATS_TEST_TMPDIR/err" </dev/null) && st=0 || st=$?
		err=$(cat "$BATS_TEST_TMPDIR/err")
		[ "$st" -eq 2 ] || { fail "$t $opt: exit status $st, not 2"; return 1; }
		[ -z "$out" ] || { fail "$t $opt: wrote to stdout: $out"; return 1; }
		[[ "$err" == *"$t"*"--help"* ]] ||
			{ fail "$t $opt: no hint naming --help on stderr: $err"; return 1; }
	done
	# A missing option argument is a usage error too.
	out=$("$t" --output 2>"$BATS_TEST_TMPDIR/err" </dev/null) && st=0 || st=$?
	[ "$st" -eq 2 ] || { fail "$t --output (no argument): exit status $st, not 2"; return 1; }
	[ -z "$out" ] || { fail "$t --output (no argument): wrote to stdout: $out"; return 1; }
}

# A missing input file: status 3 and a message naming the file.
contract_missing_file() {
	local t=$1 out err st args
	reads_files "$t" || return 0
	mapfile -t args < <(contract_args "$t")
	out=$("$t" "${args[@]}" no-such-file.ndjson 2>"$BATS_TEST_TMPDIR/err" </dev/null) &&
		st=0 || st=$?
	err=$(cat "$BATS_TEST_TMPDIR/err")
	[ "$st" -eq 3 ] || { fail "$t no-such-file.ndjson: exit status $st, not 3"; return 1; }
	[[ "$err" == *"$t: "*"no-such-file.ndjson"* ]] ||
		{ fail "$t no-such-file.ndjson: the message does not name the file: $err"; return 1; }
}

# "-" is standard input: the same output as the file named, and as no file.
contract_stdin() {
	local t=$1 in args st1 st2 st3
	reads_files "$t" || return 0
	in=$(contract_input "$t")
	mapfile -t args < <(contract_args "$t")
	"$t" "${args[@]}" "$in" >"$BATS_TEST_TMPDIR/o1" 2>/dev/null </dev/null &&
		st1=0 || st1=$?
	"$t" "${args[@]}" - >"$BATS_TEST_TMPDIR/o2" 2>/dev/null <"$in" && st2=0 || st2=$?
	"$t" "${args[@]}" >"$BATS_TEST_TMPDIR/o3" 2>/dev/null <"$in" && st3=0 || st3=$?
	[ "$st1" -eq 0 ] || { fail "$t ${args[*]} $in: exit status $st1, not 0"; return 1; }
	[ "$st2" -eq 0 ] || { fail "$t ${args[*]} - < $in: exit status $st2, not 0"; return 1; }
	[ "$st3" -eq 0 ] || { fail "$t ${args[*]} < $in: exit status $st3, not 0"; return 1; }
	[ -s "$BATS_TEST_TMPDIR/o1" ] || { fail "$t ${args[*]} $in: no output"; return 1; }
	same_bytes "$BATS_TEST_TMPDIR/o1" "$BATS_TEST_TMPDIR/o2" ||
		{ fail "$t: \"-\" does not read what the file gives"; return 1; }
	same_bytes "$BATS_TEST_TMPDIR/o1" "$BATS_TEST_TMPDIR/o3" ||
		{ fail "$t: no file does not read standard input"; return 1; }
}

# Output to a full disk: a failure status (3) and a message on stderr.
contract_full() {
	local t=$1 in args err st
	# Even --version checks its write.
	"$t" --version >/dev/full 2>"$BATS_TEST_TMPDIR/err" </dev/null && st=0 || st=$?
	err=$(cat "$BATS_TEST_TMPDIR/err")
	[ "$st" -eq 3 ] || { fail "$t --version >/dev/full: exit status $st, not 3"; return 1; }
	[[ "$err" == *"$t: "* ]] || { fail "$t --version >/dev/full: no message on stderr"; return 1; }
	mapfile -t args < <(contract_args "$t")
	if reads_files "$t"; then
		in=$(contract_input "$t")
		"$t" "${args[@]}" "$in" >/dev/full 2>"$BATS_TEST_TMPDIR/err" </dev/null &&
			st=0 || st=$?
	else
		"$t" "${args[@]}" >/dev/full 2>"$BATS_TEST_TMPDIR/err" </dev/null &&
			st=0 || st=$?
	fi
	err=$(cat "$BATS_TEST_TMPDIR/err")
	[ "$st" -eq 3 ] || { fail "$t ${args[*]} >/dev/full: exit status $st, not 3"; return 1; }
	[[ "$err" == *"$t: "*"standard output"* ]] ||
		{ fail "$t ${args[*]} >/dev/full: no message naming the output on stderr: $err"; return 1; }
}

# Every contract check for one tool (for a suite that wants them all).
check_contract() {
	contract_help "$1" || return 1
	contract_version "$1" || return 1
	contract_bad_option "$1" || return 1
	contract_missing_file "$1" || return 1
	contract_stdin "$1" || return 1
	contract_full "$1" || return 1
}
