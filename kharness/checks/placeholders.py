"""The placeholder language of checks and parameters.

``{module}``, ``{param.NAME}`` (the module's parameters as loaded), ``{major}`` (the major of the
character device the module registered; ``{major.NAME}`` by its name in /proc/devices),
``{gpio.base}`` and ``{gpio.N}`` (the global GPIO number of khgpio's line N); other braces are
left alone, so shell and awk code need no escaping. A value stands for itself wherever it goes:
in a regular expression it is matched literally (``1.5`` does not match ``175``); ``path``,
``write`` and ``device`` are quoted for the guest shell by their kind; in ``run`` (shell code the
user writes, where a value may sit inside quotes of any kind) a value must be made of characters
no shell treats specially (letters, digits, ``_@%+=:,./-``), else the run is refused before the
build.
"""

from __future__ import annotations

import re

from kharness.checks.fields import Err
from kharness.errors import UsageError

TOKEN_RE = re.compile(r"\{(module|param\.[A-Za-z_][A-Za-z0-9_]*|major(?:\.[\w-]+)?|gpio\.(?:base|[0-9]+))\}")
# Characters no shell (bare, "double" or 'single' quoted) gives a meaning: shlex.quote's safe set.
_SHELL_PLAIN_RE = re.compile(r"[\w@%+=:,./-]*", re.ASCII)


def values_for(modules: list[str], params: dict[str, dict[str, str]]) -> dict[str, str]:
    """``{module}`` and ``{param.NAME}`` for the first module (``{param.MOD.NAME}`` is not needed
    yet: one module's parameters are what checks refer to in practice)."""
    out: dict[str, str] = {}
    if modules:
        out["module"] = modules[0]
        for k, v in params.get(modules[0], {}).items():
            out[f"param.{k}"] = v
    return out


def substitute(text: str | None, values: dict[str, str], where: str, escape=None) -> str | None:
    """``text`` with its placeholders replaced; ``escape(token, value)`` (for instance a regex
    escape) makes what stands for each value."""
    if text is None:
        return None

    def repl(m: re.Match) -> str:
        if m.group(1) not in values:
            # (values may hold more than placeholders: a program check's binary, by its key)
            known = ["{" + k + "}" for k in sorted(values) if TOKEN_RE.fullmatch("{" + k + "}")]
            raise UsageError(f"{where}: {{{m.group(1)}}} is not known here", hint=f"known: {', '.join(known)}")
        v = values[m.group(1)]
        return escape(m.group(1), v) if escape else v

    return TOKEN_RE.sub(repl, text)


def shell_plain(where: str, token: str, value: str) -> str:
    """``value`` if it can stand in shell code as it is; else the run is refused."""
    if not _SHELL_PLAIN_RE.fullmatch(value):
        raise UsageError(f"{where}: 'run' uses {{{token}}}, whose value {value!r} has characters a shell "
                         f"would interpret",
                         hint="give it letters, digits and _@%+=:,./- only, or compare it in a sysfs/file "
                              f"check (expect = \"{{{token}}}\") or with expect_stdout instead")
    return value


def substitute_shell(text: str, values: dict[str, str], where: str) -> str:
    """Shell code the user wrote, each placeholder replaced by a value no shell interprets."""
    return substitute(text, values, where, escape=lambda token, v: shell_plain(where, token, v))


def regex_field(err: Err, field: str, value) -> str | None:
    """A regex field of a table, judged when the file is read (``None``: not given)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise err(f"'{field}' must be a string (a regular expression)")
    try:
        # As it will be matched: every placeholder stands for a literal value.
        re.compile(TOKEN_RE.sub("x", value))
    except re.error as e:
        raise err(f"'{field}' is not a valid regular expression: {e}") from None
    return value


def compile_regex(text: str | None, values: dict[str, str], where: str) -> re.Pattern | None:
    """A regex field, each placeholder's value matched literally (``1.5`` is not ``175``,
    ``hi (there`` is no syntax error). Multi-line: ``^``/``$`` match at every line."""
    rx = substitute(text, values, where, escape=lambda _token, v: re.escape(v))
    if rx is None:
        return None
    try:
        return re.compile(rx, re.M)
    except re.error as e:   # judged when the file was read; this is the last line of defence
        raise UsageError(f"{where} is not a valid regular expression once substituted ({rx!r}): {e}") from None


class Known:
    """What placeholders will resolve to in one run, judged before anything is built or booted:
    ``params`` the parameter names given, ``gpio_lines`` khgpio's lines (``None``: no [gpio]),
    ``given`` each parameter name -> every value it is given (for any module)."""

    def __init__(self, params: set[str], gpio_lines: int | None, given: dict[str, list[str]]):
        self.params, self.gpio_lines, self.given = params, gpio_lines, given

    def _known(self, tok: str) -> bool:
        if tok == "module" or tok.startswith("major"):
            return True                     # majors are read from /proc/devices after loading
        if tok.startswith("param."):
            return tok[6:] in self.params
        if tok == "gpio.base":
            return self.gpio_lines is not None
        return self.gpio_lines is not None and int(tok[5:]) < self.gpio_lines

    def _hint(self) -> str:
        ks = ["{module}", "{major}", "{major.NAME}"] + [f"{{param.{p}}}" for p in sorted(self.params)]
        if self.gpio_lines is not None:
            ks += ["{gpio.base}", f"{{gpio.0}} to {{gpio.{self.gpio_lines - 1}}}"]
        return "known here: " + ", ".join(ks)

    def check_text(self, where: str, field: str, text: str) -> None:
        """Every placeholder of ``text`` names something that will exist; in ``run`` (shell
        code), every value a parameter is given is plain (see :func:`shell_plain`)."""
        for m in TOKEN_RE.finditer(text):
            tok = m.group(1)
            if not self._known(tok):
                why = ("no such parameter is given (--param or [module.params])" if tok.startswith("param.")
                       else "no [gpio] section" if self.gpio_lines is None
                       else f"khgpio has lines 0 to {self.gpio_lines - 1}")
                raise UsageError(f"{where}: '{field}' uses {{{tok}}}: {why}", hint=self._hint())
            if field == "run" and tok.startswith("param."):
                # Only parameters can hold shell-special text ({module}, majors and GPIO
                # numbers are names and numbers); every value the name is given is judged.
                for v in self.given.get(tok[6:], ()):
                    shell_plain(where, tok, v)
