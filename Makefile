# The two commands a newcomer needs are `make demo` and `make test`; both install
# missing Debian packages first (scripts/deps.sh, idempotent).
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
# Sanitizer reports fail the run. SoftHSM's own leaks are suppressed (tests/lsan.supp),
# which needs full unwinding: libcrypto has no frame pointers.
SANITIZER_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:fast_unwind_on_malloc=0 \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# A data race fails the run: the process exits 66 at the report.
TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

.PHONY: all deps build test test-fast test-asan test-tsan test-fuzz demo bench fuzz soak check-all clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Every test, in a normal build, again under ASan+UBSan and under TSan, then a
# short fuzz round.
test: build test-fast test-asan test-tsan test-fuzz

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	@cmake -S . -B $(BUILD_ASAN) -DP11N_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && $(SANITIZER_ENV) ctest --output-on-failure -j $(JOBS)

# p11netd's reactors, worker pool and client threads under ThreadSanitizer.
test-tsan: deps
	@cmake -S . -B $(BUILD_TSAN) -DP11N_TSAN=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD_TSAN) -j $(JOBS)
	cd $(BUILD_TSAN) && $(TSAN_ENV) ctest --output-on-failure -j $(JOBS)

# CI's fuzz round: 20 s per harness (60 s in all); make fuzz runs longer.
test-fuzz: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-20} bash fuzz/run.sh

demo: build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash bench/run.sh $(BUILD)

fuzz: deps
	@bash fuzz/run.sh

soak: build
	@bash tests/soak/run.sh $(BUILD)

check-all: test
	@bash scripts/check-all.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) build-fuzz build-valgrind .demo
