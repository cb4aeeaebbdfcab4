# corral — GNU Makefile.
#
#   make              build build/corrald
#   make run          install missing packages, build, run in the foreground with conf/corral.ini
#   make test         install missing packages; unit + integration tests, then the
#                     same suite under ASan+UBSan, then the concurrency tests under TSan
#   make check        one pass of the tests with the current SANITIZE (no deps step)
#   make install      PREFIX=/usr/local DESTDIR= : binary, /etc/corral/corral.ini, systemd unit
#   make bench        benchmarks (see bench/README.md)
#   make fuzz         FUZZ_SECONDS=60 per target with clang's libFuzzer (see fuzz/README.md)
#
# SANITIZE=address,undefined or SANITIZE=thread builds into build-asan/ or build-tsan/;
# make fuzz builds into build-fuzz/.

SHELL       := /bin/bash
CC          ?= cc
PKGS        := libevent libevent_pthreads libevent_extra libcurl inih libsystemd libcrypt
LLHTTP_SRC  ?= /usr/share/llhttp
LLHTTP_INC  ?= /usr/share/include/llhttp
PREFIX      ?= /usr/local
SYSCONFDIR  ?= /etc
UNITDIR     ?= /lib/systemd/system
PYTHON      ?= /usr/bin/python3
VERSION     := 0.1.0

SANITIZE ?=
ifeq ($(SANITIZE),)
  BUILD := build
  SANFLAGS :=
else ifeq ($(SANITIZE),thread)
  BUILD := build-tsan
  SANFLAGS := -fsanitize=thread
else ifneq ($(findstring fuzzer,$(SANITIZE)),)
  BUILD := build-fuzz
  SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
  BUILD := build-asan
  SANFLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# llhttp: a pkg-config module if there is one, else Debian's node-llhttp sources.
HAVE_LIBLLHTTP := $(shell pkg-config --exists libllhttp 2>/dev/null && echo yes)
ifeq ($(HAVE_LIBLLHTTP),yes)
  PKG_CFLAGS += $(shell pkg-config --cflags libllhttp)
  PKG_LIBS   += $(shell pkg-config --libs libllhttp)
  LLHTTP_OBJ :=
else
  PKG_CFLAGS += -I$(LLHTTP_INC)
  LLHTTP_OBJ := $(BUILD)/llhttp/llhttp.o $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o
endif

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -pthread -Iinclude $(PKG_CFLAGS) \
           -DCORRAL_VERSION=\"$(VERSION)\" $(SANFLAGS) -MMD -MP
LDFLAGS += -pthread $(SANFLAGS)
LDLIBS  += $(PKG_LIBS)

SRCS     := $(wildcard src/*.c)
OBJS     := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS)) $(LLHTTP_OBJ)
UNIT_SRCS:= $(wildcard tests/unit/test_*.c)
UNIT_BINS:= $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
FUZZ_NAMES  := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_REPLAY := $(patsubst %,$(BUILD)/fuzz/replay_%,$(FUZZ_NAMES))
FUZZ_SECONDS ?= 60

.PHONY: all run test check unit integration fuzz-replay fuzz fuzz-run tsan-check deps install bench clean

all: $(BUILD)/corrald

$(BUILD)/corrald: $(OBJS) $(LLHTTP_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/llhttp/%.o: $(LLHTTP_SRC)/%.c | $(BUILD)/llhttp
	$(CC) -O2 -g -I$(LLHTTP_INC) -DLLHTTP_STRICT_MODE=1 $(SANFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJS) $(LDLIBS)

$(BUILD)/fuzz/%.o: fuzz/%.c | $(BUILD)/fuzz
	$(CC) $(CFLAGS) -c -o $@ $<

.SECONDARY: $(patsubst %,$(BUILD)/fuzz/fuzz_%.o,$(FUZZ_NAMES)) $(BUILD)/fuzz/replay.o

# fuzz_request cuts the client's bytes into small reads (fuzz/fuzz_request.c)
$(BUILD)/fuzz/replay_request $(BUILD)/fuzz/fuzz_request: LDFLAGS += -Wl,--wrap=evbuffer_read

# A fuzz target with replay.c's main: runs the inputs it is given.
$(BUILD)/fuzz/replay_%: $(BUILD)/fuzz/fuzz_%.o $(BUILD)/fuzz/replay.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# A fuzz target with libFuzzer's main (only in the `make fuzz` build).
$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/fuzz_%.o $(LIB_OBJS)
	$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

$(BUILD)/obj $(BUILD)/llhttp $(BUILD)/tests $(BUILD)/fuzz:
	mkdir -p $@

deps:
	@./.ci/deps

run: deps
	$(MAKE) all
	./$(BUILD)/corrald -c conf/corral.ini

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; ./$$t; done

integration: $(BUILD)/corrald
	CORRALD=$(CURDIR)/$(BUILD)/corrald SANITIZE=$(SANITIZE) $(PYTHON) -m pytest -q tests/integration $(PYTEST_ARGS)

# Every fuzz target over its corpus (fuzz/corpus/NAME: seeds and the inputs
# that once found a bug), without libFuzzer.
fuzz-replay: $(FUZZ_REPLAY)
	@set -e; for n in $(FUZZ_NAMES); do \
	  [ -d fuzz/corpus/$$n ] || { echo "fuzz/corpus/$$n is missing: every target needs seeds" >&2; exit 1; }; \
	  ./$(BUILD)/fuzz/replay_$$n fuzz/corpus/$$n; \
	done

check: unit fuzz-replay integration

# The concurrency tests (marked "concurrency") again under ThreadSanitizer.
tsan-check:
	$(MAKE) SANITIZE=thread unit
	$(MAKE) SANITIZE=thread integration PYTEST_ARGS='-m concurrency'

test: deps
	$(MAKE) check
	$(MAKE) SANITIZE=address,undefined check
	$(MAKE) tsan-check

install: $(BUILD)/corrald
	install -D -m 0755 $(BUILD)/corrald $(DESTDIR)$(PREFIX)/sbin/corrald
	install -D -m 0644 conf/corral.ini $(DESTDIR)$(SYSCONFDIR)/corral/corral.ini
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g' systemd/corral.service > $(BUILD)/corral.service
	install -D -m 0644 $(BUILD)/corral.service $(DESTDIR)$(UNITDIR)/corral.service

bench: deps
	$(MAKE) all
	./bench/run

# Coverage-guided fuzzing with clang's libFuzzer, FUZZ_SECONDS per target
# (FUZZ=NAME for one). New inputs go to build-fuzz/corpus-NAME, a crash's
# input to build-fuzz/crash-*; fuzz/README.md says what to do with one.
fuzz:
	$(MAKE) CC=clang SANITIZE=fuzzer-no-link,address,undefined fuzz-run

fuzz-run: $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(or $(FUZZ),$(FUZZ_NAMES)))
	@set -e; for n in $(or $(FUZZ),$(FUZZ_NAMES)); do \
	  mkdir -p $(BUILD)/corpus-$$n; \
	  echo "== fuzz_$$n for $(FUZZ_SECONDS) s"; \
	  ./$(BUILD)/fuzz/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(BUILD)/ \
	    $(BUILD)/corpus-$$n fuzz/corpus/$$n; \
	done

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(OBJS:.o=.d) $(UNIT_BINS:=.d) $(wildcard $(BUILD)/fuzz/*.d)
