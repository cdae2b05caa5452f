"""Reading the project's small JSON files (run config, metrics) with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_object(path: str | Path, error: type[Exception] = ValueError) -> dict[str, Any]:
    """The JSON object in ``path``; ``error`` naming the file when it is not text, not JSON or not an object."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a text file ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
