"""Math word problems: GSM8K's JSON-lines files and reasoning-gym's generators, offline.

Every problem carries the id of the template it came from: gsm_symbolic has only 85
templates, so a train/evaluation split by problem would leak templates; splits here are by
template (``TEMPLATE_SPLITS``), and few-shot exemplars and training data come from the
``train`` templates only.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from pathlib import Path

from consensus.core.files import json_lines
from consensus.scorers.text.answers import normalize_number

GSM_SUFFIX = " Give the result as your final answer. Do not include units."


@dataclass(frozen=True)
class Problem:
    """id: unique within its source; answer: the gold answer as a string; solution: a gold
    worked solution when the source has one, ending in ``#### <answer>``; template: the
    generator it came from (problems of one template differ only in names and numbers)."""

    id: str
    question: str
    answer: str
    solution: str | None = None
    template: str | None = None


# Few-shot exemplars come from a seed of their own, EXEMPLAR_SEED past the run's (gsm_symbolic's from the training
# templates at this seed), so the exemplars do not move with the problems a seed draws.
EXEMPLAR_SEED = 777


class DataError(ValueError):
    """A data file or set that cannot be used as given."""


def load_gsm8k_jsonl(path: str | Path) -> list[Problem]:
    """GSM8K in its official format: one ``{"question": ..., "answer": "...#### N"}`` per line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; give the path of a GSM8K .jsonl file (e.g. test.jsonl)")
    problems = []
    for line in json_lines(path):
        record = line.value
        if line.why is None and not (isinstance(record, dict) and isinstance(record.get("question"), str)
                                     and isinstance(record.get("answer"), str)):
            line = replace(line, why="not an object with text fields 'question' and 'answer'")
        if line.why is not None:
            raise DataError(f"{path}:{line.number} is not a GSM8K record ({line.why}); each line must be a JSON object "
                            "with 'question' and 'answer' fields, the answer ending in '#### <number>'")
        problems.append(_gsm8k_problem(f"{path.stem}-{line.number}", record["question"], record["answer"],
                                       f"{path}:{line.number}"))
    if not problems:
        raise DataError(f"{path} holds no problems")
    return problems


def _gsm8k_problem(problem_id: str, question: str, solution: str, where: str) -> Problem:
    work, mark, gold = solution.rpartition("####")  # the last mark: what follows it, on its line, is the answer
    gold = gold.strip().replace(",", "")
    if not mark or not gold or "\n" in gold:
        raise DataError(f"{where}: the answer has no '#### <number>' line")
    if normalize_number(gold) is None:
        raise DataError(f"{where}: the answer {gold!r} is not a number; GSM8K answers are numbers (fix or drop the line)")
    # GSM8K marks calculator annotations as <<48/2=24>>; they are not part of the text.
    return Problem(problem_id, question, gold, re.sub(r"<<[^>]*>>", "", solution))


def load_gsm8k_hub(split: str = "test") -> list[Problem]:
    """GSM8K from the Hugging Face hub (``openai/gsm8k``), for machines that can reach it."""
    try:
        from datasets import load_dataset
    except ImportError as e:
        raise DataError("loading GSM8K from the hub needs: pip install datasets; or pass a local "
                        f"GSM8K {split}.jsonl file instead") from e
    try:
        rows = load_dataset("openai/gsm8k", "main", split=split)
    except Exception as e:  # offline, or the hub refused: say what to do instead
        raise DataError(f"could not load openai/gsm8k from the hub ({e}); download {split}.jsonl and pass its path") from e
    return [_gsm8k_problem(f"gsm8k-{split}-{i}", r["question"], r["answer"], f"gsm8k {split} row {i}")
            for i, r in enumerate(rows)]


def gsm_symbolic_templates() -> list[int]:
    """The ids of reasoning-gym's working gsm_symbolic templates (85 in 0.1.25)."""
    from reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic import tasks_ok

    return sorted(tasks_ok)


