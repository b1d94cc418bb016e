# kharness: the two commands a new user needs.
#   make demo   install everything, then run kharness on examples/hello
#   make test   install everything, then run the whole test suite (unit + real QEMU boots)

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
KH      := $(VENV)/bin/kharness
JOBS    ?= 2

# What kharness needs from Debian at run time is listed once, in kharness/hostdeps.py (QEMU per
# target, the compilers and C libraries, kmod, gpgv and the archive keyring, mmdebstrap and
# bubblewrap, what kernel builds need): `kharness doctor` checks it for a user. Developing kharness
# needs these as well: the virtual environment, and what kharness's own tests use (chromium renders
# the matrix report, gnupg signs a fake archive; cpio, zstd and busybox-static look inside images).
DEV_PACKAGES := python3 python3-venv python3-pip chromium gnupg cpio zstd busybox-static

.PHONY: all install system-deps apt-ensure python-deps demo test test-unit test-distro test-integration test-templates test-examples test-debug bench clean distclean help

all: help

help:
	@echo "make demo   - install, then run: kharness run examples/hello"
	@echo "make test   - install, then run the whole test suite"
	@echo "make test-debug, test-templates, test-examples - the longer grids (debug kernels on arm64 too;"
	@echo "                                  every template; the exercise examples on every target and series)"
	@echo "make bench  - time each phase of a run (bench/README)"

install: system-deps python-deps

# apt-get only when something is missing, so a warm machine pays nothing. Two rounds: python3
# first, then the list it prints (asked when that line runs, after the first round).
system-deps:
	@$(MAKE) --no-print-directory apt-ensure PACKAGES="$(DEV_PACKAGES)"
	@$(MAKE) --no-print-directory apt-ensure PACKAGES="$$($(PYTHON) -m kharness.hostdeps)"

apt-ensure:
	@test -n "$(PACKAGES)" || { echo "no package list (is $(PYTHON) there?)"; exit 1; }
	@missing=$$(for p in $(PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing system packages:" $$missing; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi

python-deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: install
	$(KH) run examples/hello --param myint=5 --param mystring=hi --json demo-result.json

# Each test's time limit is pyproject.toml's `timeout` (pytest-timeout, from the test extra that
# python-deps installs; a test that may build a kernel has a longer mark of its own): none of these
# targets overrides it, so a hung test fails alone, whichever target runs it.
test: install
	$(PY) -m pytest -n $(JOBS) -ra tests

test-unit: install
	$(PY) -m pytest -q tests/unit

# Every template x every target x every kernel series (not in CI: about an hour here).
test-templates: install
	KH_TEMPLATE_GRID=1 $(PY) -m pytest -n $(JOBS) -ra tests/integration/test_templates.py

# The exercise examples on every target x every kernel series it has (khgpio on 5.10 to 7.2 too).
test-examples: install
	KH_EXAMPLE_GRID=1 $(PY) -m pytest -n $(JOBS) -ra tests/integration/test_examples.py

# Debug kernels (KASAN, kmemleak, lockdep, UBSAN) on x86_64 and arm64: `make test` covers x86_64;
# this adds arm64 (its own debug kernel build, ~5 minutes once).
test-debug: install
	KH_DEBUG_TARGETS=x86_64,arm64 $(PY) -m pytest -n $(JOBS) -ra tests/integration/test_debug_kernels.py

# Distro guests (--guest debian) on arm64, rpi3, rpi2 and ppc64le, and the remote board path on arm64
# (`make test` covers x86_64): each foreign Debian root filesystem is configured inside an emulated
# guest the first time (4-21 minutes, once).
test-distro: install
	KH_DISTRO_GRID=1 $(PY) -m pytest -n $(JOBS) -ra tests/integration/test_distro_guest.py tests/integration/test_remote_board.py

test-integration: install
	$(PY) -m pytest -n $(JOBS) -ra tests/integration

bench: install
	$(PY) bench/bench_hello.py

clean:
	rm -rf .pytest_cache demo-result.json
	find . -name __pycache__ -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
