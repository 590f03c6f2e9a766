"""Image guidance chosen on validation seeds by one rule, for every scorer set, then measured on the benchmark's seeds.

The protocol: every scorer set (each guidance scorer alone: cnn, mlp, resnet; and their ensemble) tries
the same grid of techniques (``TECHNIQUES``), each setting on 200 validation samples (20 per class, seeds
1000+batch, disjoint from the benchmark's 0+batch). One rule, the same for every set and technique, picks a
setting: the best validation FID among those whose validation held-out accuracy is at least 0.9 (if none
reaches 0.9, the most accurate). The chosen settings then draw the benchmark's 500 samples (50 per class,
the same initial noise, DDIM 20 steps) beside the generator alone and, at equal compute, the best of K
unguided samples picked by the ensemble's energy. For the ensemble, every technique's own choice is
measured too (the technique table).

    python benchmarks/image_guidance_search.py [--sets cnn ensemble] [--validation-only]

Resumable through the evaluation harness: every measured setting and method is one record of
benchmarks/results/image-guidance-search-settings.jsonl, skipped when run again, so two processes may share the
validation part (give each its own --sets); the test draws' images are a cache in build/, drawn again (the same
seeds) where missing. The test part writes
image-guidance-search.json and .md, one grid per method and the accuracy-against-FID figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from pathlib import Path

import torch

from consensus import Best, Ensemble, Guidance, Proposals, Resample, run_consensus
from consensus.eval.harness import read_results, run_resumable
from consensus.eval.metrics import (
    duplicate_share,
    frechet_difference,
    frechet_distance,
    paired_difference,
    within_class_spread,
)
from consensus.report.plots import accuracy_against_fid
from consensus.tasks.image.data import FASHION_CLASSES, load_fashion_mnist
from consensus.tasks.image.evaluate import FashionEvaluator
from consensus.tasks.image.experiment import fashion_ensemble, fashion_generator
from consensus.tasks.image.grid import save_grid
from consensus.zoo.fashion import SCORER_NAMES

RESULTS = Path(__file__).resolve().parent / "results"
LOG = RESULTS / "image-guidance-search-settings.jsonl"
IMAGES = Path(__file__).resolve().parent.parent / "build" / "image-guidance-search"  # test draws, for paired FID
BATCH, STEPS, VALIDATION_SEED, MIN_ACCURACY, VALIDATION, TEST = 100, 20, 1000, 0.9, 200, 500
SETS = {**{name: (name,) for name in SCORER_NAMES}, "ensemble": SCORER_NAMES}
# Particles use a stochastic DDIM (eta > 0): with eta = 0 the copies a resampling makes follow one path to one image.
TECHNIQUES = {
    "gradient": [{"scale": s} for s in (0.1, 0.2, 0.3, 0.5)],
    "gradient + recurrence": [{"scale": s, "recurrence": 1} for s in (0.1, 0.2, 0.3)],
    "gradient + particles": [{"scale": s, "every": 4, "temperature": 1.0, "eta": eta}
                             for s in (0.1, 0.3) for eta in (0.5, 1.0)],
    "smoothed gradient": [{"scale": s, "strength": g, "copies": 4} for s in (0.3, 0.5) for g in (0.5, 1.0)],
    "noise-aware gradient": [{"scale": s, "noise_aware": True} for s in (0.1, 0.2, 0.3, 0.5)],
    "noise-aware gradient + particles": [{"scale": s, "noise_aware": True, "every": 4, "temperature": 1.0, "eta": 1.0}
                                         for s in (0.1, 0.3)],
    "particles only": [{"every": 4, "temperature": 1.0, "eta": eta} for eta in (0.5, 1.0)],
}
BEST_OF = (2, 4)


def ensemble_for(experts: tuple[str, ...], setting: dict) -> Ensemble:
    """The scorer set as the setting reads it: noise-aware versions of the experts, or smoothed ones, or as they are."""
    return fashion_ensemble(experts, noise_aware=setting.get("noise_aware", False), smoothing=setting.get("strength"),
                            copies=setting.get("copies", 4))


def options(setting: dict) -> dict:
    feedback = []
    if "scale" in setting:
        feedback.append(Guidance(setting["scale"]))
    if "every" in setting:
        feedback.append(Resample(temperature=setting["temperature"], every=setting["every"]))
    return {"feedback": feedback, "recurrence": setting.get("recurrence", 0), "eta": setting.get("eta")}


def classes_of(batch: int) -> list[str]:
    return [FASHION_CLASSES[(batch * BATCH + i) % 10] for i in range(BATCH)]


def draw(generator, experts: tuple[str, ...] | None, setting: dict | None, n: int, seed0: int) -> tuple[torch.Tensor, float]:
    """n samples (classes in turn) guided by the set's ensemble with the setting (None: the generator alone)."""
    ensemble = None if setting is None else ensemble_for(experts, setting)
    images, start = [], time.perf_counter()
    for b in range(n // BATCH):
        extra = {} if setting is None else options(setting)
        images.append(generator.generate(BATCH, ensemble, classes_of(b), num_inference_steps=STEPS, seed=seed0 + b,
                                         **extra).images)
    return torch.cat(images), (time.perf_counter() - start) / n


def best_of(generator, k: int, n: int, ensemble: Ensemble | None = None) -> tuple[torch.Tensor, float]:
    """Best of k unguided samples per slot, by the ensemble's energy on the finished images (by default the three
    guidance scorers' summed raw energies; ``unguided_draws`` says which draws)."""
    ensemble = ensemble or ensemble_for(SCORER_NAMES, {})
    images, start = [], time.perf_counter()
    for b in range(n // BATCH):
        images.append(picked(unguided_draws(generator, k, b), classes_of(b), ensemble))
    return torch.cat(images), (time.perf_counter() - start) / n


def unguided_draws(generator, k: int, batch: int) -> torch.Tensor:
    """k unguided draws for each slot of a batch, ``[BATCH, k, C, H, W]``: draw j of batch b has seed 10,000·j + b,
    away from the validation and test seeds."""
    return torch.stack([generator.generate(BATCH, None, None, num_inference_steps=STEPS, seed=batch + 10_000 * j).images
                        for j in range(k)], dim=1)


def picked(draws: torch.Tensor, classes: list[str], ensemble: Ensemble) -> torch.Tensor:
    """Each slot's lowest-energy draw: one engine run per slot, whose one step proposes the slot's draws and
    ``Best()`` keeps the lowest."""
    return torch.stack([run_consensus(lambda condition, population, rng, pool=pool: Proposals(pool), ensemble,
                                      class_name, feedback=Best()).best for pool, class_name in zip(draws, classes)])


def describe(setting: dict | None) -> str:
    if not setting:
        return "–"
    words = {"scale": "scale", "recurrence": "recurrence", "every": "resample every", "temperature": "temperature",
             "eta": "eta", "strength": "smoothing", "copies": "copies", "noise_aware": "noise-aware", "best_of": "best of"}
    return ", ".join(words[k] if v is True else f"{words[k]} {v}" for k, v in setting.items())


def logged() -> dict[str, dict]:
    """Every record of the log, by id."""
    return {row["id"]: row for row in read_results(LOG)}


def key_of(stage: str, name: str | None, setting: dict | None) -> str:
    return f"{stage}|{name}|{json.dumps(setting, sort_keys=True)}"


def validate(generator, evaluator, sets: list[str]) -> None:
    """Every set's every setting on the validation seeds, and the generator alone there (the figure's reference)."""
    labels = torch.arange(VALIDATION) % 10
    trials = [(None, None, None)] + [(name, technique, setting) for name in sets
                                     for technique, grid in TECHNIQUES.items() for setting in grid]

    def solve(batch):
        for name, technique, setting in batch:
            images, per_sample = draw(generator, SETS.get(name), setting, VALIDATION, VALIDATION_SEED)
            row = evaluator.evaluate(images, labels)
            print(name or "alone", technique or "", describe(setting), f"acc {row['accuracy']:.3f} fid {row['fid']:.1f}",
                  flush=True)
            yield {**({} if name is None else {"set": name, "technique": technique, "setting": setting}),
                   "accuracy": row["accuracy"], "fid": row["fid"], "seconds_per_sample": per_sample}

    run_resumable(trials, lambda t: "validation|alone" if t[0] is None else key_of("validation", t[0], t[2]), solve, LOG,
                  description="validation settings")


def choose(trials: list[dict]) -> dict:
    """The rule: the best FID among trials with accuracy >= MIN_ACCURACY, else the most accurate."""
    passing = [t for t in trials if t["accuracy"] >= MIN_ACCURACY]
    return min(passing, key=lambda t: t["fid"]) if passing else max(trials, key=lambda t: t["accuracy"])


def slug(method: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", method.lower()).strip("-")


def test(generator, evaluator, rows: dict[str, dict]) -> tuple[dict[str, dict], dict[str, str]]:
    """The benchmark's 500 samples for every method: the generator alone, best-of-K, and every scorer set with its
    overall choice and with each technique's own choice. Returns each method's row (computed now or read back)
    and, per scorer set, the name of its overall choice."""
    trials = [r for r in rows.values() if r["id"].startswith("validation|") and "set" in r]
    missing = [(name, setting) for name in SETS for grid in TECHNIQUES.values() for setting in grid
               if key_of("validation", name, setting) not in rows]
    if missing:
        raise SystemExit(f"the validation part is incomplete: {len(missing)} settings to measure, e.g. {missing[0]}; "
                         "run it first")
    methods: dict[str, tuple[str | None, dict | None, str | None]] = {"generator alone": (None, None, None)}
    methods.update({f"best of {k} unguided, picked by the ensemble": (None, {"best_of": k}, None) for k in BEST_OF})
    overall = {}
    for name in SETS:
        chosen = choose([t for t in trials if t["set"] == name])
        overall[name] = f"{name}: {chosen['technique']}"
        methods[overall[name]] = (name, chosen["setting"], chosen["technique"])
    for technique in TECHNIQUES:
        for name in SETS:
            chosen = choose([t for t in trials if t["set"] == name and t["technique"] == technique])
            methods.setdefault(f"{name}: {technique}", (name, chosen["setting"], technique))
    labels = torch.arange(TEST) % 10
    test_images, test_labels = load_fashion_mnist("test")
    reference = evaluator.reference_features
    real = torch.cat([reference[test_labels == c][: TEST // 10] for c in range(10)])  # as many real images per class
    real_spread = within_class_spread(real, torch.arange(10).repeat_interleave(TEST // 10))

    def solve(batch):
        for method, (name, setting, technique) in batch:
            images, per_sample = test_draw(generator, name, setting, stored_images(key_of("test", name, setting)))
            features = evaluator.features(images)
            row = {"set": name, "technique": technique, "setting": setting, **evaluator.evaluate(images, labels),
                   "seconds_per_sample": per_sample, "duplicates": duplicate_share(images, labels),
                   "diversity": within_class_spread(features, labels) / real_spread,
                   "fid_per_class": {FASHION_CLASSES[c]: frechet_distance(features[labels == c],
                                                                         reference[test_labels == c])
                                     for c in range(10)},
                   "correct": (evaluator.probabilities(images).argmax(1) == labels).tolist()}
            print(method, describe(setting), f"acc {row['accuracy']:.3f} fid {row['fid']:.1f}", flush=True)
            yield row

    records = run_resumable(list(methods.items()), lambda m: key_of("test", m[1][0], m[1][1]), solve, LOG,
                            description="test methods")
    out = {}
    for (method, (name, setting, _)), row in zip(methods.items(), records):
        stored = stored_images(row["id"])
        if not stored.exists():  # the image cache is gone: the same seeds draw the same images again
            test_draw(generator, name, setting, stored)
        shown = name in (None, "ensemble") or method in overall.values()  # a grid each, not every single's technique
        grid = RESULTS / "image-guidance-search" / f"{slug(method)}.png"
        if shown and not grid.exists():
            images = torch.load(stored).float() / 255
            save_grid(torch.cat([images[labels == c][:10] for c in range(10)]), grid, columns=10,
                      row_labels=FASHION_CLASSES)
        out[method] = {**row, "grid": f"image-guidance-search/{grid.name}" if shown else None, "images": stored}
    return out, overall


def stored_images(key: str) -> Path:
    return IMAGES / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.pt"


def test_draw(generator, name: str | None, setting: dict | None, stored: Path) -> tuple[torch.Tensor, float]:
    """The method's test samples (and seconds per sample), kept as bytes in ``stored`` for the paired FID."""
    if setting is not None and "best_of" in setting:
        images, per_sample = best_of(generator, setting["best_of"], TEST)
    else:
        images, per_sample = draw(generator, SETS.get(name), setting, TEST, 0)
    IMAGES.mkdir(parents=True, exist_ok=True)
    torch.save((images * 255).round().byte(), stored)
    return images, per_sample


def costs(generator, out: dict[str, dict], repeats: int = 3) -> dict[str, float]:
    """Every method's seconds per sample over the generator alone's, on one batch, all measured in one run,
    interleaved, the median of ``repeats`` (the test draws may come from several runs). Kept in the log, and
    measured again only when a method is new."""
    methods = sorted(out)

    def solve(batch):
        for _ in batch:
            seconds: dict[str, list[float]] = {m: [] for m in out}
            for _ in range(repeats):
                for method, r in out.items():
                    if r["setting"] is not None and "best_of" in r["setting"]:
                        seconds[method].append(best_of(generator, r["setting"]["best_of"], BATCH)[1])
                    else:
                        seconds[method].append(draw(generator, SETS.get(r["set"]), r["setting"], BATCH, 0)[1])
            median = {m: sorted(v)[len(v) // 2] for m, v in seconds.items()}
            yield {"relative": {m: t / median["generator alone"] for m, t in median.items()}}

    [row] = run_resumable([methods], costs_key, solve, LOG, description="costs")
    return row["relative"]


def costs_key(methods: list[str]) -> str:
    """The costs record's id: the methods it times (a new method is timed with the others, in one run)."""
    return "costs|" + hashlib.sha1("|".join(sorted(methods)).encode()).hexdigest()[:12]


def versus_best_single(out: dict[str, dict], ensemble: str, singles: list[str], evaluator) -> dict:
    """The ensemble's method against the best of the single scorers' (by test accuracy, then FID: the single
    scorer's best case), paired over the same seeds."""
    best = max(singles, key=lambda m: (out[m]["accuracy"], -out[m]["fid"]))
    features = {m: evaluator.features(torch.load(out[m]["images"]).float() / 255) for m in (ensemble, best)}
    return {"ensemble": ensemble, "best_single": best,
            "accuracy": paired_difference(out[ensemble]["correct"], out[best]["correct"]),
            "fid": frechet_difference(features[ensemble], features[best], evaluator.reference_features)}


def compare(out: dict[str, dict], overall: dict[str, str], evaluator) -> dict:
    """The ensemble against its best single scorer, each with its overall choice, and within every technique; and
    against each single scorer's overall choice."""
    return {"overall": versus_best_single(out, overall["ensemble"], [overall[n] for n in SCORER_NAMES], evaluator),
            **{f"overall against {n}": versus_best_single(out, overall["ensemble"], [overall[n]], evaluator)
               for n in SCORER_NAMES},
            **{technique: versus_best_single(out, f"ensemble: {technique}",
                                             [f"{n}: {technique}" for n in SCORER_NAMES], evaluator)
               for technique in TECHNIQUES}}


def table(out: dict[str, dict], methods: list[str], cost: dict[str, float]) -> list[str]:
    lines = ["| method | chosen setting | held-out accuracy [95% CI] | FID ↓ | IS ↑ | diversity | duplicates | "
             "cost / sample |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method in methods:
        r = out[method]
        low, high = r["accuracy_ci95"]
        lines.append(f"| {method} | {describe(r['setting'])} | {r['accuracy']:.3f} [{low:.3f}, {high:.3f}] | "
                     f"{r['fid']:.1f} | {r['inception_score']:.2f} | {r['diversity']:.2f} | {r['duplicates']:.1%} | "
                     f"{cost[method]:.2f}× |")
    return lines


def write(out: dict[str, dict], overall: dict[str, str], rows: dict[str, dict], versus: dict,
          cost: dict[str, float]) -> None:
    trials = [r for r in rows.values() if r["id"].startswith("validation|") and "set" in r]
    alone, alone_validation = out["generator alone"], rows["validation|alone"]
    figure = RESULTS / "image-guidance-search" / "accuracy-vs-fid.svg"
    figure.write_text(accuracy_against_fid(
        {name: [(t["accuracy"], t["fid"], t["technique"]) for t in trials if t["set"] == name] +
         [(alone_validation["accuracy"], alone_validation["fid"], "generator alone")] for name in SETS},
        MIN_ACCURACY, "Every setting tried on the validation seeds (200 samples each)"))
    summary = {m: {k: v for k, v in r.items() if k not in ("correct", "images", "id")} for m, r in out.items()}
    main_methods = [m for m in out if m.split(":")[0] not in SETS] + list(overall.values())
    top, ensemble = versus["overall"], out[overall["ensemble"]]
    claims = {
        "the ensemble's held-out accuracy is at least 0.90": ensemble["accuracy"] >= 0.9,
        "the ensemble's FID is no worse than the generator alone's": ensemble["fid"] <= alone["fid"],
        "the ensemble beats its best single scorer on accuracy (paired interval above 0)": top["accuracy"]["low"] > 0,
        "the ensemble beats its best single scorer on FID (paired interval below 0)": top["fid"]["high"] < 0,
    }
    (RESULTS / "image-guidance-search.json").write_text(json.dumps(
        {"settings": {"validation_samples": VALIDATION, "test_samples": TEST, "steps": STEPS,
                      "rule_min_accuracy": MIN_ACCURACY, "techniques": TECHNIQUES},
         "rows": {m: summary[m] for m in main_methods}, "every_set_and_technique": summary, "claims": claims,
         "cost_relative_to_generator_alone": cost,
         "ensemble_minus_best_single_accuracy": {"best_single": top["best_single"], **top["accuracy"]},
         "ensemble_vs_best_single": versus,
         "tried": [{k: t[k] for k in ("set", "technique", "setting", "accuracy", "fid", "seconds_per_sample")}
                   for t in trials]}, indent=1))
    a, f = top["accuracy"], top["fid"]
    lines = ["# Image guidance chosen on validation seeds, measured on the benchmark's", "",
             f"Rule, the same for every scorer set and technique: the best validation FID among the settings whose "
             f"validation held-out accuracy is at least {MIN_ACCURACY} ({VALIDATION} samples, seeds {VALIDATION_SEED}"
             f"+batch); if none reaches it, the most accurate. Test: {TEST} samples (50 per class), seeds 0+batch, the "
             f"same initial noise for every method, DDIM {STEPS} steps (eta 0 unless the setting says). Each scorer "
             "set tried the same grid of every technique (below). Cost is seconds per sample against the generator "
             "alone on one batch of 100, interleaved in one process, the median of three, one torch thread; the "
             "test draws' own seconds are in the JSON. Diversity: the mean feature distance between two samples of a class, over the "
             "same for 50 real test images per class (1: as varied as the data). Duplicates: the share of samples "
             "that repeat an earlier one of their class (to 1/255 per pixel).", "",
             "## Each scorer set with its overall choice, the generator alone, and best-of-K at equal compute", "",
             *table(out, main_methods, cost), "",
             f"**The ensemble ({top['ensemble']}) against the best single scorer ({top['best_single']})**, paired over "
             f"the same seeds: accuracy {a['points']:+.1f} points [{a['low']:+.1f}, {a['high']:+.1f}] ({a['wins']} "
             f"samples right for the ensemble only, {a['losses']} for the single scorer only); FID "
             f"{f['difference']:+.1f} [{f['low']:+.1f}, {f['high']:+.1f}] (paired bootstrap over samples, 95%; "
             "negative is better for the ensemble). Against each single scorer's choice: " +
             "; ".join(f"{n}: accuracy {v['accuracy']['points']:+.1f} [{v['accuracy']['low']:+.1f}, "
                       f"{v['accuracy']['high']:+.1f}], FID {v['fid']['difference']:+.1f} [{v['fid']['low']:+.1f}, "
                       f"{v['fid']['high']:+.1f}]"
                       for n, v in ((n, versus[f"overall against {n}"]) for n in SCORER_NAMES)) + ".",
             "", "## Claims", "",
             *[f"- {claim}: **{'yes' if holds else 'no'}**" for claim, holds in claims.items()], "",
             "## Within each technique: the ensemble against its best single scorer (each with that technique's "
             "own choice)", "",
             "| technique | ensemble: accuracy, FID | best single scorer: accuracy, FID | accuracy difference (points) "
             "| FID difference |", "| --- | --- | --- | --- | --- |"]
    for technique in TECHNIQUES:
        v = versus[technique]
        e, b = out[v["ensemble"]], out[v["best_single"]]
        lines.append(f"| {technique} | {e['accuracy']:.3f}, {e['fid']:.1f} | {v['best_single'].split(':')[0]}: "
                     f"{b['accuracy']:.3f}, {b['fid']:.1f} | {v['accuracy']['points']:+.1f} [{v['accuracy']['low']:+.1f}, "
                     f"{v['accuracy']['high']:+.1f}] | {v['fid']['difference']:+.1f} [{v['fid']['low']:+.1f}, "
                     f"{v['fid']['high']:+.1f}] |")
    lines += ["", "## Every scorer set with each technique's own choice (test)", "",
              *table(out, [m for m in out if m.split(":")[0] in SETS], cost), "",
              "## FID per class (50 samples each against that class's 1,000 test images; biased upward at this "
              "size, so compare across methods only)", "",
              "| method | " + " | ".join(FASHION_CLASSES) + " |", "| --- |" + " --- |" * 10]
    lines += [f"| {m} | " + " | ".join(f"{out[m]['fid_per_class'][c]:.0f}" for c in FASHION_CLASSES) + " |"
              for m in out]
    lines += ["", "Grids, one class per row (the first 10 samples of each): " +
              ", ".join(f"`{r['grid']}` {m}" for m, r in out.items() if r["grid"]) + ".", "",
              "Every setting tried, accuracy against FID: `image-guidance-search/accuracy-vs-fid.svg`.", "",
              "## Every setting tried (validation)", "",
              "| scorer set | technique | setting | accuracy | FID | cost / sample (s) |", "| --- | --- | --- | --- | --- | --- |",
              f"| – | generator alone | – | {alone_validation['accuracy']:.3f} | {alone_validation['fid']:.1f} | "
              f"{alone_validation['seconds_per_sample']:.3f} |"]
    lines += [f"| {t['set']} | {t['technique']} | {describe(t['setting'])} | {t['accuracy']:.3f} | {t['fid']:.1f} | "
              f"{t['seconds_per_sample']:.3f} |" for t in trials]
    (RESULTS / "image-guidance-search.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:40]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", choices=list(SETS), default=list(SETS),
                        help="the scorer sets whose validation settings to measure")
    parser.add_argument("--validation-only", action="store_true", help="stop after the validation part")
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator, evaluator = fashion_generator("ddim"), FashionEvaluator()
    validate(generator, evaluator, args.sets)
    if args.validation_only:
        return
    out, overall = test(generator, evaluator, logged())
    write(out, overall, logged(), compare(out, overall, evaluator), costs(generator, out))


if __name__ == "__main__":
    main()
