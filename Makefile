# skerry build. `make` builds build/skerry and build/skerry-agent (the agent alone, which
# `skerry agent` runs from beside skerry); `make test` runs the whole suite;
# `make SAN=1 test` the same under AddressSanitizer and UndefinedBehaviorSanitizer.

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD ?= build
SANFLAGS :=
endif

CC ?= cc
PKGS := libuv raft libmicrohttpd gnutls jansson yaml-0.1 libsodium sqlite3 libpq
# What the agent links: every edge host holds their pages, so nothing of the tower's.
AGENT_PKGS := libuv raft libmicrohttpd gnutls jansson yaml-0.1 libsodium

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2 \
	  -Wstrict-prototypes -Wmissing-prototypes -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) $(SANFLAGS) \
	  -MMD -MP
LDFLAGS += $(SANFLAGS)
LDLIBS := $(PKG_LIBS) -lpthread
AGENT_LDLIBS := $(shell pkg-config --libs $(AGENT_PKGS) 2>/dev/null) -lpthread

LIB_SRCS := $(sort $(wildcard src/common/*.c src/model/*.c src/tower/*.c src/agent/*.c src/site/*.c src/host/*.c src/cli/*.c src/dev/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build-fuzz/%)

.PHONY: all deps test unit fuzz dev format clean
all: $(BUILD)/skerry $(BUILD)/skerry-agent

deps: $(BUILD)/.deps
$(BUILD)/.deps: scripts/install-deps.sh
	@scripts/install-deps.sh
	@mkdir -p $(BUILD) && touch $@

$(BUILD)/%.o: %.c | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libskerry.a: $(LIB_OBJS)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/skerry: $(BUILD)/src/main.o $(BUILD)/libskerry.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# --as-needed: a library the agent's objects do not call is not loaded at all.
$(BUILD)/skerry-agent: $(BUILD)/src/agent_main.o $(BUILD)/libskerry.a
	$(CC) $(LDFLAGS) -Wl,--as-needed -o $@ $^ $(AGENT_LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libskerry.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(BUILD)/libskerry.a $(LDFLAGS) $(LDLIBS) -lcmocka

unit: $(UNIT_BINS)

# libFuzzer targets: clang, with the library built separately for coverage instrumentation.
FUZZ_CFLAGS := -std=gnu11 -g -O1 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) \
	       -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OBJS := $(LIB_SRCS:%.c=build-fuzz/%.o)
build-fuzz/%.o: %.c | $(BUILD)/.deps
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -fsanitize=fuzzer-no-link -c $< -o $@
build-fuzz/libskerry.a: $(FUZZ_OBJS)
	rm -f $@ && ar rcs $@ $^
build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c build-fuzz/libskerry.a
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< build-fuzz/libskerry.a $(PKG_LIBS) -lpthread
fuzz: $(FUZZ_BINS)

RUN_FUZZ ?= 1
TEST_DEPS := $(BUILD)/skerry $(BUILD)/skerry-agent unit $(if $(filter 1,$(RUN_FUZZ)),fuzz)
test: $(TEST_DEPS)
	BUILD=$(BUILD) RUN_FUZZ=$(RUN_FUZZ) tests/run

dev: $(BUILD)/skerry $(BUILD)/skerry-agent
	$(BUILD)/skerry dev

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJS:.o=.d) $(BUILD)/src/main.d $(BUILD)/src/agent_main.d
# the fuzz build's objects follow header changes too (a stale one fails in odd ways)
-include $(FUZZ_OBJS:.o=.d)

# `make install` (PREFIX, DESTDIR, SYSCONFDIR, SYSTEMDUNITDIR): the binary, its man page,
# shell completions, systemd units and (when absent) the config files. docs/install.md.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/vendor-completions

.PHONY: install man
install: $(BUILD)/skerry
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(SYSCONFDIR)/skerry
	install -m 0755 $(BUILD)/skerry $(DESTDIR)$(BINDIR)/skerry
	[ ! -x $(BUILD)/skerry-agent ] || \
		install -m 0755 $(BUILD)/skerry-agent $(DESTDIR)$(BINDIR)/skerry-agent
	install -m 0644 skerry.1 $(DESTDIR)$(MANDIR)/man1/skerry.1
	$(BUILD)/skerry completion bash > $(DESTDIR)$(BASHCOMPDIR)/skerry
	$(BUILD)/skerry completion zsh > $(DESTDIR)$(ZSHCOMPDIR)/_skerry
	for u in skerry-tower skerry-agent; do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
			packaging/systemd/$$u.service > $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.service && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.service || exit 1; \
	done
	for c in tower agent; do \
		[ -e $(DESTDIR)$(SYSCONFDIR)/skerry/$$c.conf ] || \
			install -m 0644 packaging/etc/$$c.conf $(DESTDIR)$(SYSCONFDIR)/skerry/$$c.conf; \
	done

# skerry.1 is generated from the CLI's help text (test_cli_main checks it is current).
man: $(BUILD)/skerry
	$(BUILD)/skerry help --man > skerry.1
