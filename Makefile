# Entry points. `make run` and `make test` are the two set-up commands (README.md).
BUILD      ?= build
BUILD_SAN  ?= build-sanitize
JOBS       ?= $(shell nproc)
CMAKE_OPTS ?=

.PHONY: deps build run test test-sanitize build-sanitize bench format valgrind clean fuzz

deps:
	@bash scripts/deps.sh

$(BUILD)/Makefile:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_OPTS)

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/koe serve $(ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

$(BUILD_SAN)/Makefile:
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DKOE_SANITIZE=ON $(CMAKE_OPTS)

build-sanitize: deps $(BUILD_SAN)/Makefile
	cmake --build $(BUILD_SAN) -j $(JOBS)

# The same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
test-sanitize: build-sanitize
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/data/text/lsan-espeak.supp \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

bench: build
	@ls $(BUILD)/bench_* 2>/dev/null | while read b; do echo "== $$b"; $$b; done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The C unit tests under valgrind memcheck (the shell tests would only put bash under it).
# ctest needs the checker named: no DartConfiguration.tcl here (no include(CTest)).
VALGRIND_TESTS ?= $(shell ls tests/test_*.c | sed 's|^tests/||; s|\.c$$||' | paste -sd'|')
# Its own Release build (BUILD_VG), whose tests may run 10 hours instead of 600 s.
BUILD_VG ?= build-valgrind
$(BUILD_VG)/Makefile:
	cmake -S . -B $(BUILD_VG) -DCMAKE_BUILD_TYPE=Release -DKOE_TEST_TIMEOUT=36000 $(CMAKE_OPTS)

valgrind: deps $(BUILD_VG)/Makefile
	cmake --build $(BUILD_VG) -j $(JOBS)
	cd $(BUILD_VG) && ctest -T memcheck -j $(JOBS) --output-on-failure -R '^($(VALGRIND_TESTS))$$' \
	  --overwrite MemoryCheckCommand=$$(command -v valgrind) \
	  --overwrite "MemoryCheckCommandOptions=--leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1 --suppressions=$(CURDIR)/tests/data/text/valgrind-espeak.supp"

# libFuzzer targets (clang): each runs FUZZ_SECONDS on its committed seed corpus.
BUILD_FUZZ   ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DKOE_FUZZ=ON \
	  -DKOE_WERROR=OFF $(CMAKE_OPTS) >/dev/null
	cmake --build $(BUILD_FUZZ) -j $(JOBS)
	@bash scripts/fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_VG)
