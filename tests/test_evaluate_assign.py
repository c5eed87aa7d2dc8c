"""The shortcut in matching approvers to rules gives exactly what the full matching gives."""

from __future__ import annotations

import random

from gates.evaluate import _assign, _match


def _case(rng: random.Random, one_rule_each: bool) -> tuple[dict[str, list[int]], list[int]]:
    rules = rng.randint(1, 4)
    required = [rng.randint(1, 3) for _ in range(rules)]
    eligible = {}
    for person in rng.sample("abcdefgh", rng.randint(0, 8)):
        fits = 1 if one_rule_each else rng.randint(1, rules)
        eligible[person] = sorted(rng.sample(range(rules), fits))
    return eligible, required


def test_one_rule_each_is_assigned_as_the_matching_assigns():
    rng = random.Random(20261120)
    for _ in range(5000):
        eligible, required = _case(rng, one_rule_each=True)
        assert list(_assign(eligible, required).items()) == list(
            _match(eligible, required).items()
        ), (eligible, required)


def test_people_fitting_several_rules_are_matched():
    rng = random.Random(7)
    for _ in range(2000):
        eligible, required = _case(rng, one_rule_each=False)
        assert list(_assign(eligible, required).items()) == list(_match(eligible, required).items())
