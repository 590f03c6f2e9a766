"""The readers of what users hand the project (results, traces, manifests, data files, ``--scorer`` specs), fed
random and mutated input: they raise nothing but the project's own clear errors, keep every valid record as it was,
and take time linear in their input.

The cases are generated (hypothesis; the budget is in ``conftest.py``): arbitrary bytes, arbitrary JSON, and valid
files with lines deleted, torn, duplicated, corrupted or interleaved with garbage."""

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from consensus.core.scorer import parse_scorer_spec
from consensus.core.trace import drop_items, read_trace, validate_record
from consensus.eval.harness import run_resumable, scan_results
from consensus.report import write_report
from consensus.report.load import load_run, read_jsonl
from consensus.tasks.math.data import DataError as MathDataError
from consensus.tasks.math.data import load_gsm8k_jsonl
from consensus.tasks.vqa.data import DataError as VQADataError
from consensus.tasks.vqa.data import activitynet_qa, easy_vqa_clip
from consensus.tasks.vqa.video import FrameError
from tests.drills.drill_helpers import finishes_within

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=16)
keys = st.text(max_size=8).filter(lambda k: k != "id")
records = st.dictionaries(keys, json_values, max_size=4)
no_newline = st.binary(max_size=60).map(lambda b: b.replace(b"\n", b""))


def is_record(line: bytes) -> bool:
    try:
        value = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and "id" in value


def dumps(value) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


garbage = st.one_of(
    no_newline,  # bytes, mostly not UTF-8
    json_values.filter(lambda v: not isinstance(v, dict)).map(dumps),  # JSON that is not an object
    records.map(dumps),  # an object without an id
    st.integers(1, 3000).map(lambda depth: b"[" * depth),  # nesting, torn
    st.text(max_size=40).map(lambda t: t.replace("\n", " ").encode()),
).filter(lambda line: not is_record(line))


def torn(line: bytes, cut: int) -> bytes:
    """A strict prefix of a record's line, as a kill mid-write leaves it: never a whole JSON object."""
    return line[: max(1, min(cut, len(line) - 1))]


@st.composite
def results_files(draw):
    """Valid records with distinct ids, with garbage lines and torn copies of records between them."""
    ids = draw(st.lists(st.text(min_size=1, max_size=10) | st.integers(), unique=True, max_size=8))
    valid = [{"id": i, **draw(records)} for i in ids]
    lines = []
    for record in valid:
        for _ in range(draw(st.integers(0, 2))):
            lines.append(draw(garbage | st.builds(torn, st.just(dumps(record)), st.integers(1, 200))))
        lines.append(dumps(record))
    ending = b"" if draw(st.booleans()) else b"\n"
    return valid, b"\n".join(lines) + ending


def temporary(name: str, data: bytes) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    (folder / name).write_bytes(data)
    return folder / name


@given(st.binary(max_size=2000))
def test_the_results_reader_takes_any_bytes(data):
    records, rejected = scan_results(temporary("results.jsonl", data))
    assert all(isinstance(r, dict) and isinstance(r["id"], (str, int)) for r in records)
    assert len({r["id"] for r in records}) == len(records)
    assert all({"line", "why", "text"} <= set(entry) for entry in rejected)


@given(results_files())
def test_the_results_reader_keeps_every_valid_record_as_it_was(case):
    valid, data = case
    records, rejected = scan_results(temporary("results.jsonl", data))
    assert records == valid
    json.dumps(rejected)  # what it sets aside can be written down


mutations = st.lists(st.tuples(st.sampled_from(["delete", "tear", "garbage", "duplicate", "blank", "no-newline"]),
                               st.integers(0, 30), garbage), max_size=6)


