"""The check kinds: one module per kind, registered by its ``kind`` name.

A kind module defines

* ``NAME``  - the ``kind`` value in kharness.toml; ``ORDER`` - where messages list it;
* ``KEYS``  - the table keys it takes besides the common ones (name, kind, repeat, timeout, targets);
* ``CHECK`` - its frozen dataclass: a :class:`~kharness.checks.base.BaseCheck` with only its fields;
* ``parse(table, base, err)`` - the check of a table whose keys are known and whose common fields
  are judged (``base``: repeat, timeout, targets); ``err(msg)`` makes the one-line UsageError;
* ``command(check, values, target)`` - the guest shell command for one repetition (``values``:
  what placeholders resolve to; ``target``: the target profile);
* ``judge(check, rc, stdout, stderr, values, target)`` - what failed (empty: it passed);
* ``texts(check)`` - ``(field, text)`` for every string placeholders may appear in;
* optionally ``validate(check, target)`` - raise ValueError for what only the target decides;
* optionally ``PATH_KEYS`` - keys whose values (a string or a list of strings) name files or
  directories relative to the module directory (``"other/test.c"``, ``"../chardev.h"``, which may
  point above it): :func:`kharness.checks.parse_check` hands them to ``parse`` as absolute paths,
  each checked to exist.

Every module of this package is a kind, named for it (``program.py`` holds ``NAME = "program"``),
so a new kind is one new file here. A kind's module is imported when a check of that kind is
first met (a run imports the kinds its checks use, not all of them); listing every kind
(:func:`names`) imports them all.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

REGISTRY: dict[str, ModuleType] = {}      # kind name -> its module, imported
FOUND: dict[str, str] = {}                # kind name -> the module to import when first needed
REQUIRED = ("NAME", "ORDER", "KEYS", "CHECK", "parse", "command", "judge", "texts")


def register(kind: ModuleType) -> ModuleType:
    """Add ``kind`` (a module, or any object with the attributes above) to the registry."""
    missing = [a for a in REQUIRED if not hasattr(kind, a)]
    if missing:
        raise TypeError(f"check kind {getattr(kind, '__name__', kind)!r} lacks {', '.join(missing)}")
    if kind.CHECK.kind != kind.NAME:
        raise TypeError(f"check kind {kind.NAME!r}: its CHECK class says kind {kind.CHECK.kind!r}")
    other = REGISTRY.get(kind.NAME)
    if other is not None and other is not kind:
        raise TypeError(f"check kind {kind.NAME!r} is defined twice ({other.__name__}, {kind.__name__})")
    REGISTRY[kind.NAME] = kind
    FOUND.pop(kind.NAME, None)
    return kind


def discover(package: ModuleType) -> None:
    """Know every module of ``package`` (this one, or another holding more kinds) as the kind it
    is named for; each is imported and registered when first needed."""
    for info in pkgutil.iter_modules(package.__path__):
        if info.name not in REGISTRY:
            FOUND.setdefault(info.name, f"{package.__name__}.{info.name}")


def get(name) -> ModuleType | None:
    """The kind called ``name`` (imported now if need be), or None if there is none."""
    if not isinstance(name, str):
        return None
    if name not in REGISTRY and name in FOUND:
        module = importlib.import_module(FOUND[name])
        if getattr(module, "NAME", None) != name:
            raise TypeError(f"{module.__name__} must define the kind it is named for: NAME = {name!r}")
        register(module)
    return REGISTRY.get(name)


def names() -> tuple[str, ...]:
    """Every kind, in the order messages list them."""
    for name in list(FOUND):
        get(name)
    return tuple(sorted(REGISTRY, key=lambda n: (REGISTRY[n].ORDER, n)))


discover(importlib.import_module(__name__))
