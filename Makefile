# dynmm: build, test, benchmark and run.
#
#   make              build build/dynmm (portable; NATIVE=1 for -march=native)
#   make quickstart   install what is missing, build, run the pipeline on the synthetic default (mpirun -n 2)
#   make check        install what is missing, build, run every test (1, 2 and 3 ranks), then the unit,
#                     multi-rank and quick command-line tests again under AddressSanitizer + UBSan
#                     (build-asan/; SANITIZE=0 skips that pass)
#   make bench        benchmarks (ratios against references measured in the same run)
#   make asan         AddressSanitizer + UBSan build running the tests
#   make install PREFIX=/opt/dynmm   binary, man page, bash completion, configs and sweeps, job scripts
#   make man, make completion         $(BUILD)/dynmm.1 and $(BUILD)/dynmm.bash, made from the binary's --help
#
# Dependencies are found with pkg-config. src/ is compiled without MPI or HDF5 include paths, so a
# kernel that includes mpi.h or hdf5.h fails to build: all MPI lives in mpi/.

PREFIX ?= /usr/local
BUILD ?= build
CC := gcc
MPICC ?= mpicc
# Portable by default: a binary built on a login node runs on every node of a cluster whose CPUs
# differ (x86-64-v2: SSE4.2/POPCNT, every x86-64 server since 2009). NATIVE=1 tunes for the build
# machine (-march=native: AVX2/AVX-512 where present); OpenBLAS picks its kernels at run time either way.
ifeq ($(NATIVE),1)
OPT ?= -O3 -march=native
else
OPT ?= -O3 -march=x86-64-v2 -mtune=generic
endif
SAN ?=
SANITIZERS := -fsanitize=address,undefined -fno-omit-frame-pointer
SANITIZE ?= 1
V ?= 0
ifeq ($(V),0)
Q = @printf '  CC    %s\n' $< ;
else
Q =
endif

# Debian 12 packages: to build and run, and additionally to run the tests.
DEB_BUILD := build-essential pkg-config libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools \
             libscalapack-openmpi-dev libopenblas-dev libconfig-dev zlib1g-dev gnuplot-nox fonts-lmodern
DEB_TEST := python3 python3-numpy python3-scipy python3-h5py python3-torch nodejs npm slurm-wlm munge \
            texlive-latex-base texlive-latex-recommended lmodern poppler-utils

PKGS_CORE := openblas libconfig zlib
PKGS_MPI := hdf5-openmpi scalapack-openmpi ompi-c

VERSION := $(shell git describe --always --dirty --tags 2>/dev/null || echo unknown)
WARN := -Wall -Wextra -Werror -Wno-unused-parameter
# -ffp-contract=off: a * b + c is always a rounded product, then a rounded sum, never one FMA, so
# src/nn/gemm.c's fixed-order kernel gives the same bits on every x86-64 CPU and -march. GCC's ISO C
# mode (-std=c11) already implies it; explicit because GNU modes and other compilers default to
# contracting.
BASEFLAGS := -std=c11 -D_GNU_SOURCE -g $(OPT) $(SAN) $(WARN) -fopenmp -ffp-contract=off -DDM_VERSION='"$(VERSION)"'

ifneq ($(MAKECMDGOALS),deps)
ifneq ($(MAKECMDGOALS),deps-test)
CORE_CFLAGS := $(BASEFLAGS) $(shell pkg-config --cflags $(PKGS_CORE) 2>/dev/null)
CORE_LIBS := $(shell pkg-config --libs $(PKGS_CORE) 2>/dev/null) -lm
MPI_CFLAGS := $(BASEFLAGS) $(shell pkg-config --cflags $(PKGS_MPI) $(PKGS_CORE) 2>/dev/null)
MPI_LIBS := $(shell pkg-config --libs $(PKGS_MPI) 2>/dev/null) $(CORE_LIBS) -lgfortran
endif
endif
DM_CFLAGS_STR := $(OPT) $(SAN)

