"""Goal text parsing: the five relations, several clauses, and clear errors for what is unknown."""

import pytest

from consensus.tasks.robot.relations import RELATIONS, Goal, GoalParseError, Relation, parse_goal


def test_parses_every_relation_and_its_phrasings():
    cases = {
        "red bowl on top of blue mug": "on top of",
        "red bowl on blue mug": "on top of",
        "red bowl to the left of blue mug": "left of",
        "red bowl left of blue mug": "left of",
        "red bowl to the right of blue mug": "right of",
        "the red bowl in front of the blue mug": "in front of",
        "Red Bowl behind Blue Mug": "behind",
    }
    for text, kind in cases.items():
        assert parse_goal(text) == Goal((Relation("red bowl", kind, "blue mug"),)), text
    assert set(cases.values()) == set(RELATIONS)


def test_parses_several_clauses_in_order():
    goal = parse_goal("red bowl on top of blue mug, blue mug to the left of cyan mug and green bowl behind cyan mug.")
    assert [str(r) for r in goal.relations] == [
        "red bowl on top of blue mug",
        "blue mug left of cyan mug",
        "green bowl behind cyan mug",
    ]
    assert goal.objects == ("red bowl", "blue mug", "cyan mug", "green bowl")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("red bowl near blue mug", "no known relation in 'red bowl near blue mug'; use one of: on top of, left of"),
        ("purple bowl on top of blue mug", "unknown object 'purple bowl'"),
        ("red plate left of blue mug", "unknown object 'red plate'"),
        ("red bowl left of red bowl", "two different objects"),
        (" , ", "the goal is empty"),
    ],
)
def test_unknown_relations_and_objects_get_a_clear_error(text, expected):
    with pytest.raises(GoalParseError, match=expected.replace("(", r"\(")):
        parse_goal(text)


def test_error_for_unknown_object_lists_what_is_known():
    with pytest.raises(GoalParseError) as err:
        parse_goal("red cup left of blue mug")
    assert "red, green, blue, yellow, cyan" in str(err.value) and "bowl, mug" in str(err.value)
