"""Behavioural tests of the selected spam model (:mod:`aml.spam.behaviour`): the minimum-functionality bank,
invariance to names and times, and the direction of spam cues. The model is the one ``build_spam_filter`` selects
(seed 42, without the transformer), built once per session (``selected_spam_filter`` in the root conftest).
"""

from __future__ import annotations

import pytest

from aml.core import config
from aml.spam import behaviour


@pytest.fixture(scope="module")
def spam_filter(selected_spam_filter):
    return selected_spam_filter


@pytest.fixture(scope="module")
def bank(spam_filter):
    model, threshold = spam_filter
    return behaviour.run_bank(model, threshold)


def _failures(table):
    return table.loc[~table["passed"]].to_string()


#: The selected model's bank pass rate is a benchmark (printed by ``make run``, in the README), aimed at
#: behaviour.MIN_PASS_RATE (0.95). Today's selected model passes 0.850 (68 of 80) on the seed-42 split: it flags
#: placeholders ("Test text") and requested notices (a dental reminder, "your prescription is ready") and misses
#: polite promotions (behaviour.BANK_FLOOR says why its floor is 0.80). The project's /train gate uses the same floor.
REGRESSION_FLOOR = behaviour.BANK_FLOOR
#: Per category, one message below today's selected model (seed 42: requested notices 8 of 14, promotions 8 of 12,
#: placeholders 10 of 12): the overall floor lets one category sink while another rises; these do not.
CATEGORY_FLOORS = {behaviour.REQUESTED_NOTICE: 7 / 14, behaviour.PROMOTION: 7 / 12, behaviour.PLACEHOLDER: 9 / 12}


def test_bank_pass_rate_does_not_regress(bank):
    assert len(bank) >= 60
    assert behaviour.pass_rate(bank) >= REGRESSION_FLOOR, _failures(bank)


@pytest.mark.parametrize("category", sorted(CATEGORY_FLOORS))
def test_no_category_regresses(bank, category):
    rows = bank[bank["category"] == category]
    assert len(rows) >= 10
    assert behaviour.pass_rate(rows) >= CATEGORY_FLOORS[category] - 1e-9, _failures(rows)


def test_everyday_ham_passes(bank):
    ham = bank[bank["category"] == behaviour.HAM]
    assert len(ham) >= 10
    assert ham["passed"].all(), _failures(ham)


def test_obvious_spam_is_caught(bank):
    spam = bank[bank["category"] == behaviour.SPAM]
    assert behaviour.pass_rate(spam) >= behaviour.MIN_PASS_RATE, _failures(spam)


def test_invariance_to_names_and_times(spam_filter):
    table = behaviour.invariance(*spam_filter)
    assert table["passed"].all(), _failures(table)


def test_spam_cues_raise_the_propensity(spam_filter):
    model, _ = spam_filter
    table = behaviour.directional(model)
    assert table["passed"].all(), _failures(table)


def test_bank_is_not_copied_from_the_collection():
    if config.local_data_dir() is None:
        pytest.skip("AML_DATA_DIR is not set")
    from aml.spam import sms

    df, _ = sms.load_sms()
    collection = set(df["text"].str.strip().str.lower())
    copied = [case.text for case in behaviour.BANK if case.text.strip().lower() in collection]
    assert not copied
