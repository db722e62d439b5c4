# Makefile: build, test, install and benchmark the reco toolkit.
PREFIX ?= /usr/local
DESTDIR ?=
BINDIR = $(PREFIX)/bin
MANDIR = $(PREFIX)/share/man
DATADIR = $(PREFIX)/share/reco
COMPLETIONDIR = $(PREFIX)/share/bash-completion/completions

CC ?= cc
CFLAGS ?= -O2 -g
# The version, from one place; every tool's -V prints it.
VERSION := $(shell cat VERSION)
# Warnings are errors for the tests and CI (make check, .ci/run), not for a
# plain build, so that a newer compiler's new warnings do not stop one.
ifneq ($(filter check,$(MAKECMDGOALS)),)
WERROR ?= 1
endif
WERROR ?= 0
SANITIZE ?=
ifeq ($(SANITIZE),)
BUILD ?= build
else
BUILD ?= build-san
SANFLAGS = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2
ifeq ($(WERROR),1)
WARN += -Werror
endif
PKGS = jansson avro-c zlib hiredis libmicrohttpd libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
# libcurl is loaded when a registry is first asked (registry.c); the
# linker keeps only the libraries a tool uses (libmicrohttpd: reco-serve).
PKG_LIBS := -Wl,--as-needed $(shell pkg-config --libs $(filter-out libcurl,$(PKGS))) -ldl
ALL_CFLAGS = -std=c11 -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64 -DRECO_VERSION_NUMBER=$(VERSION) \
	$(CPPFLAGS) $(WARN) $(CFLAGS) $(SANFLAGS) $(PKG_CFLAGS) -Ilib
LDLIBS = $(PKG_LIBS) -lcsv -lm
LDFLAGS += $(SANFLAGS)

