# The two commands a newcomer needs are `make demo` and `make test`; both install
# missing Debian packages first (scripts/deps.sh, idempotent).
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps build test test-fast test-asan demo bench fuzz soak check-all clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Every test, in a normal build and again under ASan+UBSan.
test: build test-fast test-asan

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DP11N_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -LE slow

demo: build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash bench/run.sh $(BUILD)

fuzz: deps
	@bash fuzz/run.sh

soak: build
	@bash tests/soak/run.sh $(BUILD)

check-all: test
	@bash scripts/check-all.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) build-fuzz .demo
