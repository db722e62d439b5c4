#!/usr/bin/env bats
# packaging.bats: what a packager relies on: one version everywhere, CPPFLAGS honoured and -Werror only for the tests, only the libraries a tool uses, install with modes and an uninstall that leaves nothing, systemd units that verify.

load helpers

bats_require_minimum_version 1.5.0

# make install into DESTDIR $1, of the tools under test, without building.
install_here() {
	make -C "$RECO_ROOT" -s install INSTALL_DEPS= BUILD="$(dirname "$RECO_BIN")" \
		DESTDIR="$1" PREFIX=/usr/local >/dev/null
}

TOOLS="reco-ingest reco-gen reco-enrich reco-clean reco-profile reco-train reco-eval reco-serve"

@test "every tool prints the version of the file VERSION" {
	local v t
	v=$(cat "$RECO_ROOT/VERSION")
	[[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "VERSION: \"$v\""
	for t in $TOOLS; do
		[ "$("$t" --version)" = "$t (reco) $v" ] || fail "$t --version: $("$t" --version)"
		[ "$("$t" -V)" = "$t (reco) $v" ]
	done
	grep -q "^$v " "$RECO_ROOT/NEWS" || grep -q "^$v (" "$RECO_ROOT/NEWS" || fail "NEWS has no entry for $v"
	grep -q "BSD 2-Clause" "$RECO_ROOT/LICENSE"
}

@test "the build honours CPPFLAGS; warnings are errors for make check, not for make" {
	local b="$BATS_TEST_TMPDIR/b"
	run make -C "$RECO_ROOT" -n -B BUILD="$b" CPPFLAGS=-D_FORTIFY_SOURCE=2 all
	[ "$status" -eq 0 ]
	[ "$(grep -c -- '-c -o .*/lib/store.o' <<<"$output")" -eq 1 ]
	grep -- '-c -o .*/lib/store.o' <<<"$output" | grep -q -- '-D_FORTIFY_SOURCE=2' || fail "CPPFLAGS not used"
	grep -- '-c -o .*/lib/store.o' <<<"$output" | grep -vq -- '-Werror' || fail "-Werror in a plain build"
	grep -- '-c -o .*/lib/store.o' <<<"$output" | grep -q -- "-DRECO_VERSION_NUMBER=$(cat "$RECO_ROOT/VERSION") "
	run make -C "$RECO_ROOT" -n -B BUILD="$b" check
	grep -- '-c -o .*/lib/store.o' <<<"$output" | grep -q -- '-Werror' || fail "no -Werror under make check"
	run make -C "$RECO_ROOT" -n -B BUILD="$b" WERROR=1 all
	grep -- '-c -o .*/lib/store.o' <<<"$output" | grep -q -- '-Werror'
}

@test "a tool maps only the libraries it uses: libcurl once a registry is asked, libmicrohttpd in reco-serve alone" {
	local t
	for t in $TOOLS; do
		run ldd "$RECO_BIN/$t"
		[ "$status" -eq 0 ]
		[[ "$output" != *libcurl* ]] || fail "$t links libcurl"
		if [ "$t" = reco-serve ]; then
			[[ "$output" == *libmicrohttpd* ]] || fail "reco-serve without libmicrohttpd"
		else
			[[ "$output" != *libmicrohttpd* ]] || fail "$t links libmicrohttpd"
		fi
	done
	# A registry that does not answer: libcurl is loaded and says so.
	run reco-ingest -O confluent --registry http://127.0.0.1:1 --subject s </dev/null
	[ "$status" -eq 3 ]
	[[ "$output" == *"schema registry"*onnect* ]] || fail "$output"
}

@test "make install: the tools 755, the rest 644; they run from there; make uninstall leaves nothing" {
	local d="$BATS_TEST_TMPDIR/root" t f
	install_here "$d"
	for t in $TOOLS; do
		f="$d/usr/local/bin/$t"
		[ "$(stat -c %a "$f")" = 755 ] || fail "$f: mode $(stat -c %a "$f")"
		"$f" --version >/dev/null
	done
	[ -f "$d/usr/local/share/man/man1/reco-serve.1" ]
	[ -f "$d/usr/local/share/man/man7/reco.7" ]
	[ -f "$d/usr/local/share/reco/schema/event.avsc" ]
	[ -f "$d/usr/local/share/reco/examples/systemd/reco-serve.service" ]
	[ -f "$d/usr/local/share/bash-completion/completions/reco-serve" ]
	[ -z "$(find "$d" -type f ! -path '*/bin/*' ! -perm 644)" ] ||
		fail "not 644: $(find "$d" -type f ! -path '*/bin/*' ! -perm 644)"
	# A generated file of the installed tools reads back.
	"$d/usr/local/bin/reco-gen" --events 50 | "$d/usr/local/bin/reco-ingest" -q | wc -l >/dev/null
	make -C "$RECO_ROOT" -s uninstall BUILD="$(dirname "$RECO_BIN")" DESTDIR="$d" PREFIX=/usr/local >/dev/null
	[ -z "$(find "$d" -mindepth 1 ! -path "$d/usr" ! -path "$d/usr/local" ! -path "$d/usr/local/share")" ] ||
		fail "left behind: $(find "$d" -mindepth 1)"
}

@test "the systemd units verify: reco-serve reloads on SIGHUP, each pipeline member has its own lease" {
	command -v systemd-analyze >/dev/null || fail "systemd-analyze is missing (tests/tools/deps.sh installs systemd)"
	local d="$BATS_TEST_TMPDIR/root" u="$BATS_TEST_TMPDIR/units"
	install_here "$d"
	mkdir -p "$u"
	sed "s|/usr/local/bin/|$d/usr/local/bin/|g" "$RECO_ROOT/examples/systemd/reco-serve.service" >"$u/reco-serve.service"
	sed "s|/usr/local/bin/|$d/usr/local/bin/|g" "$RECO_ROOT/examples/systemd/reco-pipeline@.service" >"$u/reco-pipeline@.service"
	cp "$u/reco-pipeline@.service" "$u/reco-pipeline@0.service"
	cd "$u"
	MANPATH="$d/usr/local/share/man" run systemd-analyze verify ./reco-serve.service ./reco-pipeline@0.service
	[ "$status" -eq 0 ] || fail "$output"
	[ -z "$output" ] || fail "$output"
	grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' reco-serve.service
	grep -q -- '--writer member-%i' reco-pipeline@.service
}

@test "the tools that write no events neither list nor take -O, --codec, --key and --subject; reco-serve neither -I, --rejects nor --registry" {
	local t o
	for t in reco-train reco-eval reco-serve; do
		run "$t" --help
		[ "$status" -eq 0 ]
		for o in '-O, --output-format' '--codec' '--key FIELD' '--subject'; do
			[[ "$output" != *"$o"* ]] || fail "$t --help lists $o"
		done
		for o in "-O avro" "--codec deflate" "--key user" "--subject s"; do
			# shellcheck disable=SC2086
			run "$t" $o /dev/null
			[ "$status" -eq 2 ] || fail "$t $o: status $status"
			[[ "$output" == *"not events: -O, --key, --codec and --subject do not apply"* ]] || fail "$t $o: $output"
		done
	done
	# reco-train and reco-eval read events, Avro messages too.
	run reco-train --help
	[[ "$output" == *"--registry URL"* ]]
	run reco-serve --help
	for o in '-I, --input-format' '--rejects FILE' '--max-rejects' '--max-initial-rejects' '--registry' '--message-delimiter'; do
		[[ "$output" != *"$o"* ]] || fail "reco-serve --help lists $o"
	done
	for o in "-I ndjson" "--rejects r.ndjson" "--max-rejects 3" "--max-initial-rejects 3"; do
		# shellcheck disable=SC2086
		run reco-serve $o --model m.bin
		[ "$status" -eq 2 ] || fail "reco-serve $o: status $status"
		[[ "$output" == *"-I, --rejects, --max-rejects and --max-initial-rejects do not apply"* ]] || fail "$output"
	done
	[ ! -e r.ndjson ]
	# The tools that write events still list and take them.
	run reco-ingest --help
	[[ "$output" == *"-O, --output-format"* && "$output" == *"--rejects FILE"* ]]
}

@test "bash completion: each tool's own options, the values of list options, files elsewhere" {
	sh "$RECO_ROOT/tests/tools/completion.sh" "$RECO_BIN" $TOOLS >reco.bash
	# complete WORDS...: what _reco offers for the last word.
	complete_words() {
		bash -c 'source ./reco.bash; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _reco; printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
	}
	[ "$(complete_words reco-serve --con | sort | tr "\n" " ")" = "--config --console --console-token --control " ]
	[ "$(complete_words reco-ingest --sha | sort | tr '\n' ' ')" = "--shard --shard-by " ]
	[ -z "$(complete_words reco-serve --cod)" ]
	[ -z "$(complete_words reco-train --key)" ]
	[ "$(complete_words reco-ingest --shard-by m)" = murmur2 ]
	[ "$(complete_words reco-gen --regime h)" = history ]
	[ "$(complete_words reco-ingest -O a)" = avro ]
	touch events.ndjson
	[ "$(complete_words reco-train ev)" = events.ndjson ]
	# Every long option --help lists as an option is offered.
	local t o n
	for t in $TOOLS; do
		n=0
		for o in $("$t" --help | grep -oE -- '^ +(-[a-zA-Z], )?--[a-z][a-z-]*(, --[a-z][a-z-]*)?' |
			grep -oE -- '--[a-z][a-z-]*' | sort -u); do
			complete_words "$t" "$o" | grep -qx -- "$o" || fail "$t: $o is not completed"
			n=$((n + 1))
		done
		[ "$n" -ge 12 ] || fail "$t: only $n options in --help"
	done
	# And the completion make install puts in place is the one make builds.
	[ -f "$(dirname "$RECO_BIN")/reco.bash-completion" ]
	cmp reco.bash "$(dirname "$RECO_BIN")/reco.bash-completion"
}
