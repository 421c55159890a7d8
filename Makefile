# pglane — build, test and run. `make help` lists the targets.

BUILD     ?= build
CC        ?= cc
WARN      := -std=c11 -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Wundef
CFLAGS    ?= -O2 -g
CPPFLAGS  += -D_GNU_SOURCE -I. -I/usr/include/postgresql
SANITIZE  :=
ifeq ($(BUILD),build-asan)
SANITIZE  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CFLAGS    := -O1 -g
endif
ifeq ($(BUILD),build-tsan)
SANITIZE  := -fsanitize=thread -fno-omit-frame-pointer
CFLAGS    := -O1 -g
endif
ALL_CFLAGS = $(WARN) $(CFLAGS) $(SANITIZE)
LDFLAGS   += $(SANITIZE)

LIBS_PROTO   := -lssl -lcrypto -lidn
# libpg_query exports its own strnlen (a byte loop): linked after libc, libc's is the process's (each
# library's symbols are looked up in the order the binary lists them; tests/install/check.sh checks it).
LIBS_ROUTING := -Wl,--push-state,--no-as-needed -lc -Wl,--pop-state -lpg_query -lpcre2-8
LIBS_CONF    := -linih
LIBS_PROXY   := -luv -lpq
LIBS_ALL     := $(LIBS_PROXY) $(LIBS_CONF) $(LIBS_ROUTING) $(LIBS_PROTO) -lm -pthread
LIBS_MAIN    := -lsystemd

PROTO_SRC   := $(wildcard protocol/*.c)
ROUTING_SRC := $(wildcard routing/*.c)
CONF_SRC    := $(wildcard conf/*.c)
PROXY_SRC   := $(filter-out proxy/main.c,$(wildcard proxy/*.c proxy/*/*.c))
obj = $(1:%.c=$(BUILD)/obj/%.o)

UNIT_SRC    := $(wildcard tests/unit/test_*.c)
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit_%)
ITEST_SRC   := $(wildcard tests/integration/test_*.c)
ITEST_BIN   := $(ITEST_SRC:tests/integration/%.c=$(BUILD)/tests/integration_%)
HARNESS_OBJ := $(BUILD)/obj/tests/integration/harness.o $(BUILD)/obj/tests/integration/rawpg.o

DEPS_STAMP  := .deps-ok

.SECONDARY:
.PHONY: all deps test asan tsan run demo bench fuzz clean help tests man install deb
all: $(BUILD)/pglane

help:
	@echo "make          build build/pglane"
	@echo "make deps     install missing Debian 12 packages"
	@echo "make test     build and run every test (unit + integration against a real PostgreSQL 15)"
	@echo "make asan     the same suite under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make tsan     the integration suite under ThreadSanitizer, workers = 4"
	@echo "make fuzz     libFuzzer targets for FUZZ_SECONDS (default 60) each"
	@echo "make bench    pgbench through pglane, PgBouncer and direct (BENCH_QUICK=1 for a short run)"
	@echo "make demo     the InsightsNow scenario: blocking before, fixes, direct and through pglane"
	@echo "make run      throwaway PostgreSQL 15 cluster + pglane on 127.0.0.1:6432 (Ctrl-C stops both)"
	@echo "make install  binary, man pages, examples and pglane.service under PREFIX (/usr/local), DESTDIR honoured"
	@echo "make deb      the Debian package (dpkg-buildpackage -us -uc -b), written to build/deb/"

deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/install-deps.sh
	@scripts/install-deps.sh
	@touch $@

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

# One archive per module, so that a module's unit tests link only what they test.
$(BUILD)/libproto.a: $(call obj,$(PROTO_SRC))
$(BUILD)/librouting.a: $(call obj,$(ROUTING_SRC))
$(BUILD)/libconf.a: $(call obj,$(CONF_SRC))
$(BUILD)/libproxy.a: $(call obj,$(PROXY_SRC))
$(BUILD)/lib%.a:
	@rm -f $@
	ar rcs $@ $^

MODLIBS := $(BUILD)/libproxy.a $(BUILD)/libconf.a $(BUILD)/librouting.a $(BUILD)/libproto.a

$(BUILD)/pglane: $(BUILD)/obj/proxy/main.o $(MODLIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_ALL) $(LIBS_MAIN)

# Unit tests link the pure modules; tests/unit/test_proxy*.c (proxy/'s own tests) also link libproxy.a
# and its libraries, libsystemd included (proxy/lifecycle.c notifies the service manager).
PURELIBS := $(BUILD)/libconf.a $(BUILD)/librouting.a $(BUILD)/libproto.a
$(BUILD)/tests/unit_test_proxy%: $(BUILD)/obj/tests/unit/test_proxy%.o $(MODLIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_ALL) $(LIBS_MAIN) -lcmocka
$(BUILD)/tests/unit_%: $(BUILD)/obj/tests/unit/%.o $(PURELIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_CONF) $(LIBS_ROUTING) $(LIBS_PROTO) -lcmocka

# Integration tests drive the real binary with real clients; they link libpq and the harness only.
$(BUILD)/tests/integration_%: $(BUILD)/obj/tests/integration/%.o $(HARNESS_OBJ) $(BUILD)/libproto.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lpq $(LIBS_PROTO) -lcmocka -lpthread

