"""Debian kernels: find them in the archive's indices, download, verify, unpack and cache them."""