def template_split(split: str) -> list[int]:
    """A fixed split of gsm_symbolic's templates: 40% ``test``, 60% ``train`` (seeded shuffle)."""
    templates = gsm_symbolic_templates()
    random.Random(20230101).shuffle(templates)
    n_test = round(0.4 * len(templates))
    if split == "test":
        return sorted(templates[:n_test])
    if split == "train":
        return sorted(templates[n_test:])
    raise DataError(f"unknown split {split!r}; use 'train' or 'test'")


def gsm_symbolic(split: str, size: int, seed: int = 0) -> list[Problem]:
    """``size`` problems drawn from the templates of ``split``, each template in turn, seeded."""
    if size < 1:
        raise DataError(f"asked for {size} problems; ask for at least one")
    from reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic import GSMSymbolicDataset, GSMSymbolicDatasetConfig

    generators = GSMSymbolicDataset(GSMSymbolicDatasetConfig(size=1, seed=seed)).generators
    templates = template_split(split)
    order = random.Random(seed).sample(templates, len(templates))
    problems = []
    for i in range(size):
        template = order[i % len(order)]
        example = generators[template](random.Random(seed * 1_000_003 + i), 1.0)
        question = example["question"].removesuffix(GSM_SUFFIX)
        problems.append(Problem(f"gsm_symbolic-{split}-{seed}-{i}", question, str(example["answer"]),
                                example["metadata"].get("answer_cot"), f"gsm_symbolic/{template}"))
    return problems


#: The problems the trained scorers and the generator learnt from: the first ``size`` problems of
#: ``gsm_symbolic(split, size, seed)``. Evaluation on the training templates leaves them out by question text.
GENERATOR_TRAINING = {"split": "train", "size": 4000, "seed": 1}  # scripts/train_math_generator.py
VERIFIER_TRAINING = {"split": "train", "size": 600, "seed": 2}  # scripts/train_math_verifier.py


def training_template_problems(size: int, seed: int = 0) -> list[Problem]:
    """New problems of the templates the generator was trained on: new names and numbers, none whose
    question is one the generator or the verifier was trained on (the analogue of GSM8K's test split
    for a generator fine-tuned on its train split; ``gsm_symbolic("test", ...)`` is the harder
    setting of templates never seen)."""
    seen = {p.question for training in (GENERATOR_TRAINING, VERIFIER_TRAINING) for p in gsm_symbolic(**training)}
    drawn = size
    while True:  # seen problems are replaced by further draws of the seed (draws are a prefix of longer ones)
        problems = [p for p in gsm_symbolic("train", drawn, seed) if p.question not in seen]
        if len(problems) >= size:
            return problems[:size]
        drawn *= 2


def chain_sum(size: int, seed: int = 0, terms: int = 2, digits: int = 1) -> list[Problem]:
    """reasoning-gym's chain_sum (a +/- b ...), as word-problem-style questions with worked solutions."""
    if size < 1:
        raise DataError(f"asked for {size} problems; ask for at least one")
    import reasoning_gym

    ds = reasoning_gym.create_dataset("chain_sum", size=size, seed=seed, min_terms=terms, max_terms=terms,
                                      min_digits=digits, max_digits=digits)
    problems = []
    for i, entry in enumerate(ds):
        expression = entry["metadata"]["expression"]
        question = f"What is {expression}?"
        problems.append(Problem(f"chain_sum-{terms}x{digits}-{seed}-{i}", question, str(entry["answer"]),
                                _chain_solution(expression), f"chain_sum/{terms}x{digits}"))
    return problems


def _chain_solution(expression: str) -> str:
    """A worked left-to-right solution, one operation per line."""
    tokens = expression.split()
    value, lines = int(tokens[0]), []
    for op, operand in zip(tokens[1::2], tokens[2::2]):
        new = value + int(operand) if op == "+" else value - int(operand)
        lines.append(f"{value} {op} {operand} = {new}")
        value = new
    return "\n".join(lines + [f"#### {value}"])


