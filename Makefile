# The README's two quick-start commands. Everything else lives in CMake and scripts/.
#   make run   install what building and running need (no test tools), build only the
#              blnkproxy binary, start `blnkproxy serve` on ./blnkproxy.db
#   make test  install what the tests need too, build with the tests (BP_TESTS=ON), run every
#              test (unit, integration, SDK), then the whole suite again under ASan+UBSan, then
#              a bounded fuzz run
#   make deb / make test-package   the Debian package, and its test in a fresh Debian 12 root
JOBS ?= $(shell nproc)
# cmake --build runs make again below us; its "Entering directory" lines are noise here.
MAKEFLAGS += --no-print-directory
FUZZ_SECONDS ?= 20

.PHONY: run test build deps test-deps test-main test-sanitize test-fuzz deb test-package clean

# configure DIR, ARGS: cmake's configure, quiet when it works; when it fails, everything it
# printed (which names the missing package) and a non-zero exit.
configure = @out=$$($(2) cmake -S . -B $(1) $(3) 2>&1) || { printf '%s\n' "$$out" >&2; \
	echo "make: configuring $(1) failed (cmake's output above)" >&2; exit 1; }

deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh --test
	@cd tests/integration && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; }

# Only the binary: BP_TESTS keeps whatever the build directory has (off when it is new), and
# only the blnkproxy target is built, so neither cmocka nor node is needed.
build: deps
	$(call configure,build,,-DCMAKE_BUILD_TYPE=RelWithDebInfo)
	@cmake --build build -j$(JOBS) --target blnkproxy

run: build
	./build/blnkproxy serve

test-main: test-deps
	@scripts/checksrc
	$(call configure,build,,-DCMAKE_BUILD_TYPE=RelWithDebInfo -DBP_TESTS=ON)
	@cmake --build build -j$(JOBS)
	cd build && ctest --output-on-failure -j2

test-sanitize: test-deps
	$(call configure,build-asan,,-DCMAKE_BUILD_TYPE=Debug -DBP_SANITIZE=ON -DBP_TESTS=ON)
	@cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j2

# The fuzz build has no blnkproxy binary and no ctest tests, only the libFuzzer targets.
test-fuzz: test-deps
	$(call configure,build-fuzz,CC=clang,-DBP_FUZZ=ON)
	@cmake --build build-fuzz -j$(JOBS)
	scripts/fuzz-smoke.sh build-fuzz $(FUZZ_SECONDS)

test: test-main test-sanitize test-fuzz

# The package test (scripts/deb-test.sh: lintian, then install, run, upgrade and purge in a fresh
# Debian 12 root). Needs root and the Debian mirror; a few minutes (docs/PACKAGING.md).
test-package:
	@scripts/deps.sh --package
	$(call configure,build-package,,-DCMAKE_BUILD_TYPE=RelWithDebInfo -DBP_PACKAGE_TESTS=ON)
	cd build-package && ctest --output-on-failure -L package

# The Debian package (docs/PACKAGING.md): build-deb is configured for /usr with Debian's build
# flags (dpkg-buildflags: hardening, reproducible paths) and cpack writes
# build-deb/blnkproxy_<version>-<release>_<arch>.deb.
deb: deps
	$(call configure,build-deb,CFLAGS="$$(dpkg-buildflags --get CFLAGS) $$(dpkg-buildflags --get CPPFLAGS)" LDFLAGS="$$(dpkg-buildflags --get LDFLAGS)",-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr)
	@cmake --build build-deb -j$(JOBS)
	@cd build-deb && cpack -G DEB

clean:
	rm -rf build build-asan build-fuzz build-deb build-package
