"""Parameter checks with messages that name the parameter, the value and what is allowed.

Papermill passes ``-p flag false`` as the *string* ``'false'``; these checks refuse such
values instead of silently treating a non-empty string as true.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


class ParameterError(ValueError):
    """A parameter has a value outside what the function accepts."""


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def check_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    hint = ""
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        hint = f"; with papermill write -p {name} {value.capitalize()} (capitalised)"
    raise ParameterError(f"parameter '{name}' must be True or False, got {_show(value)}{hint}")


def check_int(name: str, value: Any, *, min: int | None = None, max: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
        hasattr(value, "__index__") and not isinstance(value, float)
    ):
        raise ParameterError(f"parameter '{name}' must be an integer, got {_show(value)}")
    value = int(value)
    if min is not None and value < min:
        raise ParameterError(f"parameter '{name}' must be >= {min}, got {value}")
    if max is not None and value > max:
        raise ParameterError(f"parameter '{name}' must be <= {max}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ParameterError(f"parameter '{name}' must be a number, got {_show(value)}")
    if isinstance(value, str):
        raise ParameterError(f"parameter '{name}' must be a number, got {_show(value)}")
    v = float(value)
    if not math.isfinite(v):
        raise ParameterError(f"parameter '{name}' must be finite, got {v}")
    lo_ok = min is None or (v >= min if min_inclusive else v > min)
    hi_ok = max is None or (v <= max if max_inclusive else v < max)
    if not (lo_ok and hi_ok):
        lo = "(-inf" if min is None else ("[" if min_inclusive else "(") + f"{min}"
        hi = "inf)" if max is None else f"{max}" + ("]" if max_inclusive else ")")
        raise ParameterError(f"parameter '{name}' must lie in {lo}, {hi}, got {v}")
    return v


def check_alpha(value: Any, name: str = "alpha") -> float:
    """A corruption ratio: a fraction of the training set, in [0, 1)."""
    return check_float(name, value, min=0.0, max=1.0, max_inclusive=False)


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    allowed = tuple(allowed)
    if value not in allowed:
        raise ParameterError(
            f"parameter '{name}' must be one of {', '.join(map(repr, allowed))}; got {_show(value)}"
        )
    return value


def check_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ParameterError(f"parameter '{name}' must be a string, got {_show(value)}")
    return value


def check_sequence(
    name: str, value: Any, item_check, *, min_len: int = 1
) -> tuple:
    """A list/tuple whose items each pass ``item_check(f"{name}[i]", item)``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ParameterError(f"parameter '{name}' must be a list, got {_show(value)}")
    if len(value) < min_len:
        raise ParameterError(f"parameter '{name}' must have at least {min_len} item(s), got {len(value)}")
    return tuple(item_check(f"{name}[{i}]", v) for i, v in enumerate(value))


def check_unique_choices(name: str, value, allowed) -> tuple:
    """A list of entries of ``allowed``, none twice (a chapter's datasets, models, methods)."""
    v = check_sequence(name, value, lambda n, x: check_choice(n, x, allowed))
    if len(set(v)) != len(v):
        raise ParameterError(f"parameter '{name}' lists an entry twice: {list(v)}")
    return v
