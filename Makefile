# Thin wrapper around meson; every target installs missing packages first.
# See README.md. Set CI=true (as CI does) to make warnings errors.
BUILD    ?= build
WERROR   := $(if $(CI),-Dwerror=true,)

.PHONY: all build check test demo bench clean deps fuzz install

all: build

deps:
	@scripts/deps.sh

build: deps
	@scripts/build.sh $(BUILD) $(WERROR)

# One plain build and the unit suite: the quick loop while working.
check: deps
	@scripts/build.sh $(BUILD) $(WERROR)
	@meson test -C $(BUILD) --no-rebuild --suite unit --print-errorlogs

test: deps
	@scripts/test.sh

demo: build
	@scripts/demo.sh

bench: deps
	@scripts/build.sh build-release --buildtype=release -Dtests=false
	@build-release/bench/atel-bench
	@python3 bench/peers/run.py --build build-release
	@bench/disk_cost.sh --build build-release || echo "bench: disk cost over its budget (the rows above say which)"

fuzz: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-60} scripts/test.sh fuzz

# meson install: binaries, libatel (.so/.a, atel.h, libatel.pc), man pages,
# the systemd unit and bash completion under PREFIX (default /usr/local),
# staged under DESTDIR when set (packaging).
PREFIX   ?= /usr/local
install: build
	@meson configure $(BUILD) -Dprefix=$(PREFIX) >/dev/null
	@meson install -C $(BUILD) $(if $(DESTDIR),--destdir $(DESTDIR),)

clean:
	rm -rf build build-asan build-tsan build-fuzz build-release var
