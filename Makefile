# oxide - GNU Make build, no configure step.
#
#   make                 library (static + shared), examples, tests, benchmarks
#   make demo            build and run the guide's examples
#   make test            every test: gcc and clang at -O2 and -O0, ThreadSanitizer,
#                        ASan+UBSan, CHAOS=1, aarch64 under qemu-user, and an
#                        install checked through pkg-config (tests/run-suites.sh)
#   make check           the plain suite only (fast), the C++ build of the
#                        headers (tests/cxx/), the exported-symbol check and
#                        the OX_MUST_USE check (tests/must_use/)
#   make mutate          inject each bug of tests/mutations/, check the tests catch it
#   make bench [BENCH=substring] [LOAD=n]  (n busy loops run beside it)
#   make stress          the randomized stress programs (tests/stress/)
#   make soak DURATION=s run them under CHAOS=1 for s seconds
#   make fuzz [FUZZ_TIME=s]  the libFuzzer harnesses (clang): fuzz_sync (threads) and
#                        fuzz_replay (one thread, replays: tests/fuzz/replay.c)
#   make install         headers, liboxide.a, liboxide.so, oxide.pc, the CMake
#                        package; PREFIX (/usr/local), LIBDIR ($(PREFIX)/lib,
#                        e.g. /usr/lib/x86_64-linux-gnu), INCLUDEDIR
#                        ($(PREFIX)/include), DESTDIR (a staging root);
#                        lower-case prefix/libdir/includedir work too
#   make uninstall       the same variables
#   make lint            clang-format (check mode), clang-tidy, cppcheck, and
#                        make docs's check for undocumented public names
#   make docs            the API reference from the headers (Doxygen): HTML and
#                        man pages in build/docs/ (docs/api/)
#   make SAN=tsan|asan   a sanitizer build, in build/<san>/
#   make CHAOS=1         schedule perturbation (-DOX_CHAOS), in build/chaos/
#   make B=dir           build in dir instead
#   CC=clang make        any C11 compiler that speaks GCC's flags
#   WERROR=1             warnings are errors: on in make check, make test and
#                        the other development targets, off in a plain make,
#                        so that a newer compiler's new warning cannot break
#                        a user's build

# Every CPU by default: a plain make of everything (library, examples,
# tests, benchmarks) took 64 s one job at a time on 2 CPUs, 36 s with two.
# An explicit -jN (or -j1) on the command line wins.
ifeq ($(filter -j%,$(MAKEFLAGS)),)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 1)
endif

CC      ?= cc
AR      ?= ar
# GNU's names (lower case) and the usual upper-case ones, either works.
prefix     ?= /usr/local
PREFIX     ?= $(prefix)
libdir     ?= $(PREFIX)/lib
LIBDIR     ?= $(libdir)
includedir ?= $(PREFIX)/include
INCLUDEDIR ?= $(includedir)
OPT     ?= -O2
SAN     ?=
# The version lives in include/oxide/version.h; the SONAME follows the major.
version_part = $(shell sed -n 's/^\#define OX_VERSION_$(1) \([0-9]*\)$$/\1/p' include/oxide/version.h)
VERSION_MAJOR := $(call version_part,MAJOR)
VERSION := $(VERSION_MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)
SONAME  := liboxide.so.$(VERSION_MAJOR)

ifeq ($(SAN),)
B := build
SANFLAGS :=
else ifeq ($(SAN),tsan)
B := build/tsan
SANFLAGS := -fsanitize=thread
else ifeq ($(SAN),asan)
B := build/asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
else
$(error SAN must be empty, tsan or asan, not '$(SAN)')
endif

# CHAOS=1: seeded schedule perturbation at oxide's decision points
# (src/check/chaos.h), for the stress programs and the soak.
CHAOS ?=
ifeq ($(CHAOS),1)
B := $(if $(SAN),build/$(SAN)-chaos,build/chaos)
CPPFLAGS += -DOX_CHAOS
else ifneq ($(CHAOS),)
$(error CHAOS must be empty or 1, not '$(CHAOS)')
endif
# DLOPEN_SAFE=1: a library that may be dlopen'ed late (general-dynamic TLS
# instead of initial-exec: include/oxide/base.h, OX__TLS_FAST), in
# <dir>-dlopen; its oxide.pc and CMake package pass -DOX_DLOPEN_SAFE on.
DLOPEN_SAFE ?=
ifeq ($(DLOPEN_SAFE),1)
B := $(B)-dlopen
CPPFLAGS += -DOX_DLOPEN_SAFE
USER_DEFINES := -DOX_DLOPEN_SAFE
else ifneq ($(DLOPEN_SAFE),)
$(error DLOPEN_SAFE must be empty or 1, not '$(DLOPEN_SAFE)')
endif
# B=dir on the command line overrides all of the above (run-suites.sh
# builds each variant of the matrix in its own directory).

