# realtime — build, run, test.  `make run` and `make test` install missing Debian packages first.
#
#   make            release build: build/release/realtime, build/release/librealtime.a
#   make run        build and start the server with the embedded defaults (127.0.0.1:8080), in insecure development mode
#   make test       unit tests (release and ASan+UBSan), the example, the e2e suite
#   make bench      benchmarks (bench/), side by side with nchan
#   make profile    where the server CPU goes, realtime and nchan (perf; docs/benchmarks-profile.md)
#   make fuzz       build the libFuzzer targets and run each briefly (FUZZ_SECONDS, default 20)
#   make fuzz-long  run each target FUZZ_SECONDS (default 600) and merge new coverage into fuzz/corpus/
#   make compile_commands.json

CC       ?= cc
MODE     ?= release
B        := build/$(MODE)
LLHTTP   := /usr/share/llhttp

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CPPFLAGS := -D_GNU_SOURCE -Iinclude -Isrc -I/usr/share/include/llhttp
CFLAGS_release := -O2 -g
CFLAGS_asan    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
CFLAGS_debug   := -O0 -g
CFLAGS   := -std=c17 $(WARN) $(CFLAGS_$(MODE)) -pthread -MMD -MP
LDFLAGS  := $(filter -fsanitize%,$(CFLAGS_$(MODE))) -pthread
LIBS     := -luv -ljansson -ljwt -lhiredis -lssl -lcrypto -lz -lm

LIB_SRC  := $(sort $(wildcard src/util/*.c src/core/*.c src/net/*.c src/transport/*.c src/protocol/*.c src/broker/*.c src/server/*.c))
LIB_SRC  := $(filter-out src/server/main.c,$(LIB_SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
LLHTTP_OBJ := $(addprefix $(B)/llhttp/,api.o http.o llhttp.o)
UNIT_SRC := $(sort $(shell find tests/unit -name '*.c' 2>/dev/null))
UNIT_BIN := $(UNIT_SRC:%.c=$(B)/%)
EX_SRC   := $(wildcard examples/*.c)
EX_BIN   := $(EX_SRC:%.c=$(B)/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:%.c=$(B)/%)

.PHONY: all deps run test unit unit-asan example e2e bench profile fuzz fuzz-long clean valgrind
all: $(B)/realtime $(B)/librealtime.a $(EX_BIN) $(BENCH_BIN)

deps:
	@bash scripts/deps.sh test

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# llhttp is compiled from the C sources Debian ships in node-llhttp; it is not ours, so no -Werror.
$(B)/llhttp/%.o: $(LLHTTP)/%.c
	@mkdir -p $(@D)
	$(CC) -I/usr/share/include/llhttp -std=c17 $(CFLAGS_$(MODE)) -w -c $< -o $@

$(B)/librealtime.a: $(LIB_OBJ) $(LLHTTP_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/realtime: $(B)/src/server/main.o $(B)/librealtime.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/unit/%: tests/unit/%.c $(B)/librealtime.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/librealtime.a $(LIBS) -lcmocka

$(B)/examples/%: examples/%.c $(B)/librealtime.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/librealtime.a $(LIBS)

$(B)/bench/%: bench/%.c $(B)/librealtime.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/librealtime.a $(LIBS)

run:
	@bash scripts/deps.sh build
	@$(MAKE) --no-print-directory $(B)/realtime
	exec $(B)/realtime serve --insecure

unit: $(UNIT_BIN)
	@bash scripts/run-unit.sh $(UNIT_BIN)

unit-asan:
	@$(MAKE) --no-print-directory MODE=asan unit

example: $(EX_BIN)
	@for e in $(EX_BIN); do echo "# example $$e"; $$e || exit 1; done

e2e: $(B)/realtime $(BENCH_BIN)
	@bash scripts/e2e.sh $(B)/realtime

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory unit-asan
	@$(MAKE) --no-print-directory example
	@$(MAKE) --no-print-directory e2e

valgrind: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do valgrind -q --error-exitcode=9 --leak-check=full $$t >/dev/null || exit 1; done

bench:
	@bash scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@bash bench/compare

profile:
	@bash scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@bash bench/profile --doc docs/benchmarks-profile.md

fuzz:
	@bash fuzz/run.sh

fuzz-long:
	@bash fuzz/run.sh --long

compile_commands.json: $(LIB_SRC) $(UNIT_SRC)
	@bash scripts/compile-commands.sh "$(CC) $(CPPFLAGS) $(CFLAGS)" > $@

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
