"""QEMU guests: argv from a target profile, the accelerator probe, the console and command channels.

This layer knows nothing of kbuild or results: it boots a kernel with an initrd and runs commands.
"""