DEV_GOALS := check test stress soak fuzz cxx-check
WERROR   ?= $(if $(filter $(DEV_GOALS),$(MAKECMDGOALS)),1)
WARN     := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            $(if $(filter 1,$(WERROR)),-Werror)
CPPFLAGS += -Iinclude -D_POSIX_C_SOURCE=200809L
CFLAGS   ?= $(OPT) -g
CFLAGS   += -std=c11 $(WARN) $(SANFLAGS) -pthread -MMD -MP
LDFLAGS  += $(SANFLAGS) -pthread

LIB_SRC   := $(sort $(wildcard src/*/*.c))
# The task context switch, one assembly file per architecture (each
# assembles to nothing on the others).
LIB_ASM   := $(sort $(wildcard src/*/*.S))
# tests/fuzz/replay.c: the replaying fuzzer's interpreter, which the test
# suite runs too (tests/test_fuzz_replay.c).
TEST_SRC  := $(sort $(wildcard tests/*.c)) tests/fuzz/replay.c
EX_SRC    := $(sort $(wildcard examples/*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))

STRESS_SRC := $(sort $(wildcard tests/stress/*.c))

# gcc's libbacktrace (in libgcc-dev, installed with gcc for every target,
# and found by clang through gcc's library directory) prints the panic
# backtrace with function names and file:line (src/panic/backtrace.c,
# docs/panics.md). Its objects go into liboxide.a and liboxide.so, so a
# program links nothing more; without it, glibc's backtrace() stands in.
BACKTRACE_LIB := $(shell $(CC) -print-file-name=libbacktrace.a)
ifneq ($(filter /%,$(BACKTRACE_LIB)),)
$(B)/obj/src/panic/backtrace.o $(B)/pic/src/panic/backtrace.o: CPPFLAGS += -DOX_HAVE_LIBBACKTRACE
BACKTRACE_STAMP := $(B)/backtrace/objects
BACKTRACE_SHARED := $(BACKTRACE_LIB) -Wl,--exclude-libs,libbacktrace.a
else
BACKTRACE_LIB :=
BACKTRACE_STAMP :=
BACKTRACE_SHARED :=
endif

LIB_OBJ     := $(LIB_SRC:%.c=$(B)/obj/%.o) $(LIB_ASM:%.S=$(B)/obj/%.o)
LIB_PIC_OBJ := $(LIB_SRC:%.c=$(B)/pic/%.o) $(LIB_ASM:%.S=$(B)/pic/%.o)
TEST_OBJ    := $(TEST_SRC:%.c=$(B)/obj/%.o)
BENCH_OBJ   := $(BENCH_SRC:%.c=$(B)/obj/%.o)
EX_OBJ      := $(EX_SRC:examples/%.c=$(B)/obj/examples/%.o)
EXAMPLES    := $(EX_SRC:examples/%.c=$(B)/examples/%)

STATIC := $(B)/liboxide.a
SHARED := $(B)/liboxide.so
TESTS  := $(B)/tests/oxide-tests
BENCH_BIN := $(B)/bench/oxide-bench
STRESS_BIN := $(STRESS_SRC:tests/stress/%.c=$(B)/stress/%)
# The objects of the one-file programs are reached only through a pattern
# rule: make would delete them as intermediates after the first build, and
# then, once their .d files name them, build them all again on the next
# (`make demo` after `make` recompiled every example). Keep them.
.SECONDARY: $(EX_OBJ) $(STRESS_SRC:%.c=$(B)/obj/%.o)
FUZZ_BIN  := build/fuzz/fuzz_sync
FUZZ_REPLAY_BIN := build/fuzz/fuzz_replay

.PHONY: all lib demo test check cxx-check abi-check abi-list must-use-check bench install \
        uninstall lint docs format clean stress soak fuzz testbin mutate
all: lib $(EXAMPLES) $(TESTS) $(BENCH_BIN)
lib: $(STATIC) $(SHARED)

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# The library exports what its public headers declare and nothing else
# (oxide/base.h: OX__API_BEGIN); abi/liboxide.map names the version.
$(B)/obj/src/%.o $(B)/pic/src/%.o: CFLAGS += -fvisibility=hidden

$(B)/pic/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -c $< -o $@

$(B)/obj/%.o: %.S
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(SANFLAGS) -c $< -o $@

$(B)/pic/%.o: %.S
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(SANFLAGS) -fPIC -c $< -o $@

# libbacktrace's members, renamed bt_*.o so that none shadows one of ours.
$(B)/backtrace/objects: $(BACKTRACE_LIB)
	@rm -rf $(@D) && mkdir -p $(@D)
	cd $(@D) && $(AR) x $(BACKTRACE_LIB) && for o in *.o; do mv $$o bt_$$o; done
	touch $@

$(STATIC): $(LIB_OBJ) $(BACKTRACE_STAMP)
	@mkdir -p $(@D)
	rm -f $@ && $(AR) rcs $@ $(LIB_OBJ) $(if $(BACKTRACE_STAMP),$(B)/backtrace/bt_*.o)

$(SHARED): $(LIB_PIC_OBJ) abi/liboxide.map
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=abi/liboxide.map $(LDFLAGS) \
		-o $@ $(LIB_PIC_OBJ) $(BACKTRACE_SHARED)

$(B)/examples/%: $(B)/obj/examples/%.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^

# GLib, for the event-loop interop test (tests/test_loop_glib.c), where
# $(CC) can build and link against it (not in the aarch64 cross build, say);
# looked up once, and only by a make that builds the tests.
GLIB_CFLAGS = $(patsubst -I%,-isystem %,$(shell pkg-config --cflags glib-2.0 2>/dev/null))
GLIB_LIBS = $(shell pkg-config --libs glib-2.0 2>/dev/null)
HAVE_GLIB = $(eval HAVE_GLIB := $$(shell printf '\043include <glib.h>\nint main(void) { return g_main_depth(); }\n' | \
              $$(CC) -x c - $$(GLIB_CFLAGS) $$(GLIB_LIBS) -o /dev/null 2>/dev/null && echo 1))$(HAVE_GLIB)
$(B)/obj/tests/test_loop_glib.o: CPPFLAGS += $(if $(HAVE_GLIB),-DOX_HAVE_GLIB $(GLIB_CFLAGS))
# libuv, for the same test against its loop (tests/test_loop_uv.c), alike.
UV_CFLAGS = $(patsubst -I%,-isystem %,$(shell pkg-config --cflags libuv 2>/dev/null))
UV_LIBS = $(shell pkg-config --libs libuv 2>/dev/null)
HAVE_UV = $(eval HAVE_UV := $$(shell printf '\043include <uv.h>\nint main(void) { return (int)uv_version(); }\n' | \
              $$(CC) -x c - $$(UV_CFLAGS) $$(UV_LIBS) -o /dev/null 2>/dev/null && echo 1))$(HAVE_UV)
$(B)/obj/tests/test_loop_uv.o: CPPFLAGS += $(if $(HAVE_UV),-DOX_HAVE_UV $(UV_CFLAGS))

# The tests find the examples of the same build to check their output.
$(B)/obj/tests/%.o: CPPFLAGS += -DOX_EXAMPLES_DIR='"$(abspath $(B)/examples)"' -Isrc \
                                -DOX_REPLAY_CORPUS='"$(abspath tests/fuzz/replay_corpus)"'
$(TESTS): $(TEST_OBJ) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lm $(if $(HAVE_GLIB),$(GLIB_LIBS)) $(if $(HAVE_UV),$(UV_LIBS))

$(B)/obj/bench/%.o: CPPFLAGS += -Isrc
# Loop heads on a cache line of their own, here and in the C peers
# (bench/peers/run-peers.sh): otherwise a tight loop such as tls_access's
# lands across a 64-byte boundary or not depending on what else the binary
# holds, and took 0.3 or 0.5 ns per access with the same instructions.
$(B)/obj/bench/%.o: CFLAGS += -falign-loops=64
$(BENCH_BIN): $(BENCH_OBJ) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lm

# The oxide server of the I/O benchmarks (bench/io/README.md says what it
# must do): built for `make bench` from bench/io/oxide_server.c once that
# file exists; bench/io/run-io.sh runs it when the binary is there.
IO_SERVER_SRC := $(wildcard bench/io/oxide_server.c)
IO_SERVER_BIN := $(if $(IO_SERVER_SRC),$(B)/bench/oxide-io-server)
$(B)/bench/oxide-io-server: $(B)/obj/bench/io/oxide_server.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lm

# Randomized stress programs (tests/stress/): built by `make stress`, run
# in a loop under the schedule perturbation by `make soak`.
$(B)/stress/%: $(B)/obj/tests/stress/%.o $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lm
stress: $(STRESS_BIN)

# The libFuzzer harnesses: clang, ASan+UBSan, the library compiled in once
# (build/fuzz/obj/, instrumented for coverage) for both. fuzz_sync runs an
# op script on real threads; fuzz_replay interprets one on a single worker
# thread, deterministically (tests/fuzz/replay.c).
FUZZ_CC   ?= clang
FUZZ_TIME ?= 45
FUZZ_CFLAGS := -Iinclude -Isrc -D_POSIX_C_SOURCE=200809L -std=c11 $(WARN) -O1 -g -pthread \
               -fno-sanitize-recover=all $(if $(BACKTRACE_LIB),-DOX_HAVE_LIBBACKTRACE)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o) $(LIB_ASM:%.S=build/fuzz/obj/%.o)
build/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined -MMD -MP -c $< -o $@
build/fuzz/obj/%.o: %.S
	@mkdir -p $(@D)
	$(FUZZ_CC) -Iinclude -D_POSIX_C_SOURCE=200809L -c $< -o $@
FUZZ_LINK = $(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined -o $@ $(filter %.c,$^) \
            $(FUZZ_LIB_OBJ) $(BACKTRACE_LIB)
$(FUZZ_BIN): tests/fuzz/fuzz_sync.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	$(FUZZ_LINK)
$(FUZZ_REPLAY_BIN): tests/fuzz/fuzz_replay.c tests/fuzz/replay.c tests/fuzz/replay.h $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	$(FUZZ_LINK)

# ---- running ----

demo: $(EXAMPLES)
	@sh examples/run-all.sh $(B)/examples

testbin: $(TESTS) $(EXAMPLES)

check: testbin cxx-check abi-check must-use-check
	$(TESTS)

# OX_MUST_USE: dropping a marked result warns, with gcc, clang, g++, clang++.
must-use-check:
	@sh tests/must_use/check.sh

# The exported symbols of liboxide.so against the committed list
# abi/liboxide.symbols, so that an accidental export (or a lost one) fails.
# ADDING OR REMOVING A PUBLIC FUNCTION MEANS UPDATING THE LIST: run
# `make abi-list` and commit abi/liboxide.symbols with the change.
abi-check: $(SHARED)
	@sh abi/check.sh $(SHARED) abi/liboxide.symbols
abi-list: $(SHARED)
	sh abi/check.sh $(SHARED) > abi/liboxide.symbols

# <oxide.h> from C++: g++ and clang++, -std=c++17 and c++20 (tests/cxx/).
cxx-check: $(STATIC)
	@CC="$(CC)" sh tests/cxx/run.sh $(STATIC) $(B)/cxx

# make mutate [MUTATIONS="name..."]: inject each known bug of
# tests/mutations/ into a copy of the tree and check that the tests it
# names catch it (tests/mutate.sh).
mutate:
	@sh tests/mutate.sh $(MUTATIONS)

# The full suite: plain, ThreadSanitizer, ASan+UBSan, install. One closing
# line "N passed, N failed" sums them.
test:
	@sh tests/run-suites.sh

# make soak DURATION=seconds: the stress programs, CHAOS=1, round-robin.
DURATION ?= 600
soak:
	$(MAKE) CHAOS=1 stress
	@sh tests/stress/soak.sh build/chaos/stress $(DURATION)

# make fuzz [FUZZ_TIME=seconds]: a fuzzing run of each harness, from its
# corpus in the tree (new inputs go to a scratch directory, not into the
# tree); FUZZ_TIME is shared between the two.
fuzz: $(FUZZ_BIN) $(FUZZ_REPLAY_BIN)
	@sh tests/fuzz/run.sh $(FUZZ_BIN) $$(( $(FUZZ_TIME) / 2 )) tests/fuzz/corpus && \
	 sh tests/fuzz/run.sh $(FUZZ_REPLAY_BIN) $$(( $(FUZZ_TIME) - $(FUZZ_TIME) / 2 )) tests/fuzz/replay_corpus

bench: $(BENCH_BIN) $(IO_SERVER_BIN)
	@OX_BENCH_LOAD=$(or $(LOAD),0) sh bench/run.sh "$(BENCH)"

# ---- install ----

install: lib
	install -d $(DESTDIR)$(INCLUDEDIR)/oxide $(DESTDIR)$(LIBDIR)/pkgconfig \
		$(DESTDIR)$(LIBDIR)/cmake/oxide
	install -m 644 include/oxide.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/oxide/*.h $(DESTDIR)$(INCLUDEDIR)/oxide/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/liboxide.so.$(VERSION)
	ln -sf liboxide.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/liboxide.so
	sed $(INSTALL_SUBST) oxide.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/oxide.pc
	sed $(INSTALL_SUBST) cmake/oxideConfig.cmake.in \
		> $(DESTDIR)$(LIBDIR)/cmake/oxide/oxideConfig.cmake
	sed $(INSTALL_SUBST) cmake/oxideConfigVersion.cmake.in \
		> $(DESTDIR)$(LIBDIR)/cmake/oxide/oxideConfigVersion.cmake

# The installed paths, as the .pc and CMake files name them (without
# DESTDIR: where the files will be in the end).
INSTALL_SUBST = -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
                -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
                -e 's|@VERSION_MAJOR@|$(VERSION_MAJOR)|g' -e 's|@SONAME@|$(SONAME)|g' \
                -e 's|@DEFINES@|$(USER_DEFINES)|g' \
                -e 's|@CMAKE_DEFINES@|$(USER_DEFINES:-D%=%)|g'

uninstall:
	rm -rf $(DESTDIR)$(INCLUDEDIR)/oxide $(DESTDIR)$(LIBDIR)/cmake/oxide
	rm -f $(DESTDIR)$(INCLUDEDIR)/oxide.h $(DESTDIR)$(LIBDIR)/liboxide.a \
		$(DESTDIR)$(LIBDIR)/liboxide.so $(DESTDIR)$(LIBDIR)/$(SONAME) \
		$(DESTDIR)$(LIBDIR)/liboxide.so.$(VERSION) $(DESTDIR)$(LIBDIR)/pkgconfig/oxide.pc

# ---- lint ----

FORMAT_FILES := $(sort $(wildcard include/*.h include/oxide/*.h src/*/*.[ch] tests/*.[ch] \
                  tests/*/*.[ch] tests/cxx/*.cpp examples/*.c bench/*.[ch] bench/io/*.c))
lint: docs
	clang-format --dry-run --Werror $(FORMAT_FILES)
	clang-tidy --quiet $(LIB_SRC) -- $(CPPFLAGS) -std=c11 -pthread
	cppcheck --quiet --error-exitcode=1 --std=c11 --inline-suppr \
		--enable=warning,performance,portability --suppress=missingIncludeSystem \
		-Iinclude -Isrc -D__GNUC__ src
	@# every mutation still applies (make mutate's first step, in seconds)
	@for m in tests/mutations/*.mut; do \
		perl tests/mutations/apply.pl "$$m" --check || exit 1; done

# The API reference; fails on a Doxygen warning or a public name without
# documentation that docs/api/undocumented.txt does not list.
docs:
	@sh docs/api/check.sh

format:
	clang-format -i $(FORMAT_FILES)

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(LIB_PIC_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) \
         $(FUZZ_LIB_OBJ:.o=.d) \
         $(STRESS_SRC:%.c=$(B)/obj/%.d) $(IO_SERVER_SRC:%.c=$(B)/obj/%.d) \
         $(EX_SRC:examples/%.c=$(B)/obj/examples/%.d)
