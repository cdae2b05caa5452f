"""argparse value types shared by the subcommands that live outside bnnflow/cli.py (stdlib only: the
board's ``bnnflow run`` imports them too)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An option value that must be an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def path_text(text: str) -> str:
    """A path option: any non-blank text (existence is checked where the path is used, with its role named)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text