def leg_counting(size: int, seed: int = 0, animals: tuple[int, int] = (2, 3),
                 instances: tuple[int, int] = (1, 5)) -> list[Problem]:
    """reasoning-gym's leg_counting word problems ("how many legs are there in total if you have
    2 crabs, 1 tiger?"), ``animals`` kinds of animal with ``instances`` of each, with worked
    solutions that state each animal's legs and write every product and the sum."""
    if size < 1:
        raise DataError(f"asked for {size} problems; ask for at least one")
    import reasoning_gym
    from reasoning_gym.arithmetic.leg_counting import ANIMALS

    ds = reasoning_gym.create_dataset("leg_counting", size=size, seed=seed, min_animals=animals[0],
                                      max_animals=animals[1], min_instances=instances[0],
                                      max_instances=instances[1])
    problems = []
    for i, entry in enumerate(ds):
        question = entry["question"].split("Now, ", 1)[1].strip()
        question = question[0].upper() + question[1:]
        lines, totals = [], []
        for animal, count in entry["metadata"]["animals"].items():
            legs = ANIMALS[animal]
            lines.append(f"A {animal} has {legs} legs, so {count} {animal}{'s' if count > 1 else ''} "
                         f"{'has' if count == 1 else 'have'} {count} x {legs} = {count * legs} legs.")
            totals.append(str(count * legs))
        lines.append(f"In total: {' + '.join(totals)} = {entry['answer']} legs.")
        problems.append(Problem(f"leg_counting-{seed}-{i}", question, str(entry["answer"]),
                                "\n".join([*lines, f"#### {entry['answer']}"]), "leg_counting"))
    return problems


def simple_geometry(size: int, seed: int = 0, sides: tuple[int, int] = (3, 4)) -> list[Problem]:
    """reasoning-gym's simple_geometry word problems (a convex polygon's missing interior angle,
    ``sides`` sides), with worked solutions: the angle sum (n - 2) x 180, the known angles' sum,
    the difference. The task's own answer-format instruction is dropped (ours is ``#### N``)."""
    if size < 1:
        raise DataError(f"asked for {size} problems; ask for at least one")
    import reasoning_gym

    ds = reasoning_gym.create_dataset("simple_geometry", size=size, seed=seed, min_sides=sides[0],
                                      max_sides=sides[1])
    problems = []
    for i, entry in enumerate(ds):
        question = entry["question"].split("Return only")[0].strip()
        meta = entry["metadata"]
        n, known = meta["n_sides"], [f"{a:g}" for a in meta["known_angles"]]
        solution = (f"The interior angles of a polygon with {n} sides add up to ({n} - 2) x 180 = "
                    f"{meta['total_interior_sum']} degrees.\n"
                    f"The known angles add up to {' + '.join(known)} = {meta['sum_of_known_angles']:g} degrees.\n"
                    f"The remaining angle is {meta['total_interior_sum']} - {meta['sum_of_known_angles']:g} = "
                    f"{entry['answer']} degrees.\n#### {entry['answer']}")
        problems.append(Problem(f"simple_geometry-{seed}-{i}", question, str(entry["answer"]), solution,
                                f"simple_geometry/{n}"))
    return problems


# reasoning-gym families for the base model, prompted with worked exemplars of the same family
FEW_SHOT_FAMILIES = {"chain_sum": chain_sum, "leg_counting": leg_counting, "simple_geometry": simple_geometry}


def few_shot_exemplars(family: str, shots: int, seed: int) -> list[Problem]:
    """``shots`` worked exemplars of a few-shot family, taking its templates in turn (so a
    geometry prompt shows triangles and quadrilaterals alike)."""
    by_template: dict[str, list[Problem]] = {}
    for problem in FEW_SHOT_FAMILIES[family](10 * shots, seed):
        by_template.setdefault(problem.template, []).append(problem)
    turns = zip(*by_template.values())
    return [problem for turn in turns for problem in turn][:shots]


