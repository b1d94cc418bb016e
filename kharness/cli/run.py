"""``kharness run`` and ``kharness watch``: one run of a module, or one on every save.

The run path is the one a developer waits on: it imports what it uses when it runs (the runner
and the result writers), nothing at the top of this module beyond what option parsing needs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from kharness import ui
from kharness.cli import ci
from kharness.cli.common import DEBUG_HELP, RUN_VERBOSE, VERBOSE, die, error_line, out, show_traceback
from kharness.errors import KharnessError, UsageError


def run(
    module_dir: Path = typer.Argument(..., help="Directory holding the module's sources (and optionally its "
                                               "Makefile/Kbuild and kharness.toml)."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target board (see `kharness targets`); "
                                                                      "default x86_64 (with --remote: the board's)."),
    kernel: Optional[str] = typer.Option(None, "--kernel", "-k",
                                         help="Kernel series (5.10, 6.1, 6.12, 7.2) or exact release "
                                              "(6.1.0-50-amd64), or 6.1-debug for a debug kernel with every "
                                              "checker (see --debug). Default: 6.1, Debian's stable."),
    param: List[str] = typer.Option([], "--param", "-p", help="Module parameter KEY=VALUE (or MODULE.KEY=VALUE "
                                                             "when several modules are built); repeatable."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the structured result "
                                                                  "(schema kharness/result/v1) here; `-`: "
                                                                  "on stdout (the summary goes to stderr)."),
    ktap_path: Optional[Path] = typer.Option(None, "--ktap", help="Write the result as KTAP version 1 (the "
                                                                  "kernel's test output format) here."),
    kcidb_path: Optional[Path] = typer.Option(None, "--kcidb", help="Write the result as KernelCI KCIDB data "
                                                                    "(checkout, build, tests) here."),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=1,
                                            help="Seconds each guest step (insmod, a check, rmmod) may take "
                                                 "before it counts as a hang. Default 60."),
    boot_timeout: float = typer.Option(300, "--boot-timeout", min=5, help="Seconds the guest may take to boot."),
    accel: str = typer.Option("auto", "--accel", help="auto (KVM if a probe boot works, else TCG), kvm or tcg."),
    keep: bool = typer.Option(False, "--keep", help="Keep the run directory (console log, initrd, QEMU "
                                                   "command line) and print where it is."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output, only the summary."),
    kernel_tree: Optional[Path] = typer.Option(None, "--kernel-tree", help="Build the kernel from this source "
                                               "tree (tinyconfig + the target's fragment + --kernel-config) "
                                               "and test against it. With --remote: the board kernel's source "
                                               "tree, configured and built by you; the module is built against "
                                               "it on this host."),
    kernel_config: List[Path] = typer.Option([], "--kernel-config", help="Config fragment for --kernel-tree "
                                                                        "(repeatable)."),
    cold: bool = typer.Option(False, "--cold", help="Boot the guest instead of restoring its ready snapshot."),
    debug: Optional[str] = typer.Option(None, "--debug", help=DEBUG_HELP),
    list_programs: bool = typer.Option(False, "--list-programs",
                                       help="List the module directory's own user-space programs (test.c + "
                                            "test.expected, tests/, test/, other/, misc-progs/, user*/) and the "
                                            "kharness.toml line that runs each; build and boot nothing."),
    guest: str = typer.Option("busybox", "--guest", help="The system around the module: busybox (kharness's "
                                                        "initramfs, fastest) or debian (a Debian root filesystem "
                                                        "with systemd, udev, modprobe and sshd, driven over SSH)."),
    guest_packages: Optional[str] = typer.Option(None, "--guest-packages", help="Debian packages to add to a "
                                                 "--guest debian system, comma-separated (e.g. v4l-utils,i2c-tools)."),
    guest_suite: Optional[str] = typer.Option(None, "--guest-suite", help="Debian suite of a --guest debian "
                                              "system (default: the kernel's: bookworm for 6.1, trixie for 6.12, "
                                              "sid for 7.2)."),
    remote: Optional[str] = typer.Option(None, "--remote", help="Test on a machine over SSH instead of a guest: "
                                         "USER@HOST[:PORT]. Its `uname -r` picks the kernel; it is never rebooted "
                                         "and is left as found."),
    identity: Optional[Path] = typer.Option(None, "--identity", "-i", help="SSH private key for --remote (default: "
                                            "the SSH agent and ~/.ssh keys)."),
    accept_new_host_key: bool = typer.Option(False, "--accept-new-host-key", help="With --remote: add an unknown "
                                             "host's key to ~/.ssh/known_hosts (a changed key is always refused)."),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts", help="With --remote: the known_hosts file "
                                               "to check the host key against (default ~/.ssh/known_hosts)."),
    build_on_remote: bool = typer.Option(False, "--build-on-remote", help="With --remote: build the module on "
                                         "the board against its own /lib/modules/$(uname -r)/build (for kernels "
                                         "Debian's archive does not have; the board needs make, gcc and its "
                                         "kernel's headers)."),
    headers: Optional[Path] = typer.Option(None, "--headers", help="With --remote: build on this host against "
                                           "this kbuild tree of the board's kernel (an unpacked "
                                           "linux-headers-<release> package, the vendor's headers, or "
                                           "/lib/modules/<release>/build copied from the board); its release "
                                           "must be the board's `uname -r`."),
    annotations: str = ci.ANNOTATIONS,
    step_summary: Optional[str] = ci.STEP_SUMMARY,
    codequality: Optional[Path] = ci.CODEQUALITY,
    verbose: bool = RUN_VERBOSE,
) -> None:
    """Build MODULE_DIR against the target kernel, boot it in QEMU, insmod, run the checks, rmmod,
    and watch the kernel log throughout."""
    if list_programs:
        from kharness.build.companions import listing

        if not module_dir.is_dir():
            die(UsageError(f"module directory {module_dir} does not exist"))
        typer.echo(listing(module_dir), nl=False)
        raise typer.Exit(0)
    from kharness.cli.interchange import check_outputs, write_run
    from kharness.outputs import check_output_file, is_stdout
    from kharness.result.model import Result
    from kharness.result.writers import print_summary, write_json
    from kharness.runner import RunOptions, run as run_pipeline
    from kharness.unexpected import as_result

    ui.set_quiet(quiet)
    ui.set_verbose(verbose)
    ui.stream_guest_console(verbose)
    if json_path is not None:
        try:
            check_output_file(json_path, "--json")
        except KharnessError as e:
            die(e)
    try:
        ci.check_options(annotations, codequality)
        check_outputs(ktap_path, kcidb_path)
    except KharnessError as e:
        die(e)
    target_given, target = target is not None, target or "x86_64"
    packages = tuple(p.strip() for p in (guest_packages or "").split(",") if p.strip())
    opts = RunOptions(module_dir=module_dir, target=target, kernel=kernel, params=list(param),
                      timeout=timeout, boot_timeout=boot_timeout, accel=accel, keep=keep,
                      kernel_tree=kernel_tree, kernel_config=list(kernel_config), cold=cold, debug=debug or (),
                      guest=guest, guest_packages=packages, guest_suite=guest_suite, remote=remote,
                      identity=identity, accept_new_host_key=accept_new_host_key, known_hosts=known_hosts,
                      target_given=target_given, build_on_remote=build_on_remote, headers=headers)
    try:
        result = run_pipeline(opts)
    except KeyboardInterrupt:
        ui.console.print("[red]interrupted[/red]")
        raise typer.Exit(130)
    except Exception as e:   # before the runner had a result to fill (it catches what its phases raise)
        result = as_result(Result(module_dir=str(module_dir), target=target, kernel_wanted=kernel or "default"), e)
    if json_path is not None:
        write_json(result, json_path)
    if ktap_path is not None or kcidb_path is not None:
        write_run(result.to_dict(), module_dir, ktap_path, kcidb_path)
    if result.status == "error" and (result.phase("build").status == "skipped" or (
            result.error["kind"] == "usage" and result.phase("boot").status == "skipped")):
        # A usage or infrastructure error before anything ran, or bad input found after the
        # build and before a boot (a kernel module the target lacks): one line says it all.
        error_line(result.error["message"])
    else:
        print_summary(result, out(stderr=is_stdout(json_path)))
        if result.traceback:   # the summary went to stdout; the line CI greps goes to stderr
            error_line(result.error["message"])
    show_traceback(result.traceback)
    ci.run_outputs(result.to_dict(), module_dir, annotations, step_summary, codequality, json_path)
    raise typer.Exit(result.exit_code)


def watch(
    module_dir: Path = typer.Argument(..., help="The module directory to watch."),
    target: str = typer.Option("x86_64", "--target", "-t"),
    kernel: Optional[str] = typer.Option(None, "--kernel", "-k"),
    param: List[str] = typer.Option([], "--param", "-p"),
    timeout: Optional[float] = typer.Option(None, "--timeout", min=1),
    accel: str = typer.Option("auto", "--accel"),
    cold: bool = typer.Option(False, "--cold", help="Boot every run instead of restoring the snapshot."),
    runs: Optional[int] = typer.Option(None, "--runs", min=1, help="Stop after this many runs (default: until Ctrl-C)."),
    debug: Optional[str] = typer.Option(None, "--debug", help="Debug kernel checkers (as for run)."),
    verbose: bool = VERBOSE,
) -> None:
    """Rebuild and rerun on every save: each run restores the ready snapshot, so a fresh kernel
    checks every edit; the verdict is on screen about a second after the build."""
    from kharness.kernels.debug import parse_checkers
    from kharness.result.writers import print_summary
    from kharness.runner import RunOptions
    from kharness.runner import run as run_pipeline
    from kharness.watch import watch as watch_loop

    ui.set_verbose(verbose)
    if not module_dir.is_dir():
        die(UsageError(f"module directory {module_dir} does not exist"))
    try:
        checkers = parse_checkers(debug)
    except KharnessError as e:
        die(e)
    opts = RunOptions(module_dir=module_dir, target=target, kernel=kernel, params=list(param),
                      timeout=timeout, accel=accel, cold=cold, debug=checkers)
    last = {"code": 0}
    console = out()

    def report(result, seconds: float) -> None:
        print_summary(result, console)
        show_traceback(result.traceback)
        console.print(f"[dim]{time.strftime('%H:%M:%S')} run took {seconds:.1f}s "
                      f"({result.boot_mode or 'no boot'}); watching {module_dir} (Ctrl-C to stop)[/dim]")
        last["code"] = result.exit_code

    try:
        watch_loop(module_dir, lambda: run_pipeline(opts), report, max_runs=runs)
    except KeyboardInterrupt:
        raise typer.Exit(0)
    raise typer.Exit(last["code"])
