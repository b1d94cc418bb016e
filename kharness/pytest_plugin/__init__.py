"""The kharness pytest plugin (registered through the ``pytest11`` entry point).

Split like labgrid's: :mod:`.hooks` (options, markers, parametrisation over targets x kernels,
per-test kernel health, reports) and :mod:`.fixtures` (the guest, the module, and the Python API).
"""

from kharness.pytest_plugin.fixtures import (  # noqa: F401  (pytest finds fixtures here)
    chardev, dmesg, gpio, ioctl, kh_guest, kh_module, kh_session_shared, proc, program, sysfs)
from kharness.pytest_plugin.hooks import (  # noqa: F401
    pytest_addoption, pytest_configure, pytest_generate_tests, pytest_runtest_call,
    pytest_runtest_makereport)