@given(st.lists(st.text(min_size=1, max_size=6), unique=True, min_size=1, max_size=10), mutations)
def test_a_resumed_run_over_a_mangled_file_redoes_exactly_the_damaged_items(ids, changes):
    path = Path(tempfile.mkdtemp(prefix="fuzz-")) / "results.jsonl"
    solve = lambda batch: ({"value": [e, len(e)]} for e in batch)  # noqa: E731
    run_resumable(ids, str, solve, path)
    lines = path.read_bytes().split(b"\n")[:-1]
    for change, where, junk in changes:
        i = where % len(lines) if lines else 0
        if change == "delete" and lines:
            del lines[i]
        elif change == "tear" and lines:
            lines[i] = torn(lines[i], where)
        elif change == "garbage":
            lines.insert(i, junk)
        elif change == "duplicate" and lines:
            lines.insert(i, lines[i])
        elif change == "blank":
            lines.insert(i, b"")
    ending = b"" if any(change == "no-newline" for change, _, _ in changes) else b"\n"
    path.write_bytes(b"\n".join(lines) + (ending if lines else b""))
    intact = {json.loads(line)["id"] for line in lines if is_record(line)}
    redone = []
    final = run_resumable(ids, str, lambda b: (redone.append(e) or {"value": [e, len(e)]} for e in b), path)
    assert sorted(redone) == sorted(set(ids) - intact), "only the damaged items are redone"
    assert final == [{"id": e, "value": [e, len(e)]} for e in ids]
    on_disk, rejected = scan_results(path)
    assert sorted(on_disk, key=str) == sorted(final, key=str) and rejected == [], "each item once, nothing else"


number = st.none() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def trace_records(draw):
    """A record that follows the trace schema (``consensus.core.trace``)."""
    n = draw(st.integers(0, 4))
    scorers = draw(st.lists(st.text(min_size=1, max_size=6), unique=True, max_size=3))
    energies = draw(st.none() | st.fixed_dictionaries({
        "total": st.lists(number, min_size=n, max_size=n),
        "per_scorer": st.fixed_dictionaries({s: st.lists(number, min_size=n, max_size=n) for s in scorers})}))
    return {"item": draw(st.none() | st.text(max_size=6) | st.integers()), "iteration": draw(st.integers(0, 30)),
            "candidates": draw(st.lists(st.text(max_size=20), min_size=n, max_size=n)), "energies": energies,
            "survivors": draw(st.lists(st.integers(0, n - 1), max_size=n)) if n else [],
            "feedback": draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)),
            "best_energy": draw(number), "tokens": draw(st.integers(0, 99)), "generator_tokens": draw(st.integers(0, 999)),
            "scorer_calls": draw(st.integers(0, 99)),
            "seconds": draw(st.dictionaries(st.text(max_size=8), st.floats(0, 100), max_size=3))}


@st.composite
def mangled_trace_records(draw):
    """A schema record with one field replaced by any JSON value, or removed."""
    record = draw(trace_records())
    energies = record["energies"]
    inner = [("energies", "total")] + [("per_scorer", name) for name in (energies or {}).get("per_scorer", {})]
    where = draw(st.sampled_from(sorted(record) + (inner if energies else [])))
    holder, field = ((record, where) if isinstance(where, str) else
                     (energies if where[0] == "energies" else energies["per_scorer"], where[1]))
    if draw(st.booleans()):
        del holder[field]
    else:
        holder[field] = draw(json_values)
    return record


@given(trace_records())
def test_a_valid_trace_record_passes_the_schema(record):
    validate_record(json.loads(dumps(record)))


@given(mangled_trace_records() | json_values.filter(lambda v: isinstance(v, dict)))
def test_the_trace_schema_rejects_what_it_rejects_with_a_value_error(record):
    try:
        validate_record(record)
    except ValueError:
        pass


