# evstream — one entry point: all, install, deps, demo, test, bench, clean.
EXTENSION   = evstream
EXTVERSION  = 0.3.0
MODULE_big  = evstream
OBJS        = $(patsubst %.cpp,%.o,$(wildcard extension/src/*.cpp extension/src/pg/*.cpp extension/src/core/*.cpp))
DATA_built  = sql/evstream--$(EXTVERSION).sql
# Released versions are frozen files (never rebuilt); the current one is built from sql/parts.
DATA        = $(filter-out $(DATA_built),$(wildcard sql/evstream--*--*.sql) sql/evstream--0.1.0.sql sql/evstream--0.2.0.sql)
PG_CPPFLAGS = -Iextension/include -Iextension/src
PG_CXXFLAGS = -std=c++17 -Wno-register -fexceptions -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK  = -lre2 -lstdc++
EXTRA_CLEAN = build build-fuzz build-asan build-tsan
override with_llvm = no
# rebuild objects when a header they include changes (.deps/)
override autodepend = yes

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The extension's SQL: ordered parts (log, catalog, consumers, security, realtime) joined at build time.
SQL_PARTS   = $(sort $(wildcard sql/parts/*.sql))
sql/evstream--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

.PHONY: deps test demo bench unit fuzz
deps:
	@scripts/deps

test:
	@scripts/test

demo:
	@scripts/demo

bench:
	@scripts/bench

# libFuzzer harnesses (tests/fuzz/): FUZZ_SECONDS per harness (default 60), FUZZ_TARGETS to pick.
fuzz:
	@$(MAKE) --no-print-directory -f tests/fuzz/Makefile run