#: The most problems one run asks for: generated sets are built up front, and a typo of a few zeros should be
#: an error at once, not minutes of generating problems before the first is solved.
MAX_SIZE = 100_000


def load_problems(source: str, size: int, seed: int = 0, split: str = "test") -> list[Problem]:
    """A problem set by name: ``gsm_symbolic`` (by template split), ``gsm_symbolic_train_templates``
    (new problems of the training templates), a few-shot family (``chain_sum``,
    ``leg_counting``, ``simple_geometry``), ``gsm8k`` (the hub) or a GSM8K .jsonl path; ``size`` 0
    means all of a GSM8K file."""
    if not 0 <= size <= MAX_SIZE:
        raise DataError(f"--size must be between 0 (all of a file) and {MAX_SIZE:,}, got {size:,}")
    if size == 0 and (source.startswith("gsm_symbolic") or source in FEW_SHOT_FAMILIES):
        raise DataError(f"--size 0 means all problems of a file; {source} is generated: give a size >= 1")
    if source == "gsm_symbolic":
        return gsm_symbolic(split, size, seed)
    if source == "gsm_symbolic_train_templates":
        return training_template_problems(size, seed)
    if source in FEW_SHOT_FAMILIES:
        return FEW_SHOT_FAMILIES[source](size, seed)
    if source == "gsm8k" or source.endswith(".jsonl"):
        problems = load_gsm8k_hub(split) if source == "gsm8k" else load_gsm8k_jsonl(source)
        return problems[:size] if size else problems
    raise DataError(f"unknown problem source {source!r}; use gsm_symbolic, gsm_symbolic_train_templates, "
                    f"{', '.join(FEW_SHOT_FAMILIES)}, gsm8k (hub) or a GSM8K .jsonl path")


@dataclass(frozen=True)
class BenchmarkSet:
    """The problems a math benchmark asks of a family: its few-shot exemplars, its evaluation problems, and
    development problems disjoint from both (for fitting ensemble weights)."""

    exemplars: list[Problem]
    problems: list[Problem]
    development: list[Problem]


def benchmark_problems(family: str, size: int, dev: int = 0, seed: int = 0) -> BenchmarkSet:
    """The benchmarks' problem sets of ``family`` (every math benchmark asks the same ones at one seed).

    gsm_symbolic families are zero-shot; their development problems are new problems of the training templates at
    another seed (not 3, the generator's development loss), none an evaluation question. The few-shot families drop
    questions equal to an exemplar (two one-digit terms make only 200 distinct questions); chain_sum's development
    problems have two-digit terms, as every one-digit question is already an evaluation problem; the word-problem
    families' are far-seed draws (reasoning-gym draws item i of seed s from Random(s + i)), none a question asked.
    """
    if family.startswith("gsm_symbolic"):
        problems = (gsm_symbolic("test", size, seed=seed) if family == "gsm_symbolic"
                    else training_template_problems(size, seed=seed))
        asked = {p.question for p in problems}
        development = [p for p in training_template_problems(dev + 20, seed=seed + 4) if p.question not in asked]
        return BenchmarkSet([], problems, development[:dev] if dev else [])
    make = FEW_SHOT_FAMILIES[family]
    exemplars = few_shot_exemplars(family, 4, seed=EXEMPLAR_SEED)
    shown = {e.question for e in exemplars}
    problems = [p for p in make(size + 20, seed=seed) if p.question not in shown][:size]
    if family == "chain_sum":
        development = chain_sum(dev, seed=seed, digits=2) if dev else []
    else:
        asked = shown | {p.question for p in problems}
        development = [p for p in make(dev + 20, seed=seed + 100_000) if p.question not in asked][:dev]
    return BenchmarkSet(exemplars, problems, development)
