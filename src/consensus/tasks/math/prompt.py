"""The prompt format shared by fine-tuning, few-shot prompting and the scorers.

    Question: <question>
    Answer:
    <step 1>
    <step 2>
    #### <answer>

One step per line, so step-level feedback can stop the generator at a newline, and the
final line is GSM8K's ``#### N``.
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.tasks.math.data import Problem

STOP = ("\nQuestion:", "\n\n\n")


def format_prompt(question: str, exemplars: Sequence[Problem] = ()) -> str:
    """The prompt up to and including the newline after ``Answer:``; exemplars need gold solutions."""
    shots = []
    for ex in exemplars:
        if ex.solution is None:
            raise ValueError(f"exemplar {ex.id} has no worked solution; few-shot exemplars need one")
        shots.append(f"Question: {ex.question}\nAnswer:\n{ex.solution.strip()}\n\n")
    return "".join(shots) + f"Question: {question}\nAnswer:\n"


def is_complete(partial: str) -> bool:
    """A partial solution is complete once its last line is the ``#### N`` answer line."""
    lines = partial.rstrip("\n").split("\n")
    return lines[-1].lstrip().startswith("####")
