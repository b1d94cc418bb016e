"""``kharness kernel build`` and ``kharness image build``: the kernels and guest images a run
boots, made (or found in the cache) on their own. Both plan their guest as ``kharness run`` does
(:mod:`kharness.plan`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kharness import ui
from kharness.cli.common import DEBUG_HELP, VERBOSE, die, out
from kharness.errors import KharnessError, UsageError


def kernel_build(
    target: str = typer.Option(..., "--target", "-t", help="Target whose profile gives ARCH, cross compiler "
                                                          "and config fragment (e.g. ppc64)."),
    kernel: Optional[str] = typer.Option(None, "--kernel", "-k", help="Series of Debian's linux-source-* (e.g. 6.1) "
                                                                      "or an alias of one (stable)."),
    source: Optional[Path] = typer.Option(None, "--source", help="Your own kernel tree instead of Debian's source."),
    config: List[Path] = typer.Option([], "--config", help="Extra config fragment (repeatable)."),
    debug: Optional[str] = typer.Option(None, "--debug", help=DEBUG_HELP),
    verbose: bool = VERBOSE,
) -> None:
    """Build (or reuse) a kernel from source: tinyconfig + the target's fragment + yours (+ the
    debug checkers' fragments). `kharness run --debug ...` builds the same kernel by itself."""
    from kharness.kernels.source import boot_image
    from kharness.plan import build_source, plan_guest

    ui.set_verbose(verbose)
    try:
        guest = plan_guest(target, kernel, debug, source, config)
        prof, checkers = guest.profile, guest.debug
        if source is None and prof.kernel_source != "debian-source" and not config and not checkers:
            raise UsageError(f"target {target} uses Debian's packaged kernels",
                             hint="give --debug CHECKERS for a debug kernel, or --source DIR (and --config "
                                  "fragments) to build your own tree")
        if source is not None:
            if not prof.config_fragment and not config:
                raise UsageError(f"target {target} has no config fragment of its own",
                                 hint="give --config fragments that make the kernel boot on it")
        elif config:
            raise UsageError("--config applies to --source", hint="give --source DIR too")
        _, b = build_source(prof, guest.kernel, guest.kernel_tree, guest.kernel_config, checkers)
    except KharnessError as e:
        die(e)
    took = f" (built in {b.build_seconds:.0f}s)" if b.build_seconds else ""
    what = f"debug kernel ({', '.join(checkers)})" if checkers else "kernel"
    out().print(f"{what} {b.release} for {target}: {b.out / (b.boot or boot_image(prof))}{took}")


def image_build(
    target: str = typer.Option("x86_64", "--target", "-t"),
    kernel: Optional[str] = typer.Option(None, "--kernel", "-k", help="Series or exact release."),
    snapshot: bool = typer.Option(False, "--snapshot", help="Also save the ready snapshot `kharness run` restores."),
    accel: str = typer.Option("auto", "--accel", help="auto, kvm or tcg (a snapshot is per accelerator)."),
    boot_timeout: float = typer.Option(300, "--boot-timeout", min=5),
    debug: Optional[str] = typer.Option(None, "--debug", help="Debug kernel checkers (as for run)."),
    verbose: bool = VERBOSE,
) -> None:
    """Build (or reuse) the guest image for a target and kernel and print where it is."""
    from kharness.agent_client import HEALTH_CMD
    from kharness.plan import plan_guest
    from kharness.targets import get_target
    from kharness.vm import snapshot as snapshots
    from kharness.vm.accel import choose_accel
    from kharness.vm.qemu import BootSpec

    ui.set_verbose(verbose)
    snap = None
    try:
        prof = get_target(target)
        if snapshot and not prof.snapshot:   # before any download or build
            raise UsageError(f"{prof.name} does not support snapshots (see images/{prof.name}.toml)")
        guest = plan_guest(prof, kernel, debug, accel=accel)   # (as run plans it: a debug guest's memory too)
        spec, built = guest.resolve()
        k, base, dtb = guest.image(spec, built)
        if snapshot:
            boot = BootSpec(k.kernel, base.path, dtb)
            acc, _ = choose_accel(guest.profile, guest.accel, boot)
            snap = snapshots.ensure(guest.profile, boot, acc, boot_timeout, prepare=HEALTH_CMD)
    except KharnessError as e:
        die(e)
    console = out()
    console.print(f"kernel    {k.kernel}")
    console.print(f"initramfs {base.path}")
    if dtb:
        console.print(f"dtb       {dtb}")
    console.print(f"release   {spec.release}")
    if snap is not None:
        console.print(f"snapshot  {snap.path} (saved in {snap.save_seconds:.2f}s)")
