"""The kharness virtual GPIO controller (``khgpio``, a kernel module in ``kharness/hw/khgpio``)
as the harness sees it: its configuration in ``kharness.toml`` and how it is loaded (the guest
commands that drive its lines are :mod:`kharness.agent_client`'s).

A module under test uses khgpio like any GPIO controller (``gpio_request``, ``gpio_to_irq``,
``gpiod_*``). The harness drives input levels and pulses and reads output levels and interrupt
counts through khgpio's debugfs directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent / "khgpio"
MODULE = "khgpio"
MAX_LINES = 64
DEFAULT_LINES = 32
# The kernel options khgpio needs from the target kernel.
REQUIRED_CONFIG = ("CONFIG_GPIOLIB", "CONFIG_IRQ_DOMAIN", "CONFIG_DEBUG_FS")


@dataclass(frozen=True)
class GpioConfig:
    """``[gpio]`` in kharness.toml: load khgpio before the module, with this many lines at this
    base (None: the kernel picks a free range; a fixed base such as 0 lets a module that uses
    legacy global GPIO numbers run unmodified)."""
    base: int | None = None
    lines: int = DEFAULT_LINES

    def insmod_argv(self, path: str, insmod: tuple[str, ...] = ("insmod",)) -> list[str]:
        """``insmod``: the words before the file (kh-agent's insmod in a guest over SSH)."""
        argv = [*insmod, path, f"ngpio={self.lines}"]
        if self.base is not None:
            argv.append(f"base={self.base}")
        return argv


def parse_config(raw, err) -> GpioConfig:
    """The ``[gpio]`` table; ``err(message)`` makes the UsageError naming the file."""
    if not isinstance(raw, dict):
        raise err("[gpio] must be a table, e.g. [gpio] base = 0")
    bad = set(raw) - {"base", "lines"}
    if bad:
        raise err(f"[gpio]: unknown key(s) {sorted(bad)}; known: base, lines")
    base = raw.get("base", "auto")
    if base == "auto":
        base = None
    elif not isinstance(base, int) or isinstance(base, bool) or not 0 <= base < 4096:
        raise err(f"[gpio] base must be \"auto\" or a GPIO number from 0 to 4095 (got {base!r})")
    lines = raw.get("lines", DEFAULT_LINES)
    if not isinstance(lines, int) or isinstance(lines, bool) or not 1 <= lines <= MAX_LINES:
        raise err(f"[gpio] lines must be an integer from 1 to {MAX_LINES} (got {lines!r})")
    return GpioConfig(base=base, lines=lines)


def values(base: int, lines: int) -> dict[str, str]:
    """Placeholders: ``{gpio.base}`` and ``{gpio.N}``, the global number of line N."""
    out = {"gpio.base": str(base)}
    out.update({f"gpio.{i}": str(base + i) for i in range(lines)})
    return out
