"""The tabletop world in pybullet: a table, a KUKA iiwa arm with a suction tool, coloured bowls and
mugs, and fixed cameras.

Frame conventions, shared by the relations, the ground truth and the scorers: metres, world frame;
the robot stands at x = 0 and reaches towards +x; the viewer stands across the table at +x, looking
back at the robot (the ``front`` camera). Seen from the viewer, left = -y, right = +y,
in front of = +x (nearer the viewer), behind = -x (nearer the robot).

Everything runs in pybullet's DIRECT mode with the TinyRenderer, so no display or GPU is needed.
"""

from __future__ import annotations

import math
import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np



def _import_pybullet():
    """Import pybullet without the build-time line it prints from C, to file descriptor 2, on import."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import pybullet
            import pybullet_data
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError("the robot task needs pybullet: pip install 'consensus[robot]' (pybullet==3.2.7)") from err
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return pybullet, pybullet_data


pb, pybullet_data = _import_pybullet()

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.12),
    "green": (0.15, 0.70, 0.20),
    "blue": (0.12, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "cyan": (0.10, 0.85, 0.90),
}
KINDS = ("bowl", "mug")
#: Every object the world can hold; segmentation class i + 1 is OBJECT_NAMES[i] (0 is background).
OBJECT_NAMES: tuple[str, ...] = tuple(f"{colour} {kind}" for kind in KINDS for colour in COLOURS)
#: The segmentation classes of the scene: the background, then every object.
CLASS_NAMES: tuple[str, ...] = ("background", *OBJECT_NAMES)

TABLE_TOP = 0.626  # height of table/table.urdf's top surface when loaded at z = 0
#: Where objects are placed and where the planner may put them: x and y ranges on the table.
WORKSPACE = ((0.35, 0.75), (-0.25, 0.25))
MIN_SEPARATION = 0.13  # between object centres in a fresh scene, so no two start touching
CARRY_HEIGHT = 0.35  # above the table, clear of any stack, while an object is carried
SETTLE_STEPS = 120  # 0.5 s of physics at 240 Hz after a release
MUG_SCALE = 0.7  # pybullet_data's mug is 10.6 cm tall; 0.7 makes it a bowl's companion

ARM_HOME = (0.0, -0.5, 0.0, 1.6, 0.0, -0.4, 0.0)  # folded back over the base, out of the workspace
EE_LINK = 6
TOOL_LENGTH = 0.06  # suction tool: from the flange to the tip
DOWN = pb.getQuaternionFromEuler((0.0, math.pi, 0.0))  # tool pointing at the table
REACH_TOLERANCE = 0.02  # an IK solution farther than this from its target means out of reach


@dataclass(frozen=True)
class Camera:
    """A fixed pinhole camera looking at ``target`` from ``eye``; images are ``size`` x ``size``."""

    name: str
    eye: tuple[float, float, float]
    target: tuple[float, float, float] = (0.55, 0.0, TABLE_TOP)
    fov: float = 50.0
    size: int = 64

    @cached_property
    def view_matrix(self) -> tuple[float, ...]:
        return pb.computeViewMatrix(self.eye, self.target, (0.0, 0.0, 1.0))

    @cached_property
    def projection_matrix(self) -> tuple[float, ...]:
        return pb.computeProjectionMatrixFOV(self.fov, 1.0, 0.05, 4.0)

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points ``[..., 3]`` to pixel coordinates ``[..., 2]`` as (column, row), row 0 at the top."""
        # pybullet's matrices are OpenGL column-major: reshape then transpose.
        view = np.asarray(self.view_matrix).reshape(4, 4).T
        proj = np.asarray(self.projection_matrix).reshape(4, 4).T
        pts = np.asarray(points, dtype=np.float64)
        homogeneous = np.concatenate([pts, np.ones(pts.shape[:-1] + (1,))], axis=-1)
        clip = homogeneous @ (proj @ view).T
        ndc = clip[..., :2] / clip[..., 3:4]
        return np.stack([(ndc[..., 0] + 1) / 2 * self.size, (1 - ndc[..., 1]) / 2 * self.size], axis=-1)

    def resized(self, size: int) -> Camera:
        return replace(self, size=size)


