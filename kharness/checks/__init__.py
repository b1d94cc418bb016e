"""The check language of ``kharness.toml``: parse a ``[[check]]`` table, run it, judge it.

A check has a kind (``kind`` defaults to ``run`` when the table has a ``run`` key); each kind is
one module of :mod:`kharness.checks.kinds` (run, proc, sysfs, file, dmesg, ioctl, chardev,
gpio), whose docstring says what it takes. Every kind takes ``repeat = N`` (run the step N
times, each must pass), ``timeout``, and ``targets = ["rpi2", "rpi3"]`` (run only there;
elsewhere the check is reported as skipped). Strings may use placeholders (``{module}``,
``{param.NAME}``, ``{major}``, ``{gpio.N}``...): see :mod:`kharness.checks.placeholders`.

This module is what the rest of kharness uses: it finds the kind of a check and hands over.
"""

from __future__ import annotations

from pathlib import Path

from kharness.checks import kinds
from kharness.checks.base import COMMON_KEYS, STEP_CURSOR, BaseCheck
from kharness.checks.fields import errno_of
from kharness.checks.placeholders import Known, compile_regex, substitute, values_for
from kharness.errors import UsageError

__all__ = ["STEP_CURSOR", "BaseCheck", "Check", "command_for", "compile_regex", "errno_of", "judge",
           "parse_check", "substitute", "validate_for_run", "values_for"]


def Check(name: str, kind: str = "run", **fields) -> BaseCheck:  # noqa: N802 (reads as the constructor it is)
    """A check of ``kind`` from values already judged (Python callers, tests): the kind's own
    class; a table read from kharness.toml goes through :func:`parse_check` instead."""
    k = kinds.get(kind)
    if k is None:
        raise ValueError(f"unknown check kind {kind!r}; known: {', '.join(kinds.names())}")
    return k.CHECK(name=name, **fields)


def parse_check(path: Path, index: int, c) -> BaseCheck:
    """The check of the ``index``-th ``[[check]]`` table of ``path``; a mistake is a one-line
    UsageError naming file, check and field."""
    where = f"check #{index}" + (f" ({c.get('name')})" if isinstance(c, dict) and c.get("name") else "")

    def err(msg: str) -> UsageError:
        return UsageError(f"{path}: {where}: {msg}")

    if not isinstance(c, dict):
        raise err("must be a table")
    name = c.get("kind", "run" if "run" in c else None)
    if name is None:
        raise err("give 'run' (a shell command) or a 'kind' (" + ", ".join(kinds.names()) + ")")
    kind = kinds.get(name)
    if kind is None:
        raise err(f"unknown check kind {name!r}; known: {', '.join(kinds.names())}")
    bad = set(c) - COMMON_KEYS - kind.KEYS
    if bad == {"programs"}:   # TOML puts a key written after a [[check]] table into that table
        raise err("'programs' is a top-level key of kharness.toml: write it above the first [section]")
    if bad:
        raise err(f"unknown key(s) {sorted(bad)} for a {name} check; it takes "
                  f"{', '.join(sorted(kind.KEYS | COMMON_KEYS - {'kind'}))}")
    if "name" in c and not isinstance(c["name"], str):
        raise err("'name' must be a string")
    c = resolve_paths(c, getattr(kind, "PATH_KEYS", ()), path.parent, err)
    return kind.parse(c, _common(c, err), err)


def resolve_paths(table: dict, keys, base: Path, err) -> dict:
    """``table`` with the values of ``keys`` (a path or a list of paths, relative to ``base``,
    the module directory) made absolute; a path that does not exist is a one-line error. The
    paths are the user's own files (sources, headers, expected outputs) and may lie above
    ``base`` (``../chardev.h``, as the LKMPG's programs include it)."""
    out = dict(table)
    for key in keys:
        if key not in table:
            continue
        v = table[key]
        single = isinstance(v, str)
        items = [v] if single else v
        if not (isinstance(items, list) and items and all(isinstance(x, str) and x.strip() for x in items)):
            raise err(f"'{key}' must be a path or a non-empty list of paths, relative to the module directory")
        resolved = []
        for x in items:
            if "\0" in x or "\n" in x:
                raise err(f"'{key}': {x!r} is not a usable path")
            p = (base / x).resolve()
            if not p.exists():
                raise err(f"'{key}': {x} does not exist (paths are relative to {base})")
            resolved.append(str(p))
        out[key] = resolved[0] if single else resolved
    return out


def _common(c: dict, err) -> dict:
    """repeat, timeout and targets, judged the same for every kind."""
    repeat = c.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 10000:
        raise err("'repeat' must be an integer from 1 to 10000")
    targets = c.get("targets", [])
    if not (isinstance(targets, list) and targets and all(isinstance(x, str) for x in targets)) and "targets" in c:
        raise err("'targets' must be a non-empty list of target names such as [\"rpi2\", \"rpi3\"]")
    from kharness.targets import all_targets
    unknown = [x for x in targets if x not in all_targets()]
    if unknown:
        raise err(f"'targets' names unknown target(s) {unknown}; known: {', '.join(sorted(all_targets()))}")
    t = c.get("timeout")
    if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or t <= 0):
        raise err("'timeout' must be a positive number of seconds")
    return {"repeat": repeat, "timeout": t, "targets": tuple(targets)}


def command_for(c: BaseCheck, values: dict[str, str], target=None) -> str:
    """The guest shell command for one repetition of ``c`` (``target``: the profile)."""
    return kinds.get(c.kind).command(c, values, target)


def judge(c: BaseCheck, rc: int, stdout: str, stderr: str, values: dict[str, str], target=None) -> list[str]:
    """What did not meet the check's expectations (empty: it passed)."""
    return kinds.get(c.kind).judge(c, rc, stdout, stderr, values, target)


def texts(c: BaseCheck):
    """(field, string) for every string of ``c`` that placeholders may appear in."""
    return kinds.get(c.kind).texts(c)


def validate_for_run(config_path: Path, checks: tuple[BaseCheck, ...], target, *, params: set[str],
                     gpio_lines: int | None, extra_texts: dict[str, str] | None = None,
                     param_values: dict[str, str] | None = None) -> None:
    """What can only be judged once the target is known, judged before anything is built or
    booted: every placeholder names something that will exist, a parameter used in a ``run``
    command holds no shell-special text, and what a kind encodes for the target does (every
    ioctl request and payload). ``param_values``: parameter name -> value (by default read from
    ``extra_texts``' "parameter NAME" entries)."""
    # NAME -> every value given for it (for any module). Unless the caller passes them, the
    # "parameter NAME" / "parameter MODULE.NAME" entries of extra_texts are the values.
    given: dict[str, list[str]] = {}
    if param_values is not None:
        for k, v in param_values.items():
            given.setdefault(k, []).append(v)
    else:
        for label, v in (extra_texts or {}).items():
            if label.startswith("parameter "):
                given.setdefault(label[len("parameter "):].rsplit(".", 1)[-1], []).append(v)
    known = Known(params, gpio_lines, given)
    for where, text in (extra_texts or {}).items():
        known.check_text(f"{config_path}: {where}", "value", text)
    for i, c in enumerate(checks, 1):
        if c.targets and target.name not in c.targets:
            continue
        where = f"{config_path}: check #{i} ({c.name})"
        for field, text in texts(c):
            known.check_text(where, field, text)
        validate = getattr(kinds.get(c.kind), "validate", None)
        if validate is not None:
            try:
                validate(c, target)
            except ValueError as e:
                raise UsageError(f"{where}: {e}") from None
