"""Train the embedded default generator: an unconditional DDPM on all 60k Fashion-MNIST training images.

It sees images only, never labels, so it draws random classes; the scorers' guidance decides
which class comes out. Seeded; 1,600 steps took 36 minutes on one thread of a busy 2-core machine (bf16 autocast).

    python scripts/train_fashion_diffusion.py [--steps 1600] [--out src/consensus/zoo/weights/fashion-diffusion]
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

from consensus.tasks.image.data import load_fashion_mnist

ROOT = Path(__file__).resolve().parent.parent


def build_unet() -> UNet2DModel:
    return UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        block_out_channels=(24, 48, 48),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    )


def save(ema: UNet2DModel, scheduler: DDPMScheduler, out: Path) -> None:
    """Write the EMA weights in float16 (half the size in the repository; loading casts back to float32)."""
    copy.deepcopy(ema).half().save_pretrained(out, safe_serialization=True)
    scheduler.save_pretrained(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "src/consensus/zoo/weights/fashion-diffusion")
    parser.add_argument(
        "--save-every", type=int, default=0, help="also save the EMA weights every N steps (0: at the end only)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    images, _ = load_fashion_mnist("train")
    images = images * 2 - 1  # the diffusion model works in [-1, 1]
    unet = build_unet()
    ema = copy.deepcopy(unet).requires_grad_(False)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=True)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.0)
    warmup = 100
    lr_at = lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    alphas_cumprod = scheduler.alphas_cumprod
    generator = torch.Generator().manual_seed(args.seed)
    start, running = time.time(), None
    for step in range(args.steps):
        index = torch.randint(0, len(images), (args.batch_size,), generator=generator)
        x0 = images[index]
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (args.batch_size,), generator=generator)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = unet(xt, t).sample
        loss = (pred.float() - noise).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), unet.parameters()):
                p_ema.lerp_(p, 1 - decay)
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {running:.4f}  {time.time() - start:6.0f}s", flush=True)
        if args.save_every and (step + 1) % args.save_every == 0:
            save(ema, scheduler, args.out)
    save(ema, scheduler, args.out)
    print(f"saved EMA weights to {args.out} after {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
