"""Train the robot task's segmenter (consensus.zoo.segmenter.TinyUNet) on rendered views.

The data are the scorers' own camera views of random tabletop scenes, before and after random
pick-and-place actions (half of them onto another object, so stacks and occlusions are seen).
Labels are pybullet's segmentation masks mapped to object classes; at inference the scorers see
RGB only. Scene seeds are 100000+ for training and 200000+ for validation, disjoint from the
benchmark's (0-999) and from the seeds used for tuning (1000+). Seeded: scenes, initialisation
and batch order are fixed, and one CPU thread keeps the arithmetic in a fixed order.

    python scripts/train_robot_segmenter.py --out src/consensus/zoo/weights/robot-segmenter
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch

from consensus.tasks.robot.scene import (
    CLASS_NAMES,
    OBJECT_NAMES,
    WORKSPACE,
    PickPlace,
    TabletopScene,
    random_scene_spec,
)
from consensus.zoo.segmenter import TinyUNet, to_input

TRAIN_SEED, VAL_SEED = 100_000, 200_000


def render_views(first_seed: int, n_scenes: int, actions_per_scene: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, H, W, 3]`` and class labels ``[N, H, W]`` from every camera, every state."""
    images, labels = [], []
    for seed in range(first_seed, first_seed + n_scenes):
        rng = random.Random(seed)
        with TabletopScene(random_scene_spec(rng, rng.randint(3, 5))) as scene:
            for step in range(actions_per_scene + 1):
                if step:
                    scene.execute(_random_action(rng, scene))
                for rgb, classes in scene.render_with_labels().values():
                    images.append(rgb)
                    labels.append(classes)
    return np.stack(images), np.stack(labels).astype(np.int64)


def _random_action(rng: random.Random, scene: TabletopScene) -> PickPlace:
    obj = rng.choice(scene.object_names)
    if rng.random() < 0.5:  # onto (or next to) another object
        x, y, _ = scene.position(rng.choice([o for o in scene.object_names if o != obj]))
        return PickPlace(obj, x + rng.gauss(0, 0.02), y + rng.gauss(0, 0.02))
    (x0, x1), (y0, y1) = WORKSPACE
    return PickPlace(obj, rng.uniform(x0, x1), rng.uniform(y0, y1))


def class_weights(labels: np.ndarray) -> torch.Tensor:
    """Inverse square-root frequency: small objects matter as much as the table they stand on."""
    counts = np.bincount(labels.ravel(), minlength=len(CLASS_NAMES)).astype(np.float64) + 1.0
    w = 1.0 / np.sqrt(counts / counts.sum())
    return torch.tensor(w / w.mean(), dtype=torch.float32)


@torch.no_grad()
def mean_iou(model: TinyUNet, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Intersection over union per object class present in the validation views."""
    pred = np.concatenate([model(to_input(images[i : i + 256])).argmax(1).numpy() for i in range(0, len(images), 256)])
    ious = {}
    for cls, name in enumerate(CLASS_NAMES[1:], start=1):
        union = np.logical_or(pred == cls, labels == cls).sum()
        if union:
            ious[name] = float(np.logical_and(pred == cls, labels == cls).sum() / union)
    return ious


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="src/consensus/zoo/weights/robot-segmenter")
    ap.add_argument("--train-scenes", type=int, default=250)
    ap.add_argument("--val-scenes", type=int, default=30)
    ap.add_argument("--actions-per-scene", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the machines this runs on are small and shared
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train_x, train_y = render_views(TRAIN_SEED, args.train_scenes, args.actions_per_scene)
    val_x, val_y = render_views(VAL_SEED, args.val_scenes, args.actions_per_scene)
    print(
        f"rendered {len(train_x)} train and {len(val_x)} validation views in {time.perf_counter() - start:.0f} s",
        flush=True,
    )

    model = TinyUNet(len(CLASS_NAMES), args.width)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(train_y))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * (len(train_x) // args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    order_rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        model.train()
        order, total = order_rng.permutation(len(train_x)), 0.0
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            idx = order[i : i + args.batch_size]
            loss = loss_fn(model(to_input(train_x[idx])), torch.from_numpy(train_y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        model.eval()
        ious = mean_iou(model, val_x, val_y)
        print(
            f"epoch {epoch + 1}: loss {total / len(train_x):.3f}, val mIoU {np.mean(list(ious.values())):.3f}, "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"state_dict": model.state_dict(), "class_names": list(CLASS_NAMES), "width": args.width}, out / "segmenter.pt"
    )
    metrics = {
        "val_miou": float(np.mean(list(ious.values()))),
        "val_iou_per_class": ious,
        "train_views": len(train_x),
        "val_views": len(val_x),
        "seconds": time.perf_counter() - start,
        "args": vars(args),
        "objects": list(OBJECT_NAMES),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
