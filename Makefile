# sipstack: the two commands of the README.
#   make run    install what is missing, build, run scripts/registrar.lua
#   make test   install what is missing, build, run every test suite
# Other targets: build, deps, bench, clean, asan (sanitizer test run).

BUILD  ?= build
SCRIPT ?= scripts/registrar.lua
LISTEN ?= udp:127.0.0.1:5060

# Debian 12 packages the build, the tests and the benchmark need.
PKGS = gcc pkg-config meson ninja-build python3 \
       libre-dev libluajit-5.1-dev luajit libssl-dev \
       libsqlite3-dev sqlite3 lua-busted sip-tester valgrind openssl dnsmasq-base baresip-core \
       sipvicious

SUDO = $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: all deps build run test bench asan clean

all: build

deps:
	@missing=""; for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

run: build
	./$(BUILD)/sipstack --listen $(LISTEN) $(SCRIPT)

test: build
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

clean:
	rm -rf $(BUILD) build-asan
