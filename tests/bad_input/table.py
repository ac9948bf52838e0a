"""The vocabulary of the bad-input tables: an expectation per case and `classify`, which sorts an outcome into the
issue's categories (correct, clear error, false certificate, silent wrong/NaN, raw traceback, unexpected error).

Run a table as a module to print each case's category and the counts (before/after comparisons):
``cd tests && python -m bad_input.test_contract``."""

import dataclasses
import re

from dynamics.errors import DynamicsError, NonSeparableError


@dataclasses.dataclass(frozen=True)
class Raises:
    types: object  # an exception class of dynamics.errors, or a tuple of them
    phrase: str  # a case-insensitive literal or regular expression that the message must contain


@dataclasses.dataclass(frozen=True)
class Value:
    check: object  # value -> bool, against an independent computation


def mentions(message, phrase):
    if phrase.lower() in message.lower():
        return True
    try:
        return re.search(phrase, message, re.I) is not None
    except re.error:
        return False


def classify(call, expect, judge=None):
    """(category, detail) of ``call()`` against ``expect``; ``judge(expect, value_or_error)`` handles a table's own
    expectation types (returning (category, detail)) and is consulted only for them."""
    try:
        value = call()
    except DynamicsError as e:
        message = str(e)
        if "Above is the stack" in message or "Traceback" in message:
            return "raw traceback", message[:300]
        if isinstance(expect, Raises) and isinstance(e, expect.types) and mentions(message, expect.phrase):
            return "clear error", ""
        if judge is not None and not isinstance(expect, (Raises, Value)):
            return judge(expect, e)
        return ("false certificate" if isinstance(e, NonSeparableError) else "unexpected error"), repr(e)[:300]
    except Exception as e:  # noqa: BLE001 -- a raw JAX/diffrax/NumPy/SciPy error is the failure being classified
        return "raw traceback", f"{type(e).__name__}: {str(e)[:300]}"
    if isinstance(expect, Value):
        try:
            good = bool(expect.check(value))
        except Exception as e:  # noqa: BLE001
            return "silent wrong/NaN", f"check failed: {e!r}"[:300]
        return ("correct", "") if good else ("silent wrong/NaN", repr(value)[:300])
    if judge is not None and not isinstance(expect, Raises):
        return judge(expect, value)
    return "silent wrong/NaN", f"returned {value!r}"[:300]
