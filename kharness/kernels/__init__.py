"""Kernels: which one a target gets (resolve), building one from source (source, debug) and the
cache of kernels and headers (store). Reading Debian's archive itself is :mod:`kharness.debian`."""
