"""Spatial relations between objects, and the parser that reads them from text.

A goal is one to a few relations joined by commas, semicolons or "and":

    "red bowl on top of blue mug, blue mug to the left of cyan mug"

Directions are the viewer's (scene.py): left = -y, right = +y, in front of = +x, behind = -x.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from consensus.tasks.robot.scene import COLOURS, KINDS, OBJECT_NAMES

#: The relation kinds, and the phrases that name each (longest phrases are matched first).
RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "on top of": ("on top of", "on"),
    "left of": ("to the left of", "left of"),
    "right of": ("to the right of", "right of"),
    "in front of": ("in front of",),
    "behind": ("behind",),
}
RELATIONS = tuple(RELATION_PHRASES)

_PHRASE_TO_KIND = sorted(((p, k) for k, ps in RELATION_PHRASES.items() for p in ps), key=lambda pk: -len(pk[0]))
_CLAUSE_SPLIT = re.compile(r"\s*+(?:,|;|\.|\band\b)\s*+")


class GoalParseError(ValueError):
    """The goal text names a relation or an object the robot task does not know."""


@dataclass(frozen=True)
class Relation:
    """``subject kind reference``, e.g. Relation("red bowl", "on top of", "blue mug")."""

    subject: str
    kind: str
    reference: str

    def __post_init__(self) -> None:
        if self.kind not in RELATIONS:
            raise GoalParseError(f"unknown relation {self.kind!r}; use one of: {', '.join(RELATIONS)}")
        if self.subject == self.reference:
            raise GoalParseError(f"a relation needs two different objects, got {self.subject!r} twice")

    def __str__(self) -> str:
        return f"{self.subject} {self.kind} {self.reference}"


@dataclass(frozen=True)
class Goal:
    """The relations that must all hold."""

    relations: tuple[Relation, ...]

    @property
    def objects(self) -> tuple[str, ...]:
        """The objects the goal names, in order of first mention."""
        return tuple(dict.fromkeys(o for r in self.relations for o in (r.subject, r.reference)))

    def __str__(self) -> str:
        return ", ".join(map(str, self.relations))


def parse_goal(text: str) -> Goal:
    """Parse goal text into a Goal; raise GoalParseError naming what is unknown and what to use."""
    clauses = [c for c in _CLAUSE_SPLIT.split(text.lower().strip()) if c]
    if not clauses:
        raise GoalParseError('the goal is empty; write relations such as "red bowl on top of blue mug"')
    return Goal(tuple(_parse_clause(c) for c in clauses))


def _parse_clause(clause: str) -> Relation:
    words = clause.split()
    for phrase, kind in _PHRASE_TO_KIND:
        p = phrase.split()
        for i in range(1, len(words) - len(p)):
            if words[i : i + len(p)] == p:
                return Relation(_parse_object(words[:i], clause), kind, _parse_object(words[i + len(p) :], clause))
    raise GoalParseError(
        f"no known relation in {clause!r}; use one of: {', '.join(RELATIONS)} "
        '(e.g. "red bowl on top of blue mug", "blue mug to the left of cyan mug")'
    )


def _parse_object(words: list[str], clause: str) -> str:
    name = " ".join(w for w in words if w not in ("the", "a", "an"))
    if name not in OBJECT_NAMES:
        raise GoalParseError(
            f"unknown object {name!r} in {clause!r}; objects are a colour ({', '.join(COLOURS)}) "
            f"and a kind ({', '.join(KINDS)}), e.g. 'red bowl'"
        )
    return name
