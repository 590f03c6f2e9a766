"""Train the Fashion-MNIST classifiers of the embedded default: three guidance scorers and two evaluation-only models.

Data (fixed thirds A, B, C of the 60k training images, see consensus.tasks.image.data):

    cnn              SmallCNN    on A       guidance scorer
    mlp              MLP         on B       guidance scorer
    resnet           TinyResNet  on A+B     guidance scorer
    eval-classifier  VGGNet      on C       evaluation only: held-out accuracy and Inception-style score
    eval-features    VGGNet      on C       evaluation only: the feature space of FID/KID (another seed, 64-d)

The scorers are trained with Gaussian pixel noise half of the time, because guidance shows them the
predicted clean image of a noisy sample, which is blurred and noisy early on. The evaluation models
see clean images only. Seeded; 29 minutes in all on one thread of a busy 2-core machine. Each model's folder gets a
MODEL_CARD.md with its test accuracy.

    python scripts/train_fashion_classifiers.py [--only cnn mlp ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from consensus.tasks.image.data import load_fashion_mnist
from consensus.zoo.fashion import MLP, SmallCNN, TinyResNet, VGGNet, save_classifier

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "src/consensus/zoo/weights"

# name: (architecture, constructor kwargs, training part, noise augmentation, epochs, seed, role)
PLAN = {
    "cnn": (SmallCNN, {}, "A", True, 4, 1, "guidance scorer"),
    "mlp": (MLP, {}, "B", True, 6, 2, "guidance scorer"),
    "resnet": (TinyResNet, {"width": 16}, "AB", True, 2, 3, "guidance scorer"),
    "eval-classifier": (VGGNet, {"embedding": 128}, "C", False, 3, 4, "evaluation only (held-out classifier)"),
    "eval-features": (VGGNet, {"embedding": 64}, "C", False, 3, 5, "evaluation only (FID/KID feature network)"),
}


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int, noise: bool, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (len(labels) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for i in range(len(labels) // 128):
            index = order[i * 128 : (i + 1) * 128]
            x, y = images[index], labels[index]
            if noise:
                sigma = torch.rand(len(x), 1, 1, 1, generator=generator) * 0.3
                keep = torch.rand(len(x), 1, 1, 1, generator=generator) < 0.5
                x = x + torch.where(keep, 0.0, sigma) * torch.randn(x.shape, generator=generator)
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"  epoch {epoch}: loss {loss.item():.3f}", flush=True)
    model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return sum(
        (model(images[i : i + 1000]).argmax(1) == labels[i : i + 1000]).sum().item()
        for i in range(0, len(labels), 1000)
    ) / len(labels)


CARD = """# fashion-{name}

- **Role**: {role}.
- **Architecture**: `{arch}` from `consensus.zoo.fashion` ({params:,} parameters), input `[N, 1, 28, 28]` in [0, 1].
- **Training data**: Fashion-MNIST training split, part(s) {part} ({n:,} images) of the fixed thirds A/B/C
  defined in `consensus.tasks.image.data` (Debian package `dataset-fashion-mnist`).
  {separation}
- **Training**: `scripts/train_fashion_classifiers.py --only {name}`, seed {seed}, {epochs} epochs, AdamW, batch 128,
  one-cycle learning rate 2e-3{noise_text}; {seconds:.0f} s on one CPU thread.
- **Test accuracy** (10,000 Fashion-MNIST test images): {acc:.2%} (float32, before storage).
- **Storage**: float16 safetensors, loaded as float32.
- **Licence**: Fashion-MNIST is MIT-licensed (Zalando Research); these weights are released with the project.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=list(PLAN), default=list(PLAN))
    args = parser.parse_args()
    torch.set_num_threads(1)
    test_images, test_labels = load_fashion_mnist("test")
    for name in args.only:
        arch, kwargs, part, noise, epochs, seed, role = PLAN[name]
        torch.manual_seed(seed)
        images, labels = load_fashion_mnist("train", part=part)
        model = arch(**kwargs)
        print(f"{name}: {arch.__name__} on part {part} ({len(labels)} images)", flush=True)
        start = time.time()
        train(model, images, labels, epochs, noise, seed)
        seconds = time.time() - start
        acc = accuracy(model, test_images, test_labels)
        print(f"{name}: test accuracy {acc:.4f} in {seconds:.0f}s", flush=True)
        directory = WEIGHTS / f"fashion-{name}"
        save_classifier(model, directory, kwargs=kwargs, train_part=part, seed=seed, test_accuracy=acc)
        separation = (
            "Evaluation only: part C is never seen by any guidance scorer (they use A and B), and this model is never "
            "used to guide."
            if part == "C"
            else "Part C is kept away from this model: it trains the evaluation-only models."
        )
        (directory / "MODEL_CARD.md").write_text(
            CARD.format(
                name=name,
                role=role,
                arch=arch.__name__,
                params=sum(p.numel() for p in model.parameters()),
                part="+".join(part),
                n=len(labels),
                separation=separation,
                seed=seed,
                epochs=epochs,
                noise_text=", Gaussian pixel noise (sigma up to 0.3) on half the batches" if noise else "",
                seconds=seconds,
                acc=acc,
            )
        )


if __name__ == "__main__":
    main()
