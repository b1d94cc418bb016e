"""Building modules: kbuild Makefile generation, cross toolchains, kbuild runs, diagnostics."""