tests: $(BUILD)/pglane $(UNIT_BIN) $(ITEST_BIN)

test: deps
	@$(MAKE) --no-print-directory tests
	@tests/run.sh $(BUILD)

asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan tests
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 tests/run.sh build-asan

# workers > 1 under ThreadSanitizer: the whole integration suite (and the workers unit test) with every
# pglane the harness starts at workers = 4 unless its config says otherwise (PGLANE_TEST_WORKERS); a data
# race aborts pglane or the test binary, which fails the test.
TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:abort_on_error=1:second_deadlock_stack=1
tsan: deps
	@$(MAKE) --no-print-directory BUILD=build-tsan tests
	@$(TSAN_ENV) tests/run.sh build-tsan unit_test_proxy_workers
	@$(TSAN_ENV) PGLANE_TEST_WORKERS=4 tests/run.sh build-tsan integration_

run: deps $(BUILD)/pglane
	@scripts/run-embedded.sh

# Benchmarks (never part of make test): pglane vs PgBouncer vs direct, and the InsightsNow scenario.
bench: deps $(BUILD)/pglane
	@bench/compare/run

demo: deps $(BUILD)/pglane
	@bench/insightsnow/run

clean:
	rm -rf build build-asan build-tsan

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, pglane(1) and pglane.ini(5) (generated from
# README.md's sections by man/gen.sh), example configurations and the Grafana dashboard in
# $(DATADIR), and the systemd unit. The configuration itself ($(SYSCONFDIR)/pglane/pglane.ini, read
# by the unit) is never written over: copy it from $(DATADIR) (README, Install).
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
DATADIR    ?= $(PREFIX)/share/pglane
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALL    ?= install
MAN_PAGES  := $(BUILD)/man/pglane.1 $(BUILD)/man/pglane.ini.5
EXAMPLES   := dist/pglane.ini dist/userlist.txt conf/insightsnow.ini

man: $(MAN_PAGES)
$(BUILD)/man/%: man/%.in README.md man/gen.sh man/md2man.awk proxy/proxy.h
	man/gen.sh $< README.md $@

install: $(BUILD)/pglane $(MAN_PAGES)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
		$(DESTDIR)$(DATADIR) $(DESTDIR)$(UNITDIR)
	$(INSTALL) -m 0755 $(BUILD)/pglane $(DESTDIR)$(BINDIR)/pglane
	$(INSTALL) -m 0644 $(BUILD)/man/pglane.1 $(DESTDIR)$(MANDIR)/man1/pglane.1
	$(INSTALL) -m 0644 $(BUILD)/man/pglane.ini.5 $(DESTDIR)$(MANDIR)/man5/pglane.ini.5
	$(INSTALL) -m 0644 $(EXAMPLES) $(DESTDIR)$(DATADIR)/
	$(INSTALL) -m 0644 conf/grafana/pglane-dashboard.json $(DESTDIR)$(DATADIR)/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' dist/pglane.service.in \
		>$(DESTDIR)$(UNITDIR)/pglane.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/pglane.service

# make deb: the Debian package (debian/) from the tracked files of this checkout, copied to
# $(BUILD)/deb/src and built there with dpkg-buildpackage -us -uc -b, then checked by lintian (fails
# on an error). The .deb files land in $(BUILD)/deb/.
DEB_DIR := $(BUILD)/deb
deb:
	@scripts/install-deps.sh dpkg-dev debhelper lintian
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	git ls-files -z | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && dpkg-buildpackage -us -uc -b -Jauto
	lintian --fail-on error $(DEB_DIR)/*.changes
	@ls $(DEB_DIR)/*.deb

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# make fuzz [FUZZ_SECONDS=60]: the libFuzzer targets of tests/fuzz/ (see its README.md), built with
# clang from the module sources into build-fuzz/, each run on its regression inputs and then for
# FUZZ_SECONDS on a scratch copy of its seed corpus. Fails on any crash, sanitizer report or hang.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_BUILD   := build-fuzz
FUZZ_TARGETS := frame startup scram lexer conf
# The project's warnings, less clang's -Wformat-nonliteral (in its -Wformat=2, unlike gcc's): it
# flags conf/diag.c's va_list helper, which has no format attribute.
FUZZ_CFLAGS  := $(WARN) -Wno-format-nonliteral -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_LIBS    := $(LIBS_CONF) $(LIBS_ROUTING) $(LIBS_PROTO)
fuzz_obj      = $(1:%.c=$(FUZZ_BUILD)/obj/%.o)

$(FUZZ_BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -D_GNU_SOURCE -I. $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz_frame $(FUZZ_BUILD)/fuzz_startup $(FUZZ_BUILD)/fuzz_scram: $(call fuzz_obj,$(PROTO_SRC))
$(FUZZ_BUILD)/fuzz_lexer: $(call fuzz_obj,$(ROUTING_SRC))
$(FUZZ_BUILD)/fuzz_conf: $(call fuzz_obj,$(CONF_SRC))
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/obj/tests/fuzz/fuzz_%.o
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(FUZZ_LIBS)

fuzz: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
