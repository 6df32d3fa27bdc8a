"""The one exception type for problems a user can fix.

Every part of xlmr-ds raises `XLMRDSError` for bad input (a config key, a file, a flag value) with a
message that names the thing and says what was expected. The CLI prints it as a single line and exits
non-zero; any other exception is a bug and keeps its traceback. The range and choice checks below are the
ones every settings dataclass makes of its own values, so that the Python API and the CLI refuse alike.
"""

from __future__ import annotations


class XLMRDSError(Exception):
    """A user-fixable error; its message is one line naming the file, key or value and the fix."""


# The checks every settings dataclass makes in __post_init__, in the words every message uses (argparse's types
# in cli/arguments.py too): `name` is the flag the value comes from on the command line (or the field's name).


def below_minimum(value: float, minimum: float, strict: bool = False) -> str | None:
    """What is wrong with `value` against a lower bound ("must be at least 1", "must be 0 or more", "must be more
    than 0"), or None when nothing is. `strict`: the bound itself is refused too."""
    if strict:
        return None if value > minimum else f"must be more than {minimum:g}"
    if value >= minimum:
        return None
    return "must be 0 or more" if minimum == 0 else f"must be at least {minimum}"


def require_minimum(name: str, value: float, minimum: float, strict: bool = False) -> None:
    """Refuse a value below `minimum` as `--steps=-1 must be at least 1`."""
    problem = below_minimum(value, minimum, strict)
    if problem:
        raise XLMRDSError(f"{name}={value} {problem}")


def require_within(name: str, value: float, interval: str) -> None:
    """Refuse a value outside `interval`, written as in mathematics ("(0, 1)", "[0, 1)", "(0, 1]"), as
    `--valid-fraction=0 must be in (0, 1)`."""
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    above = value >= low if interval.startswith("[") else value > low
    below = value <= high if interval.endswith("]") else value < high
    if not (above and below):
        raise XLMRDSError(f"{name}={value} must be in {interval}")


def require_choice(name: str, value: str, allowed) -> None:
    """Refuse a value not among `allowed` (a Literal type's typing.get_args) as `--nonfinite-loss='halt' must be
    one of stop, skip`."""
    if value not in allowed:
        raise XLMRDSError(f"{name}={value!r} must be one of {', '.join(allowed)}")
