"""Whether relations hold, read from the simulator's state. Used for the success metric only:
the planner never sees it.

- ``A on top of B``: A touches B, A's base is at least at B's mid-height, and A's axis is within
  STACK_RADIUS of B's (A rests on B rather than leaning against its side).
- ``A left of B`` (and right of, in front of, behind): A's centre is more than DIRECTION_MARGIN
  beyond B's along that direction (scene.py's viewer frame), and neither rests on the other.
"""

from __future__ import annotations

import numpy as np

from consensus.tasks.robot.relations import Goal, Relation
from consensus.tasks.robot.scene import TabletopScene

DIRECTION_MARGIN = 0.04
STACK_RADIUS = 0.05
#: World unit vectors of the directional relations, in the viewer's frame (scene.py).
DIRECTIONS: dict[str, tuple[float, float, float]] = {
    "left of": (0.0, -1.0, 0.0),
    "right of": (0.0, 1.0, 0.0),
    "in front of": (1.0, 0.0, 0.0),
    "behind": (-1.0, 0.0, 0.0),
}


def relation_holds(scene: TabletopScene, relation: Relation) -> bool:
    for name in (relation.subject, relation.reference):
        if name not in scene.bodies:
            raise ValueError(f"object {name!r} is not in the scene; the scene holds {', '.join(scene.object_names)}")
    if relation.kind == "on top of":
        return _on_top(scene, relation.subject, relation.reference)
    a, b = scene.position(relation.subject), scene.position(relation.reference)
    ahead = float(np.dot(a - b, DIRECTIONS[relation.kind]))
    stacked = _on_top(scene, relation.subject, relation.reference) or _on_top(
        scene, relation.reference, relation.subject
    )
    return ahead > DIRECTION_MARGIN and not stacked


def goal_satisfied(scene: TabletopScene, goal: Goal) -> bool:
    return all(relation_holds(scene, r) for r in goal.relations)


def _on_top(scene: TabletopScene, upper: str, lower: str) -> bool:
    a, b = scene.position(upper), scene.position(lower)
    b_lo, b_hi = scene.bounds(lower)
    above = a[2] >= (b_lo[2] + b_hi[2]) / 2
    aligned = float(np.hypot(*(a[:2] - b[:2]))) <= STACK_RADIUS
    return bool(above and aligned and scene.touching(upper, lower))