def _eye(azimuth_deg: float, elevation_deg: float = 45.0, distance: float = 0.85) -> tuple[float, float, float]:
    """A camera position on a sphere around the workspace centre; azimuth 0 is the viewer's side (+x)."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    return (
        0.55 + distance * math.cos(e) * math.cos(a),
        distance * math.cos(e) * math.sin(a),
        TABLE_TOP + distance * math.sin(e),
    )


#: Three oblique views, as a tabletop rig would mount them: the viewer's side and both flanks.
DEFAULT_CAMERAS: tuple[Camera, ...] = (
    Camera("front", _eye(0.0)),
    Camera("left", _eye(-90.0)),
    Camera("right", _eye(90.0)),
)


@dataclass(frozen=True)
class ObjectPose:
    """Where an object starts: its table position and its yaw (a mug's handle direction)."""

    x: float
    y: float
    yaw: float = 0.0


@dataclass(frozen=True)
class SceneSpec:
    """What a scene holds: object names (from OBJECT_NAMES) and their starting poses, one each."""

    objects: tuple[str, ...]
    poses: tuple[ObjectPose, ...]

    def __post_init__(self) -> None:
        unknown = [o for o in self.objects if o not in OBJECT_NAMES]
        if unknown:
            raise ValueError(f"unknown objects {unknown}; known objects are {', '.join(OBJECT_NAMES)}")
        if len(set(self.objects)) != len(self.objects) or len(self.poses) != len(self.objects):
            raise ValueError("a SceneSpec needs distinct objects and one pose per object")


#: The most objects the workspace holds MIN_SEPARATION apart reliably (7 fail 1 layout in 40, 8 most of them).
MAX_OBJECTS = 6


def random_scene_spec(rng: random.Random, n_objects: int = 4, required: Sequence[str] = ()) -> SceneSpec:
    """Draw ``n_objects`` distinct objects (always including ``required``) at random, separated poses."""
    extra = [o for o in OBJECT_NAMES if o not in required]
    objects = list(dict.fromkeys(required)) + rng.sample(extra, max(0, n_objects - len(set(required))))
    return SceneSpec(tuple(objects), tuple(random_layout(rng, len(objects))))


def random_layout(rng: random.Random, n: int) -> list[ObjectPose]:
    """``n`` poses inside the workspace with centres at least MIN_SEPARATION apart (rejection sampling)."""
    (x0, x1), (y0, y1) = WORKSPACE
    for _ in range(1000):
        poses = [ObjectPose(rng.uniform(x0, x1), rng.uniform(y0, y1), rng.uniform(-math.pi, math.pi)) for _ in range(n)]
        if all(math.dist((a.x, a.y), (b.x, b.y)) >= MIN_SEPARATION for i, a in enumerate(poses) for b in poses[:i]):
            return poses
    raise ValueError(f"could not place {n} objects {MIN_SEPARATION} m apart in the workspace; use at most "
                     f"{MAX_OBJECTS} objects")


@dataclass(frozen=True)
class PickPlace:
    """One action: suction-pick ``obj`` from the top and release it above table point (x, y).

    The pick primitive finds the named object itself (a scripted grasp, as in the paper's and
    Ravens' primitives); what the planner chooses is which object and where it goes. The object
    lands on whatever is under (x, y): the table, or another object.
    """

    obj: str
    x: float
    y: float


def _bowl_mesh(r_top=0.055, r_bottom=0.032, height=0.042, wall=0.006, segments=20):
    """An open bowl as a triangle mesh (outer wall, rim, inner wall, both bottoms), origin at its base."""
    rings = [(r_bottom, 0.0), (r_top, height), (r_top - wall, height), (r_bottom - wall, wall)]
    vertices = [(0.0, 0.0, 0.0), (0.0, 0.0, wall)]
    for r, z in rings:
        vertices += [
            (r * math.cos(2 * math.pi * k / segments), r * math.sin(2 * math.pi * k / segments), z)
            for k in range(segments)
        ]
    ring = lambda i, k: 2 + i * segments + k % segments
    indices = []
    for k in range(segments):
        indices += [0, ring(0, k + 1), ring(0, k)]  # outer bottom, facing down
        indices += [1, ring(3, k), ring(3, k + 1)]  # inner bottom, facing up
        for i in range(3):  # outer wall, rim, inner wall as quads
            a, b, c, d = ring(i, k), ring(i, k + 1), ring(i + 1, k + 1), ring(i + 1, k)
            indices += [a, b, c, a, c, d]
    return vertices, indices


class TabletopScene:
    """A live pybullet world built from a SceneSpec; close it (or use ``with``) to free the client.

    The scene is also the world model of the planner (see ``world_model.py``): ``save`` and
    ``restore`` snapshot the full physics state, so an action can be tried and undone.
    """

    def __init__(self, spec: SceneSpec, cameras: Sequence[Camera] = DEFAULT_CAMERAS):
        self.spec = spec
        self.cameras = {c.name: c for c in cameras}
        self.client = pb.connect(pb.DIRECT)
        self._pb_kwargs = {"physicsClientId": self.client}
        pb.setAdditionalSearchPath(pybullet_data.getDataPath(), **self._pb_kwargs)
        pb.setGravity(0, 0, -9.8, **self._pb_kwargs)
        self._load(pb.loadURDF, "plane.urdf")
        self.table = self._load(pb.loadURDF, "table/table.urdf", (0.5, 0.0, 0.0), useFixedBase=True)
        self.arm = self._load(pb.loadURDF, "kuka_iiwa/model.urdf", (0.0, 0.0, TABLE_TOP), useFixedBase=True)
        self.tool = self._make_tool()
        self._set_arm(ARM_HOME)
        self.bodies: dict[str, int] = {}
        for name, pose in zip(spec.objects, spec.poses):
            self.bodies[name] = self._make_object(name, pose)
        self._class_of_body = {body: OBJECT_NAMES.index(name) + 1 for name, body in self.bodies.items()}
        self.settle()

    # -- construction ---------------------------------------------------------------------------
    def _load(self, fn, *args, **kwargs):
        return fn(*args, **kwargs, **self._pb_kwargs)

    def _make_tool(self) -> int:
        """A visual-only suction cup that follows the flange; it never collides."""
        shape = pb.createVisualShape(
            pb.GEOM_CYLINDER, radius=0.015, length=TOOL_LENGTH, rgbaColor=(0.3, 0.3, 0.3, 1), **self._pb_kwargs
        )
        return pb.createMultiBody(0, -1, shape, **self._pb_kwargs)

    def _make_object(self, name: str, pose: ObjectPose) -> int:
        colour, kind = name.split()
        orientation = pb.getQuaternionFromEuler((0, 0, pose.yaw))
        if kind == "mug":
            body = self._load(
                pb.loadURDF,
                "objects/mug.urdf",
                (pose.x, pose.y, TABLE_TOP + 0.002),
                orientation,
                globalScaling=MUG_SCALE,
            )
            pb.changeDynamics(body, -1, mass=0.15, **self._pb_kwargs)
        else:
            vertices, indices = _bowl_mesh()
            visual = pb.createVisualShape(pb.GEOM_MESH, vertices=vertices, indices=indices, **self._pb_kwargs)
            # Collision uses the mesh's convex hull: a bowl stacks like a solid frustum.
            collision = pb.createCollisionShape(pb.GEOM_MESH, vertices=vertices, **self._pb_kwargs)
            body = pb.createMultiBody(
                0.1, collision, visual, (pose.x, pose.y, TABLE_TOP + 0.002), orientation, **self._pb_kwargs
            )
            pb.changeDynamics(body, -1, lateralFriction=1.0, **self._pb_kwargs)
        pb.changeVisualShape(body, -1, rgbaColor=(*COLOURS[colour], 1.0), **self._pb_kwargs)
        return body

    # -- state ----------------------------------------------------------------------------------
    @property
    def object_names(self) -> tuple[str, ...]:
        return self.spec.objects

    def position(self, name: str) -> np.ndarray:
        """The object's base position (its axis at its bottom), in metres."""
        return np.asarray(pb.getBasePositionAndOrientation(self.bodies[name], **self._pb_kwargs)[0])

    def bounds(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The object's axis-aligned bounding box, (min corner, max corner)."""
        lo, hi = pb.getAABB(self.bodies[name], **self._pb_kwargs)
        return np.asarray(lo), np.asarray(hi)

    def touching(self, a: str, b: str) -> bool:
        return bool(pb.getContactPoints(self.bodies[a], self.bodies[b], **self._pb_kwargs))

    def save(self) -> int:
        return pb.saveState(**self._pb_kwargs)

    def restore(self, state: int) -> None:
        pb.restoreState(state, **self._pb_kwargs)

    def forget(self, state: int) -> None:
        pb.removeState(state, **self._pb_kwargs)

    def settle(self, steps: int = SETTLE_STEPS) -> None:
        for _ in range(steps):
            pb.stepSimulation(**self._pb_kwargs)

    # -- sensing --------------------------------------------------------------------------------
    def render(self, cameras: Sequence[str] | None = None, size: int | None = None) -> dict[str, np.ndarray]:
        """RGB images ``[H, W, 3]`` uint8 from the named cameras (default: all)."""
        return {name: self._shoot(name, size, labels=False)[0] for name in (cameras or self.cameras)}

    def render_with_labels(self, cameras: Sequence[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """RGB images and the simulator's own segmentation as class ids (0 = background).

        Only for training the segmenter: the scorers segment RGB with a learned model.
        """
        return {name: self._shoot(name, None, labels=True) for name in (cameras or self.cameras)}

    def _shoot(self, name: str, size: int | None, labels: bool):
        cam = self.cameras[name] if size is None else self.cameras[name].resized(size)
        flags = 0 if labels else pb.ER_NO_SEGMENTATION_MASK
        _, _, rgba, _, seg = pb.getCameraImage(
            cam.size,
            cam.size,
            cam.view_matrix,
            cam.projection_matrix,
            renderer=pb.ER_TINY_RENDERER,
            flags=flags,
            lightDirection=(0.4, 0.2, 1.0),
            shadow=0,
            **self._pb_kwargs,
        )
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(cam.size, cam.size, 4)[:, :, :3].copy()
        if not labels:
            return rgb, None
        seg = np.asarray(seg).reshape(cam.size, cam.size)
        classes = np.zeros_like(seg)
        for body, cls in self._class_of_body.items():
            classes[seg == body] = cls
        return rgb, classes

    # -- acting ---------------------------------------------------------------------------------
    def execute(self, action: PickPlace, on_frame: Callable[[], None] | None = None) -> bool:
        """Carry out a pick-and-place; return False (and change nothing) if the arm cannot reach.

        The arm moves kinematically through IK waypoints (joint targets are set, not tracked by
        motors), the held object rides on the suction tip, and after the release physics runs
        for SETTLE_STEPS so the object lands, stacks or topples by itself. ``on_frame`` is called
        at every waypoint, for animations.
        """
        if action.obj not in self.bodies:
            raise ValueError(
                f"object {action.obj!r} is not in the scene; the scene holds {', '.join(self.object_names)}"
            )
        body = self.bodies[action.obj]
        start, orientation = pb.getBasePositionAndOrientation(body, **self._pb_kwargs)
        top = self.bounds(action.obj)[1][2]
        grip = top - start[2]  # from the object's base up to where the suction tip touches it
        pick_tip = (start[0], start[1], top)
        surface = self._surface_height(action.x, action.y, ignore=body)
        place_tip = (action.x, action.y, surface + 0.003 + grip)
        joints_pick, joints_place = self._reach(pick_tip), self._reach(place_tip)
        if joints_pick is None or joints_place is None:
            return False
        if on_frame:  # animate the motion; the outcome is the same without it
            carry = TABLE_TOP + CARRY_HEIGHT
            for x, y, z, holding in [
                (pick_tip[0], pick_tip[1], carry, False),
                (*pick_tip, False),
                (pick_tip[0], pick_tip[1], carry, True),
                (place_tip[0], place_tip[1], carry, True),
            ]:
                self._set_arm(self._reach((x, y, z)) or joints_pick)
                if holding:
                    pb.resetBasePositionAndOrientation(body, (x, y, z - grip), orientation, **self._pb_kwargs)
                on_frame()
            self._set_arm(joints_place)
        pb.resetBasePositionAndOrientation(
            body, (place_tip[0], place_tip[1], place_tip[2] - grip), orientation, **self._pb_kwargs
        )
        if on_frame:
            on_frame()
        pb.resetBaseVelocity(body, (0, 0, 0), (0, 0, 0), **self._pb_kwargs)
        self._set_arm(ARM_HOME)
        self.settle()
        if on_frame:
            on_frame()
        return True

    def _surface_height(self, x: float, y: float, ignore: int) -> float:
        """Height of the highest surface under (x, y), looking through the object being carried."""
        top = (x, y, TABLE_TOP + CARRY_HEIGHT)
        bottom = (x, y, TABLE_TOP - 0.1)
        saved = pb.getBasePositionAndOrientation(ignore, **self._pb_kwargs)
        pb.resetBasePositionAndOrientation(ignore, (0, 0, -5), saved[1], **self._pb_kwargs)  # out of the ray's way
        hit = pb.rayTest(top, bottom, **self._pb_kwargs)[0]
        pb.resetBasePositionAndOrientation(ignore, *saved, **self._pb_kwargs)
        return hit[3][2] if hit[0] >= 0 else TABLE_TOP

    def _reach(self, tip: Sequence[float]) -> tuple[float, ...] | None:
        """Joint angles that put the suction tip at ``tip`` pointing down, or None if out of reach."""
        flange = (tip[0], tip[1], tip[2] + TOOL_LENGTH)
        self._set_arm(ARM_HOME)  # a fixed IK seed keeps the solution deterministic
        joints = pb.calculateInverseKinematics(
            self.arm, EE_LINK, flange, DOWN, maxNumIterations=100, residualThreshold=1e-4, **self._pb_kwargs
        )
        self._set_arm(joints)
        reached = pb.getLinkState(self.arm, EE_LINK, computeForwardKinematics=True, **self._pb_kwargs)[4]
        self._set_arm(ARM_HOME)
        return tuple(joints) if math.dist(reached, flange) <= REACH_TOLERANCE else None

    def _set_arm(self, joints: Sequence[float]) -> None:
        for j, q in enumerate(joints):
            pb.resetJointState(self.arm, j, q, **self._pb_kwargs)
        flange = pb.getLinkState(self.arm, EE_LINK, computeForwardKinematics=True, **self._pb_kwargs)
        # The tool hangs from the flange along the flange's z axis.
        rot = np.asarray(pb.getMatrixFromQuaternion(flange[5])).reshape(3, 3)
        centre = np.asarray(flange[4]) + rot[:, 2] * (TOOL_LENGTH / 2)
        pb.resetBasePositionAndOrientation(self.tool, centre.tolist(), flange[5], **self._pb_kwargs)

    def close(self) -> None:
        if self.client >= 0:
            pb.disconnect(self.client)
            self.client = -1

    def __enter__(self) -> TabletopScene:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
