"""Before any work: the options and kharness.toml judged (a bad placeholder or a missing QEMU is
an error now, not after a build and a boot), and the guest planned."""

from __future__ import annotations

from dataclasses import dataclass

from rich.markup import escape

from kharness import checks, ui
from kharness.build.makefile import BuildPlan, plan_build
from kharness.cachectl import reap_abandoned_staging
from kharness.errors import UsageError
from kharness.kernels import hosttree
from kharness.kernels.hosttree import HostTree
from kharness.modconfig import ModuleConfig, load_config, merge_params, parse_cli_params
from kharness.plan import GuestPlan, plan_guest
from kharness.runner.context import Context
from kharness.runner import remote
from kharness.runner.options import DEFAULT_TIMEOUT, GUESTS
from kharness.targets import get_target
from kharness.vm.accel import ACCELS
from kharness.vm.qemu import qemu_binary


@dataclass
class Prepared:
    config: ModuleConfig
    params: dict[str, dict[str, str]]   # {module ("" for the only one): {name: value}}
    build: BuildPlan
    guest: GuestPlan
    timeout: float                      # per guest step
    host_tree: HostTree | None = None   # with --remote: the board kernel's tree on the host, to build against


def prepare(run: Context) -> Prepared:
    opts = run.opts
    d = opts.module_dir
    if not d.exists():
        raise UsageError(f"module directory {d} does not exist")
    if not d.is_dir():
        raise UsageError(f"{d} is not a directory", hint="give the directory that holds the module's sources")
    if opts.accel not in ACCELS:
        raise UsageError(f"unknown accelerator {opts.accel!r}", hint="use auto, kvm or tcg")
    if opts.guest not in GUESTS:
        raise UsageError(f"unknown guest {opts.guest!r}", hint=f"use {' or '.join(GUESTS)}")
    if opts.remote and (opts.guest != "busybox" or opts.kernel or opts.kernel_config or opts.debug):
        raise UsageError("--remote tests on the board's own system and kernel",
                         hint="leave --guest, --kernel, --kernel-config and --debug out with --remote")
    if opts.build_on_remote and not opts.remote:
        raise UsageError("--build-on-remote builds on the board given with --remote",
                         hint="add --remote USER@HOST, or leave --build-on-remote out")
    tree = _host_tree(opts)
    if opts.guest == "debian":
        from kharness.image.rootfs import check_packages   # a bad name: said before any work

        check_packages(list(opts.guest_packages))
    kernel = opts.kernel
    reap_abandoned_staging()   # what a SIGKILLed kharness was making when it died
    if opts.remote:
        # The board says what it runs: that picks the target and the kernel. run.guest is set
        # now, so that the connection is closed (and the board cleaned) however the run ends.
        run.guest, profile, kernel = remote.connect(opts, opts.target if opts.target_given else None)
        run.profile = profile
        run.result.target = profile.name
        if tree is not None:
            hosttree.check_for_board(tree, kernel, profile)
            if not tree.has_symvers:
                ui.info("[yellow]" + escape(f"warning: {tree.given} has no Module.symvers: modpost cannot check "
                                            f"the symbols the module uses, and warns that they are undefined") +
                        "[/yellow]")
    else:
        profile = run.profile = get_target(opts.target)
        qemu_binary(profile)  # a missing QEMU is an error before any work, not after a build
        if opts.guest == "debian":
            from kharness.image.distro import check_target

            check_target(profile)
    config = load_config(d)
    if opts.guest == "debian" and config.guest_packages:
        from kharness.image.rootfs import check_packages   # a bad name: said before any work

        check_packages(list(config.guest_packages), f"{config.path}: [guest] packages")
    cli_params = parse_cli_params(opts.params)
    build = plan_build(d, name=config.name, sources=list(config.sources) or None,
                       ccflags=list(config.ccflags), include_dirs=list(config.include_dirs))
    timeout = opts.timeout or config.timeout or DEFAULT_TIMEOUT
    params = merge_params(config.params, cli_params)
    # Placeholders and per-target encodings are judged now, not after a build and a boot.
    extra = {f"parameter {(m + '.') if m else ''}{k}": v for m, kv in params.items() for k, v in kv.items()}
    extra.update({f"[{ph}] expect_dmesg": rx for ph, rx in
                  (("load", config.load_expect_dmesg), ("unload", config.unload_expect_dmesg)) if rx})
    checks.validate_for_run(config.path or d / "kharness.toml", config.checks, profile,
                            params={k for kv in params.values() for k in kv},
                            gpio_lines=config.gpio.lines if config.gpio is not None else None,
                            extra_texts=extra,
                            param_values={k: v for kv in params.values() for k, v in kv.items()})
    # (with --remote, --kernel-tree is the board's kernel's tree: nothing for a guest to build)
    guest = plan_guest(profile, kernel, opts.debug, None if opts.remote else opts.kernel_tree, opts.kernel_config,
                       opts.accel)
    run.profile = guest.profile   # (a debug guest's memory applied)
    run.debug = guest.debug
    return Prepared(config, params, build, guest, timeout, tree)


def _host_tree(opts) -> HostTree | None:
    """With --remote, --headers DIR or --kernel-tree DIR: the board kernel's tree on the host,
    judged before the board is asked anything. One way to the headers only."""
    if opts.headers is not None and not opts.remote:
        raise UsageError("--headers DIR is the kbuild tree of a board's kernel: it goes with --remote",
                         hint="add --remote USER@HOST; a guest's kernel brings its own headers: --kernel or "
                              "--kernel-tree")
    ways = [o for o, given in (("--headers", opts.headers is not None),
                               ("--kernel-tree", opts.remote and opts.kernel_tree is not None),
                               ("--build-on-remote", opts.build_on_remote)) if given]
    if len(ways) > 1:
        raise UsageError(f"{' and '.join(ways)} each say where the board kernel's headers are: give one",
                         hint="--headers DIR for a headers tree on this host, --kernel-tree DIR for the board "
                              "kernel's built source tree, or --build-on-remote for the board's own headers")
    given = opts.host_tree
    return hosttree.open_tree(given[1], given[0]) if given is not None else None
