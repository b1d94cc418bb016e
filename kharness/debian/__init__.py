"""Debian's archive, read safely: which mirror, which suites, signed indices, bounded verified
downloads, the pool's .debs and safe unpacking. Used by kernels/ (which picks and caches kernels),
by the busybox image and by the build sysroots; nothing here picks a kernel."""
