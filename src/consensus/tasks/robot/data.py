"""Seeded tasks: a random scene and a goal of one to three relations that is feasible and unmet.

Feasible by construction: a second random layout of the same objects (with one object stacked on
another half of the time) is drawn as a hidden target, and the goal's relations are picked among
those that hold clearly in that target but do not hold in the starting scene. The relation kind
is drawn first, uniformly among the kinds the target offers, so the one possible "on top of" is
not drowned by the many directional pairs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from consensus.tasks.robot.ground_truth import DIRECTION_MARGIN, DIRECTIONS, relation_holds
from consensus.tasks.robot.relations import RELATIONS, Goal, Relation
from consensus.tasks.robot.scene import SceneSpec, TabletopScene, random_layout, random_scene_spec

#: A target relation counts only if it holds by this much more than the ground-truth margin.
CLEARANCE = 0.04


@dataclass(frozen=True)
class Task:
    seed: int
    spec: SceneSpec
    goal: Goal

    @property
    def difficulty(self) -> int:
        return len(self.goal.relations)


def sample_task(seed: int, n_relations: int, n_objects: int = 4) -> Task:
    """The task of ``seed``: same seed, same scene and goal."""
    if not 1 <= n_relations <= n_objects - 1:
        raise ValueError(f"n_relations must be between 1 and {n_objects - 1}, got {n_relations}")
    rng = random.Random(seed)
    spec = random_scene_spec(rng, n_objects)
    with TabletopScene(spec, cameras=()) as scene:
        for _ in range(100):
            relations = _pick_relations(rng, _target_relations(rng, spec), n_relations, scene)
            if relations:
                return Task(seed, spec, Goal(tuple(relations)))
    raise RuntimeError(f"no feasible goal of {n_relations} relations found for seed {seed}; try another seed")


def _target_relations(rng: random.Random, spec: SceneSpec) -> dict[str, list[Relation]]:
    """Relations that hold clearly in a random target layout, grouped by kind."""
    names = spec.objects
    xy = {n: np.array([p.x, p.y, 0.0]) for n, p in zip(names, random_layout(rng, len(names)))}
    stack = tuple(rng.sample(names, 2)) if rng.random() < 0.5 else None
    if stack:
        xy[stack[0]] = xy[stack[1]]
    by_kind: dict[str, list[Relation]] = {k: [] for k in RELATIONS}
    if stack:
        by_kind["on top of"].append(Relation(stack[0], "on top of", stack[1]))
    for a in names:
        for b in names:
            if a == b or (stack and {a, b} == set(stack)):
                continue
            for kind, direction in DIRECTIONS.items():
                if np.dot(xy[a] - xy[b], direction) > DIRECTION_MARGIN + CLEARANCE:
                    by_kind[kind].append(Relation(a, kind, b))
    return by_kind


def _pick_relations(rng, by_kind, n, scene) -> list[Relation] | None:
    """``n`` relations on distinct object pairs, none of which holds in ``scene`` yet."""
    chosen: list[Relation] = []
    for _ in range(50):
        kind = rng.choice([k for k in RELATIONS if by_kind[k]])
        relation = rng.choice(by_kind[kind])
        pair = {relation.subject, relation.reference}
        if any(pair == {r.subject, r.reference} for r in chosen) or relation_holds(scene, relation):
            continue
        chosen.append(relation)
        if len(chosen) == n:
            return chosen
    return None