@given(st.lists(trace_records() | mangled_trace_records(), max_size=6), st.lists(garbage, max_size=3))
def test_the_trace_readers_keep_the_valid_records_and_skip_the_rest(good, bad):
    lines = [dumps(r) for r in good] + bad
    path = temporary("trace.jsonl", b"\n".join(lines) + b"\n")
    warnings = []
    kept = read_jsonl(path, validate_record, warnings)
    assert kept == [r for r in good if _valid(r)]
    assert len(warnings) == len(lines) - len(kept) - sum(1 for line in bad if not line.strip())
    objects = good + [v for v in map(_value, bad) if isinstance(v, dict)]
    assert list(read_trace(path)) == objects
    dropped = {r["item"] for r in good[:1] if isinstance(r.get("item"), str)}
    of_dropped = lambda r: isinstance(r.get("item"), str) and r["item"] in dropped  # noqa: E731
    drop_items(path, dropped)
    assert list(read_trace(path)) == [r for r in objects if not of_dropped(r)]


def _valid(record) -> bool:
    try:
        validate_record(record)
    except ValueError:
        return False
    return True


def _value(line: bytes):
    try:
        return json.loads(line)
    except (ValueError, RecursionError):
        return None


manifests = st.fixed_dictionaries({}, optional={
    "task": json_values, "title": json_values, "command": json_values, "settings": json_values,
    "summary": json_values, "columns": st.lists(json_values, max_size=3) | json_values,
    "images": st.lists(json_values | st.fixed_dictionaries({"path": json_values, "caption": json_values}),
                       max_size=3) | json_values,
    "candidate_images": json_values | st.sampled_from(["{iteration}-{candidate}.png", "{0.__class__}", "../{x}"]),
    "state": json_values, "trace": st.just("trace.jsonl") | json_values,
    "results": st.just("results.jsonl") | json_values})


@given(manifests | json_values, st.lists(trace_records() | mangled_trace_records(), max_size=4),
       results_files(), st.booleans())
def test_a_report_of_any_run_folder_is_a_page_or_one_clear_error(manifest, trace, results, as_bytes):
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    (folder / "run.json").write_bytes(dumps(manifest) if not as_bytes else dumps(manifest)[:-1] + b"\xff")
    (folder / "trace.jsonl").write_bytes(b"".join(dumps(r) + b"\n" for r in trace))
    (folder / "results.jsonl").write_bytes(results[1])
    try:
        page, warnings = write_report(folder)
    except FileNotFoundError as e:  # a manifest that names neither a trace nor results
        assert "is it a run folder?" in str(e) or "holds no" in str(e)
        return
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert all(isinstance(w, str) for w in warnings)
    assert load_run(folder).results == (results[0] if load_run(folder).manifest.get("results") else [])


numbers = st.integers(-10**9, 10**9).map(str) | st.decimals(-10**6, 10**6, places=2).map(str)


@given(st.lists(st.tuples(st.text(min_size=1, max_size=40), st.text(max_size=40), numbers), min_size=1, max_size=5))
def test_gsm8k_keeps_every_valid_problem(problems):
    lines = [dumps({"question": q, "answer": f"{work}\n#### {gold}"}) for q, work, gold in problems]
    loaded = load_gsm8k_jsonl(temporary("test.jsonl", b"\n".join(lines) + b"\n"))
    assert [(p.question, p.answer) for p in loaded] == [(q, gold) for q, _, gold in problems]


@given(st.binary(max_size=600) | st.lists(garbage | json_values.map(dumps), max_size=4).map(b"\n".join))
def test_gsm8k_takes_any_file_or_says_which_line_is_wrong(data):
    try:
        load_gsm8k_jsonl(temporary("test.jsonl", data))
    except MathDataError as e:
        assert "test.jsonl" in str(e)


activitynet_entries = st.lists(st.fixed_dictionaries({}, optional={
    "question": json_values, "question_id": json_values, "video_name": json_values | st.text(max_size=300),
    "answer": json_values, "type": json_values | st.integers(-2, 10)}) | json_values, max_size=4)


@given(activitynet_entries | json_values, activitynet_entries | json_values, st.booleans())
def test_activitynet_qa_takes_any_files_or_says_what_is_wrong(questions, answers, as_bytes):
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    (folder / "test_q.json").write_bytes(dumps(questions) + (b"\xff" if as_bytes else b""))
    (folder / "test_a.json").write_bytes(dumps(answers))
    try:
        examples = activitynet_qa(folder)
    except VQADataError:
        return
    assert all(e.answer == str(next(a["answer"] for a in answers if str(a["question_id"]) == e.question_id))
               for e in examples)


