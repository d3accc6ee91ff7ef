# lasagna: build, test, demo, lint, bench.
# `make test` is the test command CI runs (with LASAGNA_TEST_STRICT=1: a skipped test fails).

CARGO ?= cargo
TEST_THREADS ?= 4

# The launcher is linked statically: no dynamic loader and no shared libraries to map at
# each start. Against musl when its Rust target is installed (`rustup target add
# x86_64-unknown-linux-musl`; .ci/run tries): glibc's startup probes the CPU caches with
# some 70 CPUID instructions, and in a VM each one traps to the hypervisor (about 0.9 ms a
# process here). Otherwise against glibc (static-pie). The target triple is given
# explicitly so that the flags reach lasagna and its tests but not build scripts and
# proc-macros (which cannot be static). Tests run this very binary.
HOST := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
MUSL := $(subst -gnu,-musl,$(HOST))
TARGET ?= $(shell rustup target list --installed 2>/dev/null | grep -qx '$(MUSL)' && echo '$(MUSL)' || echo '$(HOST)')
ifeq ($(TARGET),$(HOST))
STATIC := RUSTFLAGS="$(RUSTFLAGS) -C target-feature=+crt-static"
else
STATIC :=
endif
LASAGNA := target/$(TARGET)/release/lasagna

# Passed to the tests when set in the environment or on the command line.
ifdef LASAGNA_TEST_STRICT
export LASAGNA_TEST_STRICT
endif
ifdef LASAGNA_TEST_EXPECT
export LASAGNA_TEST_EXPECT
endif

.PHONY: all build test demo lint bench soak shipped clean

all: build

build:
	$(STATIC) $(CARGO) build --release --target $(TARGET)

# Unit tests and the integration tests in tests/, which run $(LASAGNA) on the real kernel.
# As root the tests create the unprivileged user lasagna-test; it is removed at the end,
# whatever the outcome.
test: build
	@$(STATIC) $(CARGO) test --release --target $(TARGET) --no-fail-fast -- --test-threads=$(TEST_THREADS); \
	rc=$$?; \
	if [ "$$(id -u)" = 0 ] && id lasagna-test >/dev/null 2>&1; then userdel lasagna-test; fi; \
	exit $$rc

# The shipped `strict` profile on a real command, with the per-layer report (-v).
demo: build
	$(LASAGNA) run -v -p strict -- /bin/sh -c \
	  'id; hostname; ls /; grep -E "^(Cap|NoNewPrivs|Seccomp)" /proc/self/status'

# After editing profiles/*.yaml or the launch order: regenerate src/profile/shipped/json/*.json
# (the shipped profiles as embedded JSON) and ARCHITECTURE.md's launch table from
# launch::STEPS (tests fail while they disagree).
shipped:
	LASAGNA_REGENERATE=1 $(STATIC) $(CARGO) test --release --target $(TARGET) --lib -- profile::shipped launch::tests

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	python3 tools/module-graph.py
	python3 tools/check-apply.py

# Every figure: launch vs bwrap/unshare, per-syscall cost of seccomp and Landlock, seccomp
# compile/install time, cgroups launch cost; summary in target/bench/summary.txt.
bench: build
	CARGO="$(CARGO)" LASAGNA=$(LASAGNA) bench/run.sh

# Not part of `make test`: 10,000 launches with a cgroup, 500 with the supervisor SIGKILLed,
# 200 from a pid-1 caller, 100 concurrent pairs; then nothing of lasagna's may be left.
soak: build
	LASAGNA=$(LASAGNA) python3 bench/soak.py

clean:
	$(CARGO) clean
