# sipstack: the two commands of the README.
#   make run    install what is missing, build, run scripts/registrar.lua
#   make test   install what is missing, build, run every test suite
# Other targets: build, deps, bench, clean, asan (sanitizer test run),
# fuzz (the libFuzzer target for FUZZ_TIME seconds, clang: test/fuzz/).

BUILD  ?= build
SCRIPT ?= scripts/registrar.lua
LISTEN ?= udp:127.0.0.1:5060

# Debian 12 packages the build, the tests and the benchmark need.
PKGS = gcc pkg-config meson ninja-build python3 \
       libre-dev libluajit-5.1-dev luajit libssl-dev \
       libsqlite3-dev sqlite3 lua-busted sip-tester valgrind openssl dnsmasq-base baresip-core \
       libhiredis-dev redis-server libgoogle-perftools-dev \
       sipvicious

# What `make test` needs beyond PKGS, kept out of `make run`: Chromium
# for the browser test of the WebSocket transport (test/websocket/)
TEST_PKGS = chromium

# What `make fuzz` needs beyond PKGS: clang and libFuzzer's runtime
FUZZ_PKGS  = clang-14 libclang-rt-14-dev
FUZZ_BUILD = build-fuzz
FUZZ_TIME ?= 180

SUDO = $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

# $(call install_missing,PACKAGES): apt-get install those not installed
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends $$missing; \
	fi
endef

.PHONY: all deps build run test bench asan fuzz clean

all: build

deps:
	$(call install_missing,$(PKGS))

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	./$(BUILD)/sipstack --listen $(LISTEN) $(SCRIPT)

test: build
	$(call install_missing,$(TEST_PKGS))
	@meson test -C $(BUILD) --print-errorlogs --num-processes 2; \
	python3 test/summary.py $(BUILD)/meson-logs/testlog.json

bench: build
	bench/run.sh

asan: deps
	[ -f build-asan/build.ninja ] || meson setup build-asan \
	  -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
	ninja -C build-asan
	ASAN_OPTIONS=detect_leaks=1 \
	UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
	  meson test -C build-asan --print-errorlogs --no-suite valgrind; \
	python3 test/summary.py build-asan/meson-logs/testlog.json

# The libFuzzer target (test/fuzz/fuzz_sip.c) with ASan and UBSan, in its
# own clang build; runs FUZZ_TIME seconds under nice (test/fuzz/run.sh)
fuzz: deps
	$(call install_missing,$(FUZZ_PKGS))
	[ -f $(FUZZ_BUILD)/build.ninja ] || CC=clang-14 meson setup $(FUZZ_BUILD) \
	  -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
	  -Dbuildtype=debug
	ninja -C $(FUZZ_BUILD) test/fuzz/fuzz_sip
	test/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TIME)

clean:
	rm -rf $(BUILD) build-asan $(FUZZ_BUILD)
