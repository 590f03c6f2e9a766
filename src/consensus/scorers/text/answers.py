"""Final-answer extraction from a generated solution, strict and flexible, and number matching.

- strict: only an explicit answer line counts: ``#### N`` (GSM8K) or ``The answer is N``.
- flexible: the strict answer if there is one, else the last number in the text.
Both are reported side by side: flexible extraction credits solutions that never commit to an
answer, and that inflation is worth seeing.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"-?[$£€]?\d[\d,]*+(?:\.\d+)?+"
# After '####' or 'The answer is', '- 12' (a space after the sign) is still minus twelve. Possessive
# quantifiers: a run of spaces is never split between the two \s, so the time is linear in the text.
_STRICT = re.compile(rf"(?:####|[Tt]he answer is)\s*+:?\s*+(-?\s?{_NUMBER})")
_ANY = re.compile(_NUMBER)


def normalize_number(text: str) -> str | None:
    """'1,234.50' -> '1234.5', '$12' -> '12', '7.0' -> '7'; None if it is not a (finite) number."""
    cleaned = re.sub(r"[,$£€\s]", "", text).rstrip(".")
    try:
        value = float(cleaned)
    except ValueError:
        return None
    if not math.isfinite(value):  # "nan", "inf", "1e999": no answer a problem has
        return None
    if value.is_integer():
        return str(int(value))
    return repr(round(value, 6)).rstrip("0").rstrip(".")


def extract_strict(solution: str) -> str | None:
    matches = _STRICT.findall(solution)
    return normalize_number(matches[0]) if matches else None


def extract_flexible(solution: str) -> str | None:
    strict = extract_strict(solution)
    if strict is not None:
        return strict
    numbers = _ANY.findall(solution)
    return normalize_number(numbers[-1]) if numbers else None


def extract_stated(solution: str) -> str | None:
    """The flexible answer of a solution that states one (``####`` or "answer is"); None for a partial one."""
    return extract_flexible(solution) if "####" in solution or "answer is" in solution else None


def is_correct(predicted: str | None, gold: str) -> bool:
    return predicted is not None and predicted == normalize_number(gold)
