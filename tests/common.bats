#!/usr/bin/env bats
# common.bats: the contract every reco tool keeps: help, version, usage errors, files, stdin, write errors.

load helpers

tools() {
	local list
	list=$(reco_tools)
	[ -n "$list" ] || { fail "no reco-* tools in $RECO_BIN"; return 1; }
	printf '%s\n' "$list"
}

@test "the tools are built" {
	run tools
	[ "$status" -eq 0 ]
	[[ "$output" == *reco-ingest* ]]
}

@test "--help and -h print the usage on stdout and exit 0" {
	for t in $(tools); do
		contract_help "$t"
	done
}

@test "--version and -V print 'reco-X (reco) VERSION' and exit 0" {
	for t in $(tools); do
		contract_version "$t"
	done
}

@test "every tool says the same version" {
	local v= first=
	for t in $(tools); do
		v=$("$t" --version </dev/null)
		v=${v##* }
		[ -z "$first" ] && first=$v
		[ "$v" = "$first" ] || fail "$t: version $v, others $first"
	done
}

@test "a bad option exits 2 with a hint on stderr and nothing on stdout" {
	for t in $(tools); do
		contract_bad_option "$t"
	done
}

@test "a missing input file exits 3 naming the file" {
	for t in $(tools); do
		contract_missing_file "$t"
	done
}

@test "'-' and no file read standard input" {
	for t in $(tools); do
		contract_stdin "$t"
	done
}

@test "writing to a full disk exits 3 with a message" {
	for t in $(tools); do
		contract_full "$t"
	done
}

@test "the usage names the options every tool shares" {
	for t in $(tools); do
		usage=$("$t" --help)
		for opt in --help --version; do
			[[ "$usage" == *"$opt"* ]] || fail "$t --help does not mention $opt"
		done
	done
}

@test "make install and uninstall honour PREFIX and DESTDIR" {
	local build root=$BATS_TEST_TMPDIR/root
	build=$(dirname "$RECO_BIN")
	make -s -C "$RECO_ROOT" install BUILD="$build" DESTDIR="$root" PREFIX=/opt/reco >/dev/null
	[ -x "$root/opt/reco/bin/reco-ingest" ]
	for t in "$root"/opt/reco/bin/*; do
		[ -f "$root/opt/reco/share/man/man1/$(basename "$t").1" ] ||
			fail "no man page for $(basename "$t")"
	done
	[ -f "$root/opt/reco/share/man/man7/reco.7" ]
	[ -f "$root/opt/reco/share/man/man5/reco-event.5" ]
	cmp "$root/opt/reco/share/reco/schema/event.avsc" "$RECO_ROOT/schema/event.avsc"
	"$root/opt/reco/bin/reco-ingest" --schema=avro | cmp - "$RECO_ROOT/schema/event.avsc"
	make -s -C "$RECO_ROOT" uninstall BUILD="$build" DESTDIR="$root" PREFIX=/opt/reco >/dev/null
	[ -z "$(find "$root" -type f)" ]
}