TOOLS = reco-ingest reco-gen reco-enrich reco-clean reco-profile reco-train reco-eval reco-serve
LIBSRC = $(wildcard lib/*.c)
LIBOBJ = $(patsubst lib/%.c,$(BUILD)/lib/%.o,$(LIBSRC)) $(BUILD)/lib/schema_text.o \
	$(BUILD)/lib/console_text.o
CONSOLE = lib/console/index.html lib/console/app.js lib/console/style.css
BINS = $(addprefix $(BUILD)/bin/,$(TOOLS))
MAN1 = $(wildcard man/*.1)
MAN5 = $(wildcard man/*.5)
MAN7 = $(wildcard man/*.7)
SCHEMAS = schema/event.avsc schema/event.schema.json schema/profile.avsc \
	schema/profile.schema.json schema/request.schema.json schema/response.schema.json

all: $(BINS) $(BUILD)/reco.bash-completion

# Bash completion, from each built tool's --options.
$(BUILD)/reco.bash-completion: $(BINS) tests/tools/completion.sh
	sh tests/tools/completion.sh $(BUILD)/bin $(TOOLS) > $@.tmp && mv $@.tmp $@

# The flags of the last build: a change (WERROR, CPPFLAGS, CFLAGS, the
# version) rebuilds everything.
FLAGS_STAMP = $(BUILD)/.flags
FLAGS_NOW = $(strip $(ALL_CFLAGS) $(LDFLAGS))
$(FLAGS_STAMP): FORCE | $(BUILD)/lib
	@echo '$(FLAGS_NOW)' | cmp -s - $@ || echo '$(FLAGS_NOW)' > $@
FORCE:

$(BUILD)/lib/%.o: lib/%.c $(wildcard lib/*.h) $(FLAGS_STAMP) | $(BUILD)/lib
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The schemas are data files; the tools carry their text.
$(BUILD)/lib/schema_text.c: $(SCHEMAS) tests/tools/embed.sh Makefile | $(BUILD)/lib
	sh tests/tools/embed.sh schema/event.avsc event_avsc schema/event.schema.json event_json_schema \
		schema/profile.avsc profile_avsc schema/profile.schema.json profile_json_schema \
		schema/request.schema.json request_json_schema \
		schema/response.schema.json response_json_schema > $@

$(BUILD)/lib/schema_text.o: $(BUILD)/lib/schema_text.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# reco-serve's console: its page, script and style, carried by the binary.
$(BUILD)/lib/console_text.c: $(CONSOLE) tests/tools/embed.sh Makefile | $(BUILD)/lib
	sh tests/tools/embed.sh lib/console/index.html console_html lib/console/app.js console_js \
		lib/console/style.css console_css > $@

$(BUILD)/lib/console_text.o: $(BUILD)/lib/console_text.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/libreco.a: $(LIBOBJ)
	rm -f $@
	ar rcs $@ $(LIBOBJ)

$(BUILD)/bin/%: cmd/%.c $(BUILD)/libreco.a $(wildcard lib/*.h) $(FLAGS_STAMP) | $(BUILD)/bin
	$(CC) $(ALL_CFLAGS) -DRECO_CMD -o $@ $< $(BUILD)/libreco.a $(LDFLAGS) $(LDLIBS)

$(BUILD)/lib $(BUILD)/bin $(BUILD)/tests:
	mkdir -p $@

# Test helpers (not installed).
TESTBINS = $(BUILD)/tests/evcheck $(BUILD)/tests/avro-old $(BUILD)/tests/accesslog-check \
	$(BUILD)/tests/kafka-broker $(BUILD)/tests/failwrite.so $(BUILD)/tests/sknn-check \
	$(BUILD)/tests/crc-check $(BUILD)/tests/avro-pcf $(BUILD)/tests/pool-check
$(BUILD)/tests/%: tests/tools/%.c $(BUILD)/libreco.a | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libreco.a $(LDFLAGS) $(LDLIBS)

# A full disk for the tests (LD_PRELOAD): built without the sanitizers
# (it is loaded into their processes) and without libreco.
$(BUILD)/tests/failwrite.so: tests/tools/failwrite.c | $(BUILD)/tests
	$(CC) -std=c11 $(WARN) -O2 -shared -fPIC -o $@ $< -ldl

# The loopback Kafka cluster of the live tests: librdkafka only, no libreco.
$(BUILD)/tests/kafka-broker: tests/tools/kafka-broker.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $$(pkg-config --cflags rdkafka) -o $@ $< $(LDFLAGS) \
		$$(pkg-config --libs rdkafka)

# The probe of the freshness benchmark: librdkafka and hiredis, no libreco.
$(BUILD)/tests/freshness: tests/tools/freshness.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $$(pkg-config --cflags rdkafka hiredis) -o $@ $< $(LDFLAGS) \
		$$(pkg-config --libs rdkafka hiredis) -lpthread

# Install the Debian packages that the build and the tests need.
deps:
	sh tests/tools/deps.sh

# Run the quickstart example with the built tools.
demo: all
	@if [ ! -f examples/quickstart.sh ]; then \
		echo "demo: examples/quickstart.sh is missing" >&2; exit 1; fi
	PATH="$(abspath $(BUILD)/bin):$$PATH" sh examples/quickstart.sh

check: all $(TESTBINS)
	mandoc -Tlint -Wwarning $(MAN1) $(MAN5) $(MAN7)
	RECO_BIN=$(abspath $(BUILD)/bin) RECO_TESTBIN=$(abspath $(BUILD)/tests) \
		bats tests/*.bats
	$(MAKE) --no-print-directory fuzz WERROR=$(WERROR)

# libFuzzer targets, each run for a bounded time on its checked-in corpus.
FUZZ_SECONDS ?= 10
FUZZERS = fuzz_event_json fuzz_csv fuzz_access_log fuzz_avro fuzz_profile
FUZZ_SRC = $(filter-out lib/schema_text.c,$(LIBSRC))
fuzz:
	@if command -v clang >/dev/null; then \
		mkdir -p $(BUILD)/fuzz; \
		for f in $(FUZZERS); do \
			[ -f tests/fuzz/$$f.c ] || continue; \
			clang -std=c11 -D_DEFAULT_SOURCE -DRECO_VERSION_NUMBER=$(VERSION) -g -O1 -fsanitize=fuzzer,address,undefined \
				$(PKG_CFLAGS) -Ilib -o $(BUILD)/fuzz/$$f tests/fuzz/$$f.c $(FUZZ_SRC) \
				$(BUILD)/lib/schema_text.c $(LDLIBS) || exit 1; \
			mkdir -p $(BUILD)/fuzz/$$f-corpus; \
			$(BUILD)/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=$(BUILD)/fuzz/ \
				$(BUILD)/fuzz/$$f-corpus tests/fuzz/corpus/$$f > $(BUILD)/fuzz/$$f.log 2>&1 \
				|| { tail -40 $(BUILD)/fuzz/$$f.log; exit 1; }; \
			echo "fuzz $$f: ok ($(FUZZ_SECONDS) s)"; \
		done; \
	else echo "fuzz: clang not found, fuzz targets not run"; exit 1; fi

BENCHES = run chain clean enrich train profile serve freshness
bench: all $(BUILD)/tests/kafka-broker $(BUILD)/tests/freshness
	@for b in $(BENCHES); do \
		[ -f tests/bench/$$b.sh ] || continue; \
		RECO_BIN=$(abspath $(BUILD)/bin) sh tests/bench/$$b.sh || exit 1; \
	done

# The scale benchmark: long-tail traffic for SCALE users (10 million by
# default; SCALE=200000 for a quick run). Not part of bench: it runs for
# a long time and needs about 25 GB of disk at the default.
bench-scale: all
	RECO_BIN=$(abspath $(BUILD)/bin) SCALE=$(SCALE) sh tests/bench/scale.sh

SCALE ?= 10000000

# install -m: the tools 755, the pages, schemas and examples 644;
# uninstall removes what install made, and its directories once empty.
EXAMPLES = $(wildcard examples/*.sh)
MONITORING = $(wildcard examples/monitoring/*)
SYSTEMD = $(wildcard examples/systemd/*)
# INSTALL_DEPS= installs what is built without building (the tests).
INSTALL_DEPS ?= all
install: $(INSTALL_DEPS)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(DATADIR)/schema \
		$(DESTDIR)$(DATADIR)/examples/monitoring $(DESTDIR)$(DATADIR)/examples/systemd \
		$(DESTDIR)$(COMPLETIONDIR)
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	for t in $(TOOLS); do \
		install -m 644 $(BUILD)/reco.bash-completion $(DESTDIR)$(COMPLETIONDIR)/$$t || exit 1; \
	done
	install -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 644 $(MAN7) $(DESTDIR)$(MANDIR)/man7/
	install -m 644 $(SCHEMAS) $(DESTDIR)$(DATADIR)/schema/
	install -m 644 $(EXAMPLES) $(DESTDIR)$(DATADIR)/examples/
	install -m 644 $(MONITORING) $(DESTDIR)$(DATADIR)/examples/monitoring/
	install -m 644 $(SYSTEMD) $(DESTDIR)$(DATADIR)/examples/systemd/

uninstall:
	for t in $(TOOLS); do rm -f $(DESTDIR)$(BINDIR)/$$t $(DESTDIR)$(COMPLETIONDIR)/$$t; done
	for m in $(notdir $(MAN1)); do rm -f $(DESTDIR)$(MANDIR)/man1/$$m; done
	for m in $(notdir $(MAN5)); do rm -f $(DESTDIR)$(MANDIR)/man5/$$m; done
	for m in $(notdir $(MAN7)); do rm -f $(DESTDIR)$(MANDIR)/man7/$$m; done
	for s in $(notdir $(SCHEMAS)); do rm -f $(DESTDIR)$(DATADIR)/schema/$$s; done
	for e in $(notdir $(EXAMPLES)); do rm -f $(DESTDIR)$(DATADIR)/examples/$$e; done
	for e in $(notdir $(MONITORING)); do rm -f $(DESTDIR)$(DATADIR)/examples/monitoring/$$e; done
	for e in $(notdir $(SYSTEMD)); do rm -f $(DESTDIR)$(DATADIR)/examples/systemd/$$e; done
	-rmdir $(DESTDIR)$(DATADIR)/examples/monitoring $(DESTDIR)$(DATADIR)/examples/systemd \
		$(DESTDIR)$(DATADIR)/examples $(DESTDIR)$(DATADIR)/schema $(DESTDIR)$(DATADIR) 2>/dev/null
	-for d in $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR) $(DESTDIR)$(COMPLETIONDIR) \
		$(DESTDIR)$(PREFIX)/share/bash-completion; do rmdir $$d 2>/dev/null; done; true

clean:
	rm -rf build build-san

# The console's screenshots in docs/ (headless Chromium).
console-shots: all
	RECO_BIN=$(abspath $(BUILD)/bin) sh tests/tools/console-shots.sh

.PHONY: all check deps demo fuzz bench bench-scale install uninstall clean console-shots FORCE
