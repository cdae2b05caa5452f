"""Checks of the driver's keyword options: every bad value is named, with what was expected.

Each backend lists the keyword options it accepts (``OPTIONS``) and checks
their values with the helpers here before it touches pynq or a simulator, so
a mistyped or out-of-range option fails at once with one line naming the
option, the value given and what is expected: a ``TypeError`` for a value of
the wrong type, a ``ValueError`` for one of the right type but out of range.
Booleans are not accepted as numbers (``max_batch=True`` is a mistake, not 1).
"""

from __future__ import annotations

import math
import numbers
import os
from typing import Any, Iterable

import numpy as np


#: Options earlier versions took, and why they are gone (a clearer answer than "unknown option").
REMOVED_OPTIONS = {
    "in_word_bytes": "the stream layout is fixed by the accelerator interface (docs/ACCEL.md)",
    "out_word_bytes": "the stream layout is fixed by the accelerator interface (docs/ACCEL.md)",
}


def check_known(backend: str, options: dict[str, Any], accepted: Iterable[str]) -> None:
    """``TypeError`` naming every option ``backend`` does not take, and listing the ones it does.

    An option of :data:`REMOVED_OPTIONS` is named with the reason it went away.
    """
    accepted = tuple(accepted)
    for name in options:
        if name in REMOVED_OPTIONS and name not in accepted:
            raise TypeError(f"unknown option {name!r} for backend {backend!r}: it was removed, "
                            f"{REMOVED_OPTIONS[name]}")
    unknown = [name for name in options if name not in accepted]
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        takes = ", ".join(accepted) if accepted else "no options"
        raise TypeError(f"unknown option{'s' if len(unknown) > 1 else ''} {names} for backend {backend!r}; "
                        f"it accepts: {takes}")


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None,
              none_ok: bool = False) -> int | None:
    """An integer in ``minimum..maximum`` (either bound optional); ``None`` only if ``none_ok``."""
    if value is None and none_ok:
        return None
    if minimum is not None and maximum is not None:
        expected = f"an integer in {minimum}..{maximum}"
    elif minimum == 1:
        expected = "a positive integer"
    elif minimum is not None:
        expected = f"an integer >= {minimum}"
    else:
        expected = "an integer"
    if none_ok:
        expected += " or None"
    if not _is_int(value):
        raise TypeError(f"option {name}={value!r} ({type(value).__name__}): expected {expected}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"option {name}={value}: expected {expected}")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any], none_ok: bool = False) -> Any:
    """One of ``choices`` (compared with ``==``, types checked so ``True`` is not ``1``)."""
    choices = tuple(choices)
    if value is None and none_ok:
        return None
    expected = "one of " + ", ".join(map(str, choices)) + (" or None" if none_ok else "")
    kinds = {type(c) for c in choices}
    if str in kinds and not isinstance(value, str):
        raise TypeError(f"option {name}={value!r} ({type(value).__name__}): expected {expected}")
    if int in kinds and not _is_int(value):
        raise TypeError(f"option {name}={value!r} ({type(value).__name__}): expected {expected}")
    if value not in choices:
        raise ValueError(f"option {name}={value!r}: expected {expected}")
    return choices[choices.index(value)]  # the canonical Python value (an int, not a numpy integer)


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (int or float, not bool) within the bounds (open or closed ends)."""
    if low is not None and high is not None:
        expected = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        expected = f"a finite number {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        expected = f"a finite number {'<' if high_open else '<='} {high:g}"
    else:
        expected = "a finite number"
    if not isinstance(value, numbers.Real) or _is_bool(value):
        raise TypeError(f"option {name}={value!r} ({type(value).__name__}): expected {expected}")
    number = float(value)
    bad = (not math.isfinite(number)
           or (low is not None and (number <= low if low_open else number < low))
           or (high is not None and (number >= high if high_open else number > high)))
    if bad:
        raise ValueError(f"option {name}={value!r}: expected {expected}")
    return number


def check_bool(name: str, value: Any) -> bool:
    if not _is_bool(value):
        raise TypeError(f"option {name}={value!r} ({type(value).__name__}): expected True or False")
    return bool(value)


def check_name(name: str, value: Any, none_ok: bool = False) -> str | None:
    """A non-empty string (an IP instance name); ``None`` only if ``none_ok``."""
    if value is None and none_ok:
        return None
    alternative = " or None" if none_ok else ""
    if not isinstance(value, str):
        raise TypeError(f"option {name}={value!r} ({type(value).__name__}): expected an IP instance name (a string)"
                        + alternative)
    if not value.strip():
        raise ValueError(f"option {name}={value!r}: expected a non-empty IP instance name" + alternative)
    return value


def check_path(name: str, value: Any, none_ok: bool = True) -> Any:
    if value is None and none_ok:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"option {name}={value!r} ({type(value).__name__}): expected a file path (str or Path)"
                        + (" or None" if none_ok else ""))
    if not str(os.fspath(value)).strip():
        raise ValueError(f"option {name}={value!r}: expected a file path, got an empty string")
    return value


def check_callable(name: str, value: Any, none_ok: bool = True) -> Any:
    if value is None and none_ok:
        return None
    if not callable(value):
        raise TypeError(f"option {name}={value!r} ({type(value).__name__}): expected a callable "
                        "(images (N, F) -> scores (N, C))" + (" or None" if none_ok else ""))
    return value
