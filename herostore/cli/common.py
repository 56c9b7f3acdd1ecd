"""Flags shared by several commands, and the one error policy of every command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from ..errors import ArgumentError, HerostoreError
from ..presets import DEFAULT_PRESET, PRESETS


def help_text(text: str) -> str:
    """``text`` safe for argparse help (which reads ``%`` as a format code)."""
    return text.replace("%", "%%")


def add_preset_flag(parser: argparse.ArgumentParser) -> None:
    described = "; ".join(f"{name}: {p.description}" for name, p in PRESETS.items())
    parser.add_argument("--preset", default=DEFAULT_PRESET,
                        help=help_text(f"precision/compression (default {DEFAULT_PRESET}); {described}; "
                                       f"bitround:N keeps N mantissa bits"))


def add_parallel_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes on this machine (a local dask cluster; 1: in this process; default: "
                             "CPU count, at most 8, or this process for a run of a few seconds)")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="run on the existing dask cluster at ADDRESS (e.g. tcp://10.0.0.5:8786) instead; every "
                             "worker must see the paths given here at the same path (or URL)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_storage_flag(parser: argparse.ArgumentParser) -> None:
    """``--storage-option KEY=VALUE`` (repeatable): fsspec options for ``s3://`` and other URLs."""
    parser.add_argument("--storage-option", dest="storage_option", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="an fsspec option for s3:// (or other) URLs, repeatable; VALUE is JSON when it parses "
                             "(true, 16, {...}), else text; dotted keys nest (config_kwargs.max_pool_connections=32). "
                             "Credentials are best left to the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                             "AWS_ENDPOINT_URL, AWS_PROFILE): options on a command line are visible to other users")


def storage_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--storage-option`` flags as fsspec ``storage_options``."""
    options: dict[str, Any] = {}
    for item in getattr(args, "storage_option", None) or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ArgumentError(f"--storage-option {key.strip() or item!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        *parents, last = key.strip().split(".")
        target = options
        for name in parents:
            target = target.setdefault(name, {})
            if not isinstance(target, dict):
                raise ArgumentError(f"--storage-option {key.strip()}: {name!r} is set to a value and to options")
        target[last] = value
    return options


def describe_os_error(exc: OSError) -> str:
    """One line naming the path(s) and the reason, e.g. ``out/features: Not a directory``."""
    if exc.filename is None:
        text = str(exc) or type(exc).__name__
    else:
        paths = f"{exc.filename} -> {exc.filename2}" if exc.filename2 is not None else str(exc.filename)
        text = f"{paths}: {exc.strerror or type(exc).__name__}"
    return text.replace("\n", " ")


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace, name: str) -> int:
    """Run one command: a user mistake (``HerostoreError``, an unusable path) is one line on stderr and exit 2;
    Ctrl-C is exit 130 with a note that a re-run resumes."""
    try:
        return func(args)
    except HerostoreError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{name}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{name}: interrupted; what is written stays readable, re-run to resume", file=sys.stderr)
        return 130
