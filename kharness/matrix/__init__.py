"""``kharness matrix``: one module over targets x kernels, each cell a ``kharness run``."""