@given(st.lists(st.tuples(st.text(min_size=1, max_size=30), st.text(max_size=20), st.integers(0, 8),
                          st.text(min_size=1, max_size=300)), max_size=4, min_size=1,
                unique_by=lambda entry: entry[2:3] + (entry[0],)))
def test_activitynet_qa_keeps_every_valid_entry(entries):
    folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
    entries = [(q, a, t, name) for i, (q, a, t, name) in enumerate(entries)]
    (folder / "test_q.json").write_bytes(dumps([{"question": q, "question_id": f"q{i}", "video_name": name}
                                                for i, (q, _, _, name) in enumerate(entries)]))
    (folder / "test_a.json").write_bytes(dumps([{"answer": a, "type": t, "question_id": f"q{i}"}
                                                for i, (_, a, t, _) in enumerate(entries)]))
    examples = activitynet_qa(folder)
    assert [(e.question_id, e.answer) for e in examples] == [(f"q{i}", a) for i, (_, a, _, _) in enumerate(entries)]


@given(st.text(max_size=40) | st.builds(lambda s, i: f"easy-vqa/{s}/{i}", st.sampled_from(["test", "train", "val"]),
                                        st.integers(-3, 10**6) | st.text(max_size=8)))
def test_an_easy_vqa_id_is_a_clip_or_one_clear_error(video):
    try:
        frames = easy_vqa_clip(video if video.startswith("easy-vqa/") else "easy-vqa/" + video, 2)
    except (VQADataError, FrameError):
        return
    assert len(frames) == 2


identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@given(st.text(max_size=60))
def test_the_scorer_spec_parser_takes_any_text_or_says_how_to_write_one(spec):
    try:
        module, cls, weight = parse_scorer_spec(spec)
    except ValueError as e:
        assert str(e).startswith(f"--scorer {spec!r}: ")
        return
    assert spec.startswith(f"{module}:{cls}") and weight >= 0


@given(st.lists(identifiers, min_size=1, max_size=3), identifiers,
       st.none() | st.floats(0, 1e6, allow_nan=False))
def test_the_scorer_spec_parser_reads_every_valid_spec(module, cls, weight):
    spec = ".".join(module) + ":" + cls + ("" if weight is None else f":{weight!r}")
    assert parse_scorer_spec(spec) == (".".join(module), cls, 1.0 if weight is None else weight)


def test_every_reader_is_linear_in_its_input(tmp_path):
    """Inputs a fuzzer seldom builds at size: one 20 MB line, 100,000 lines, nesting 200,000 deep, 200,000 spaces
    after an answer (a backtracking pattern would take hours on the last; each takes well under a second)."""
    huge = tmp_path / "huge.jsonl"
    huge.write_bytes(b'{"id": "a", "text": "' + b"x" * 20_000_000 + b'"}\n' + b"[" * 200_000 + b"\n")
    many = tmp_path / "many.jsonl"
    many.write_bytes(b"".join(b'{"id": %d}\n' % (i % 50_000) for i in range(100_000)))
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "q", "answer": "#### 1" + " " * 200_000 + "x #### 2"}) + "\n")
    records, rejected = finishes_within(60, scan_results, huge)
    assert len(records) == 1 and rejected[0]["why"] == "nested too deeply to read"
    records, rejected = finishes_within(60, scan_results, many)
    assert len(records) == 50_000 and len(rejected) == 50_000
    assert len(finishes_within(60, read_jsonl, many, validate_record, [])) == 0
    assert [p.answer for p in finishes_within(60, load_gsm8k_jsonl, gsm)] == ["2"]
    assert finishes_within(60, parse_scorer_spec, "a" * 1_000_000 + ":B:0.5")[2] == 0.5
