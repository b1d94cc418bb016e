"""Unit tests for kharness.build.diagnostics on gcc/kbuild/modpost output as it really looks."""

from __future__ import annotations

from kharness.build.diagnostics import Diagnostic, parse_diagnostics

SHADOW = "/cache/builds/build_error-6.1.0-50-amd64-0123456789abcdef/tree/mods/build_error"
USER = "/home/u/mods/build_error"

LOG = f"""\
make: Entering directory '/cache/headers/6.1.0-50-amd64-abc/usr/src/linux-headers-6.1.0-50-amd64'
  CC [M]  {SHADOW}/build_error.o
{SHADOW}/build_error.c: In function 'be_init':
{SHADOW}/build_error.c:12:9: error: implicit declaration of function 'undefined_fn' [-Werror=implicit-function-declaration]
   12 |         undefined_fn();
      |         ^~~~~~~~~~~~
{SHADOW}/build_error.c:14:16: warning: unused variable 'x' [-Wunused-variable]
{SHADOW}/build_error.c:20: warning: "FOO" redefined
{SHADOW}/build_error.c:3:10: note: this is the location of the previous definition
In file included from {SHADOW}/build_error.c:2:
{SHADOW}/missing.h:1:10: fatal error: foo.h: No such file or directory
    1 | #include <foo.h>
      |          ^~~~~~~
compilation terminated.
cc1: some warnings being treated as errors
make[2]: *** [scripts/Makefile.build:250: {SHADOW}/build_error.o] Error 1
{SHADOW}/build_error.c:12:9: error: implicit declaration of function 'undefined_fn' [-Werror=implicit-function-declaration]
ERROR: modpost: "foo" [{SHADOW}/build_error.ko] undefined!
WARNING: modpost: missing MODULE_LICENSE() in {SHADOW}/build_error.o
make: Leaving directory '/cache/headers'
"""


def test_parse_real_log_without_path_map():
    ds = parse_diagnostics(LOG)
    assert ds == [
        Diagnostic(f"{SHADOW}/build_error.c", 12, 9, "error",
                   "implicit declaration of function 'undefined_fn' [-Werror=implicit-function-declaration]"),
        Diagnostic(f"{SHADOW}/build_error.c", 14, 16, "warning", "unused variable 'x' [-Wunused-variable]"),
        Diagnostic(f"{SHADOW}/build_error.c", 20, None, "warning", '"FOO" redefined'),
        Diagnostic(f"{SHADOW}/build_error.c", 3, 10, "note", "this is the location of the previous definition"),
        Diagnostic(f"{SHADOW}/missing.h", 1, 10, "error", "foo.h: No such file or directory"),
        Diagnostic(None, None, None, "error", f'"foo" [{SHADOW}/build_error.ko] undefined!', "modpost"),
        Diagnostic(None, None, None, "warning", f"missing MODULE_LICENSE() in {SHADOW}/build_error.o", "modpost"),
    ]


def test_path_map_rewrites_file_names():
    ds = parse_diagnostics(LOG, {SHADOW: USER})
    assert [d.file for d in ds] == [f"{USER}/build_error.c"] * 4 + [f"{USER}/missing.h", None, None]
    assert ds[0].format() == (f"{USER}/build_error.c:12:9: error: implicit declaration of function "
                              "'undefined_fn' [-Werror=implicit-function-declaration]")


def test_path_map_first_matching_prefix_only():
    log = "/a/b/x.c:1:2: error: e\n/c/y.c:3:4: warning: w\n"
    ds = parse_diagnostics(log, {"/a/b": "/u", "/a": "/never", "/c": "/v"})
    assert [(d.file, d.line, d.column) for d in ds] == [("/u/x.c", 1, 2), ("/v/y.c", 3, 4)]


def test_context_lines_are_ignored():
    log = (
        "/s/m.c: In function 'f':\n"
        "/s/m.c: At top level:\n"
        "In file included from ./include/linux/module.h:12,\n"
        "                 from /s/m.c:1:\n"
        "   12 |         undefined_fn();\n"
        "      |         ^~~~~~~~~~~~\n"
        "cc1: all warnings being treated as errors\n"
        "make[1]: *** [Makefile:1234: /s] Error 2\n"
        "  LD [M]  /s/m.ko\n"
    )
    assert parse_diagnostics(log) == []


def test_deduplication_keeps_first_order():
    log = "a.c:1:1: error: x\nb.c:2:2: warning: y\na.c:1:1: error: x\nERROR: modpost: z\nERROR: modpost: z\n"
    ds = parse_diagnostics(log)
    assert [d.format() for d in ds] == ["a.c:1:1: error: x", "b.c:2:2: warning: y", "error: z"]


def test_same_message_different_column_is_kept():
    ds = parse_diagnostics("a.c:1:1: error: x\na.c:1:2: error: x\n")
    assert len(ds) == 2


def test_relative_paths_and_indented_modpost():
    ds = parse_diagnostics("drivers/x/y.c:7:3: warning: w\n  ERROR: modpost: \"sym\" [m.ko] undefined!\n")
    assert ds == [Diagnostic("drivers/x/y.c", 7, 3, "warning", "w"),
                  Diagnostic(None, None, None, "error", '"sym" [m.ko] undefined!', "modpost")]


def test_format_and_to_dict():
    d = Diagnostic(None, None, None, "error", '"foo" [/x/y.ko] undefined!', "modpost")
    assert d.format() == 'error: "foo" [/x/y.ko] undefined!'
    assert d.to_dict() == {"file": None, "line": None, "column": None, "severity": "error",
                           "message": '"foo" [/x/y.ko] undefined!', "tool": "modpost"}
    assert Diagnostic("f.c", 3, None, "warning", "w").format() == "f.c:3: warning: w"


def test_empty_log():
    assert parse_diagnostics("") == []
