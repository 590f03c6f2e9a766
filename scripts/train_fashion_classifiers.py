"""Train the Fashion-MNIST classifiers of the embedded default: guidance scorers and two evaluation-only models.

Data (fixed thirds A, B, C of the 60k training images, see consensus.tasks.image.data):

    cnn                 SmallCNN    on A       guidance scorer
    mlp                 MLP         on B       guidance scorer
    resnet              TinyResNet  on A+B     guidance scorer
    noise-aware-cnn     SmallCNN    on A       guidance scorer of noisy samples x_t (classifier guidance)
    noise-aware-mlp     MLP         on B       the same
    noise-aware-resnet  TinyResNet  on A+B     the same
    eval-classifier     VGGNet      on C       evaluation only: held-out accuracy and Inception-style score
    eval-features       VGGNet      on C       evaluation only: the feature space of FID/KID (another seed, 64-d)

The scorers are trained with Gaussian pixel noise half of the time, because guidance shows them the
predicted clean image of a noisy sample, which is blurred and noisy early on. The noise-aware ones
read the generator's own noisy samples instead: x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε at a timestep t drawn
uniformly from the generator's 1,000 (its committed DDPM schedule), with √(1−ᾱ_t) as a second input.
The evaluation models see clean images only. Seeded; 29 minutes for the first five on one thread of a
busy 2-core machine. Each model's folder gets a MODEL_CARD.md with its test accuracy.

    python scripts/train_fashion_classifiers.py [--only cnn mlp ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from consensus.tasks.image.data import load_fashion_mnist
from consensus.zoo.fashion import MLP, NoiseAwareClassifier, SmallCNN, TinyResNet, VGGNet, save_classifier

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "src/consensus/zoo/weights"

# name: (architecture, constructor kwargs, training part, noise (None, "pixel" or "forward process"), epochs, seed, role)
NOISE_AWARE_ROLE = "guidance scorer of noisy samples (noise-aware)"
PLAN = {
    "cnn": (SmallCNN, {}, "A", "pixel", 4, 1, "guidance scorer"),
    "mlp": (MLP, {}, "B", "pixel", 6, 2, "guidance scorer"),
    "resnet": (TinyResNet, {"width": 16}, "AB", "pixel", 2, 3, "guidance scorer"),
    "noise-aware-cnn": (NoiseAwareClassifier, {"body": "SmallCNN"}, "A", "forward process", 4, 6, NOISE_AWARE_ROLE),
    "noise-aware-mlp": (NoiseAwareClassifier, {"body": "MLP"}, "B", "forward process", 6, 7, NOISE_AWARE_ROLE),
    "noise-aware-resnet": (NoiseAwareClassifier, {"body": "TinyResNet", "width": 16}, "AB", "forward process", 4, 8,
                           NOISE_AWARE_ROLE),
    "eval-classifier": (VGGNet, {"embedding": 128}, "C", None, 3, 4, "evaluation only (held-out classifier)"),
    "eval-features": (VGGNet, {"embedding": 64}, "C", None, 3, 5, "evaluation only (FID/KID feature network)"),
}
NOISE_TEXT = {None: "", "pixel": ", Gaussian pixel noise (sigma up to 0.3) on half the batches",
              "forward process": ", every image noised by the generator's forward process at a uniform timestep"}
CHECKED_TIMESTEPS = (0, 250, 500, 750)  # where a noise-aware model's test accuracy is reported


def noise_stds() -> torch.Tensor:
    """√(1−ᾱ_t) for t = 0 … 999 of the committed generator's DDPM schedule."""
    from diffusers import DDPMScheduler

    return (1 - DDPMScheduler.from_pretrained(WEIGHTS / "fashion-diffusion").alphas_cumprod).sqrt()


def forward_process(x: torch.Tensor, std: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """x_t = √ᾱ (2x − 1) + √(1−ᾱ) ε for images x in [0, 1] and √(1−ᾱ) = ``std`` per image."""
    std = std.view(-1, 1, 1, 1)
    return (1 - std**2).sqrt() * (2 * x - 1) + std * torch.randn(x.shape, generator=generator)


def train(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int, noise: str | None,
          seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * (len(labels) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    stds = noise_stds() if noise == "forward process" else None
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        for i in range(len(labels) // 128):
            index = order[i * 128 : (i + 1) * 128]
            x, y = images[index], labels[index]
            if noise == "pixel":
                sigma = torch.rand(len(x), 1, 1, 1, generator=generator) * 0.3
                keep = torch.rand(len(x), 1, 1, 1, generator=generator) < 0.5
                x = x + torch.where(keep, 0.0, sigma) * torch.randn(x.shape, generator=generator)
            if stds is not None:
                std = stds[torch.randint(len(stds), (len(x),), generator=generator)]
                logits = model(forward_process(x, std, generator), std)
            else:
                logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"  epoch {epoch}: loss {loss.item():.3f}", flush=True)
    model.eval()


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, std: float | None = None) -> float:
    """Test accuracy; a noise-aware model's on images noised to √(1−ᾱ) = ``std`` (fixed noise, seed 0)."""
    generator = torch.Generator().manual_seed(0)
    right = 0
    for i in range(0, len(labels), 1000):
        x = images[i : i + 1000]
        if std is not None:
            level = torch.full((len(x),), std)
            x = model(forward_process(x, level, generator), level)
        else:
            x = model(x)
        right += (x.argmax(1) == labels[i : i + 1000]).sum().item()
    return right / len(labels)


CARD = """# fashion-{name}

- **Role**: {role}.
- **Architecture**: `{arch}` from `consensus.zoo.fashion` ({params:,} parameters), input {inputs}.
- **Training data**: Fashion-MNIST training split, part(s) {part} ({n:,} images) of the fixed thirds A/B/C
  defined in `consensus.tasks.image.data` (Debian package `dataset-fashion-mnist`).
  {separation}
- **Training**: `scripts/train_fashion_classifiers.py --only {name}`, seed {seed}, {epochs} epochs, AdamW, batch 128,
  one-cycle learning rate 2e-3{noise_text}; {seconds:.0f} s on one CPU thread.
- **Test accuracy** (10,000 Fashion-MNIST test images): {acc_text} (float32, before storage).
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
        if noise == "forward process":
            stds = noise_stds()
            by_level = {t: accuracy(model, test_images, test_labels, float(stds[t])) for t in CHECKED_TIMESTEPS}
            acc = by_level[0]
            acc_text = ", ".join(f"{a:.2%} at t = {t} (√(1−ᾱ) = {float(stds[t]):.2f})" for t, a in by_level.items())
        else:
            acc = accuracy(model, test_images, test_labels)
            acc_text = f"{acc:.2%}"
        print(f"{name}: test accuracy {acc_text} in {seconds:.0f}s", flush=True)
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
                arch=arch.__name__ + (f"` around a `{kwargs['body']}" if "body" in kwargs else ""),
                inputs=("a noisy sample x_t `[N, 1, 28, 28]` of the generator's forward process and its noise level "
                        "√(1−ᾱ) `[N]`" if noise == "forward process" else "`[N, 1, 28, 28]` in [0, 1]"),
                params=sum(p.numel() for p in model.parameters()),
                part="+".join(part),
                n=len(labels),
                separation=separation,
                seed=seed,
                epochs=epochs,
                noise_text=NOISE_TEXT[noise],
                seconds=seconds,
                acc_text=acc_text,
            )
        )


if __name__ == "__main__":
    main()
