# The README's two quick-start commands. Everything else lives in CMake and scripts/.
#   make run   install what is missing, build, start `blnkproxy serve` on ./blnkproxy.db
#   make test  install what is missing, build, run every test (unit, integration, SDK),
#              then the whole suite again under ASan+UBSan, then a bounded fuzz run
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 20

.PHONY: run test build deps test-deps test-main test-sanitize test-fuzz clean

deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh --test
	@cd tests/integration && { [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error; }

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j$(JOBS)

run: build
	./build/blnkproxy serve

test-main: test-deps
	@scripts/checksrc
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j$(JOBS)
	cd build && ctest --output-on-failure -j2

test-sanitize: test-deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBP_SANITIZE=ON >/dev/null
	@cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j2

test-fuzz: test-deps
	@CC=clang cmake -S . -B build-fuzz -DBP_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j$(JOBS)
	scripts/fuzz-smoke.sh build-fuzz $(FUZZ_SECONDS)

test: test-main test-sanitize test-fuzz

clean:
	rm -rf build build-asan build-fuzz