# MODULES restricts the build to some src/ modules (e.g. while another module is mid-edit).
MODULES ?= $(wildcard src/*)
CORE_SRC := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
CORE_HDR := $(wildcard src/*/*.h) $(wildcard src/config/keys/*.def)
# Layers, each a library; the dependency runs one way: mpi (infrastructure) <- stages -> src, and
# analysis (report) reads files through mpi. stages/main.c is the binary.
MPI_SRC := $(wildcard mpi/*.c)
STAGE_SRC := $(filter-out stages/main.c,$(wildcard stages/*.c stages/*/*.c))
REPORT_SRC := $(wildcard analysis/*.c)
MPI_HDR := $(wildcard mpi/*.h stages/*.h stages/*/*.h analysis/*.h)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
MPI_OBJ := $(MPI_SRC:%.c=$(BUILD)/%.o)
STAGE_OBJ := $(STAGE_SRC:%.c=$(BUILD)/%.o)
REPORT_OBJ := $(REPORT_SRC:%.c=$(BUILD)/%.o)
APP_LIBS := $(BUILD)/libdynmm_stages.a $(BUILD)/libdynmm_report.a $(BUILD)/libdynmm_mpi.a $(BUILD)/libdynmm_core.a
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
MPIT_SRC := $(wildcard tests/mpi/test_*.c)
MPIT_BIN := $(MPIT_SRC:tests/mpi/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
# bench_gemm_bf16 measures src/nn's bf16 kernel against oneDNN (Debian libdnnl-dev, which has no
# pkg-config file: found by its header). Only that bench links it; without it the bench is not built
# and its script says so. The product never depends on oneDNN.
ifeq ($(filter deps deps-test clean,$(MAKECMDGOALS)),)
HAVE_DNNL := $(shell pkg-config --exists dnnl 2>/dev/null && echo 1 || ($(CC) -E -include oneapi/dnnl/dnnl.h -x c /dev/null >/dev/null 2>&1 && echo 1))
endif
ifneq ($(HAVE_DNNL),1)
BENCH_SRC := $(filter-out tests/bench/bench_gemm_bf16.c,$(BENCH_SRC))
endif
DNNL_LIBS := $(shell pkg-config --libs dnnl 2>/dev/null || echo -ldnnl)
BENCH_BIN := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

# Objects follow the compiler flags: a change of OPT, NATIVE or SAN rebuilds everything.
FLAGS_STAMP := $(BUILD)/.flags
ifeq ($(filter deps deps-test clean,$(MAKECMDGOALS)),)
$(shell mkdir -p $(BUILD); echo '$(CC) $(OPT) $(SAN)' | cmp -s - $(FLAGS_STAMP) || echo '$(CC) $(OPT) $(SAN)' > $(FLAGS_STAMP))
endif

.PHONY: all deps deps-test check bench benches asan quickstart install clean tests reference-config man completion

all: $(BUILD)/dynmm

$(BUILD)/src/%.o: src/%.c $(CORE_HDR) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CORE_CFLAGS) -c $< -o $@

# mpi/, stages/ and analysis/ (src/ has the more specific rule above, which make prefers)
$(BUILD)/%.o: %.c $(CORE_HDR) $(MPI_HDR) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(MPICC) $(MPI_CFLAGS) -DDM_CFLAGS='"$(DM_CFLAGS_STR)"' -c $< -o $@

# a library per layer, each archived from its objects
$(BUILD)/libdynmm_core.a: $(CORE_OBJ)
$(BUILD)/libdynmm_mpi.a: $(MPI_OBJ)
$(BUILD)/libdynmm_stages.a: $(STAGE_OBJ)
$(BUILD)/libdynmm_report.a: $(REPORT_OBJ)
$(BUILD)/libdynmm_%.a:
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/dynmm: $(BUILD)/stages/main.o $(APP_LIBS)
	$(MPICC) $(MPI_CFLAGS) -o $@ $^ $(MPI_LIBS)

# the tests' and benchmarks' shared helpers (and tap.h's counters): linked into every test binary
TESTLIB := $(BUILD)/tests/testlib.o
TESTLIB_HDR := tests/unit/tap.h tests/unit/testlib.h

$(TESTLIB): tests/unit/testlib.c $(TESTLIB_HDR) $(CORE_HDR) $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CORE_CFLAGS) -c $< -o $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libdynmm_core.a $(TESTLIB) $(TESTLIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) -o $@ $< $(TESTLIB) $(BUILD)/libdynmm_core.a $(CORE_LIBS)

# (the stages library too: a multi-rank test may drive a stage's collective parts, e.g. test_evalshard)
$(BUILD)/tests/%: tests/mpi/%.c $(APP_LIBS) $(TESTLIB) $(TESTLIB_HDR)
	@mkdir -p $(dir $@)
	$(MPICC) $(MPI_CFLAGS) -o $@ $< $(TESTLIB) $(APP_LIBS) $(MPI_LIBS)

$(BUILD)/bench/%: tests/bench/%.c $(APP_LIBS) $(TESTLIB) $(TESTLIB_HDR)
	@mkdir -p $(dir $@)
	$(MPICC) $(MPI_CFLAGS) -o $@ $< $(TESTLIB) $(APP_LIBS) $(MPI_LIBS)

tests: $(BUILD)/dynmm $(UNIT_BIN) $(MPIT_BIN)

$(BUILD)/bench/bench_gemm_bf16: tests/bench/bench_gemm_bf16.c $(BUILD)/libdynmm_core.a $(TESTLIB) $(TESTLIB_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) -o $@ $< $(TESTLIB) $(BUILD)/libdynmm_core.a $(CORE_LIBS) $(DNNL_LIBS)

benches: $(BUILD)/dynmm $(BENCH_BIN)

# Install missing Debian packages when root; otherwise print the exact command and stop.
# Node.js and npm count as present when their commands are (a non-Debian Node.js conflicts with
# Debian's npm package).
define install_pkgs
	@missing=""; for p in $(1); do \
	  case $$p in nodejs) command -v node >/dev/null && continue;; npm) command -v npm >/dev/null && continue;; esac; \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing Debian packages; run:"; echo "  sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
endef

deps:
	$(call install_pkgs,$(DEB_BUILD))

deps-test: deps
	$(call install_pkgs,$(DEB_TEST))

check: deps-test
	@$(MAKE) --no-print-directory tests
	@BUILD=$(BUILD) tests/run.sh
ifeq ($(SANITIZE),1)
	@echo "the unit, multi-rank and quick command-line tests under AddressSanitizer + UBSan (build-asan/):"
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1" SAN="$(SANITIZERS)" tests
	@BUILD=build-asan DM_ASAN=1 DM_SUITE=sanitizer DM_REF_DIR=$(abspath $(BUILD))/ref tests/run.sh
endif

asan: deps-test
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1" SAN="$(SANITIZERS)" tests
	@BUILD=build-asan DM_ASAN=1 tests/run.sh

bench: deps-test
	@$(MAKE) --no-print-directory benches
	@BUILD=$(BUILD) tests/bench/run.sh

quickstart: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) jobs/quickstart.sh

reference-config: $(BUILD)/dynmm
	$(BUILD)/dynmm config --reference > configs/reference.cfg

# the manual page and bash completion, generated from the binary's --help and key table
man: $(BUILD)/dynmm.1
completion: $(BUILD)/dynmm.bash
$(BUILD)/dynmm.1: $(BUILD)/dynmm doc/man.sh doc/help_lib.sh
	doc/man.sh $(BUILD)/dynmm > $@.part && mv $@.part $@
$(BUILD)/dynmm.bash: $(BUILD)/dynmm doc/completion.sh doc/help_lib.sh
	doc/completion.sh $(BUILD)/dynmm > $@.part && mv $@.part $@

# share/dynmm/ mirrors the checkout (configs/, configs/sweeps/, jobs/, analysis/dynmm_results.py), so
# sweep files find their base configs and the job scripts find bin/dynmm from any directory.
SHARE := $(DESTDIR)$(PREFIX)/share
install: $(BUILD)/dynmm $(BUILD)/dynmm.1 $(BUILD)/dynmm.bash
	install -d $(DESTDIR)$(PREFIX)/bin $(SHARE)/dynmm/configs/sweeps $(SHARE)/dynmm/jobs $(SHARE)/dynmm/analysis \
	  $(SHARE)/man/man1 $(SHARE)/bash-completion/completions
	install -m 755 $(BUILD)/dynmm $(DESTDIR)$(PREFIX)/bin/dynmm
	install -m 644 configs/*.cfg $(SHARE)/dynmm/configs/
	install -m 644 configs/sweeps/*.cfg $(SHARE)/dynmm/configs/sweeps/
	install -m 755 jobs/*.sh jobs/*.sbatch $(SHARE)/dynmm/jobs/
	install -m 644 analysis/dynmm_results.py analysis/README.md $(SHARE)/dynmm/analysis/
	install -m 644 $(BUILD)/dynmm.1 $(SHARE)/man/man1/dynmm.1
	install -m 644 $(BUILD)/dynmm.bash $(SHARE)/bash-completion/completions/dynmm

clean:
	rm -rf build build-asan
