"""The video-QA benchmark's summary: accuracies per condition and type, and the paired claims."""

from consensus.tasks.vqa.report import markdown, summarize


def record(kind, correct, gradient=None):
    conditions = {"lm alone": correct[0], "rescore: a": correct[1], "rescore: b": correct[2],
                  "rescore: ensemble": correct[3]}
    if gradient is not None:
        conditions |= {"gradient: a": gradient[0], "gradient: ensemble": gradient[1]}
    return {"type": kind, "correct": conditions, "seconds": dict.fromkeys(conditions, 1.0)}


def test_summary_counts_each_condition_on_the_questions_it_answered():
    records = [record("color", [0, 1, 0, 1], [0, 1]), record("color", [0, 0, 1, 1]),
               record("yes/no", [1, 1, 1, 1], [1, 1]), record("yes/no", [0, 1, 0, 0])]
    summary = summarize(records)
    table = summary["conditions"]
    assert table["lm alone"]["accuracy"] == 0.25 and table["lm alone"]["n"] == 4
    assert table["rescore: ensemble"]["per_type"] == {"color": 1.0, "yes/no": 0.5}
    assert table["gradient: ensemble"]["n"] == 2 and table["gradient: ensemble"]["per_type"] == {"color": 1.0,
                                                                                                "yes/no": 1.0}
    claims = summary["claims"]
    assert claims["rescore: ensemble - lm alone"]["points"] == 50.0
    assert claims["rescore: ensemble - best single (a)"]["n"] == 4  # a and b tie at 0.75: the first wins
    assert claims["ensemble: gradient - rescore (same questions)"]["n"] == 2
    text = markdown(summary, "t")
    assert "| gradient: ensemble | 100.0" in text and "| claim |" in text
