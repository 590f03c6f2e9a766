"""The answer-matching rule of the video-QA benchmark: normalised exact match.

As in ActivityNet-QA's open-ended evaluation, an answer is correct when it equals the
reference word for word; the only leeway is a normalisation applied to both sides:

1. keep only the first non-empty line (a generator that goes on after its answer is judged on the answer);
2. lowercase;
3. delete apostrophes ("don't" -> "dont") and turn other punctuation into spaces, keeping a
   decimal point between digits ("2.5" stays, "red/blue" -> "red blue");
4. drop the articles "a", "an" and "the";
5. write the number words zero to twenty as digits ("two" -> "2");
6. collapse runs of whitespace into one space.

There is no partial credit, no synonym and no plural folding: "dogs" is not "dog". An empty
prediction is never correct.
"""

from __future__ import annotations

import re
import string

_NUMBERS = {word: str(i) for i, word in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"])}
_ARTICLES = {"a", "an", "the"}
_PUNCTUATION = re.compile(r"(?<!\d)\.|\.(?!\d)|[" + re.escape(string.punctuation.replace(".", "")) + "]")


def normalize_answer(text: str) -> str:
    """``text`` in the benchmark's normal form (see the module docstring): " The Two dogs.\\n..." -> "2 dogs"."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    first = lines[0].lower() if lines else ""
    first = _PUNCTUATION.sub(" ", first.replace("'", "").replace("\u2019", ""))
    words = [_NUMBERS.get(word, word) for word in first.split() if word not in _ARTICLES]
    return " ".join(words)


def is_correct(prediction: str | None, reference: str) -> bool:
    """Whether ``prediction`` matches ``reference`` after normalisation (exact match)."""
    if prediction is None:
        return False
    normalized = normalize_answer(prediction)
    return bool(normalized) and normalized == normalize_answer(reference)
