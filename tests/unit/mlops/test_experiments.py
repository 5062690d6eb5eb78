"""Routing and champion-vs-challenger comparison (:mod:`aml.mlops.experiments`) on data with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from aml.mlops import experiments


def test_bucket_is_a_fixed_number_in_0_1_per_salt_and_id():
    assert experiments.bucket("msg-1") == experiments.bucket("msg-1")
    assert experiments.bucket("msg-1") != experiments.bucket("msg-1", salt="another experiment")
    values = np.array([experiments.bucket(i) for i in range(20_000)])
    assert values.min() >= 0 and values.max() < 1
    assert np.histogram(values, bins=10, range=(0, 1))[0] == pytest.approx([2000] * 10, rel=0.08)  # uniform


def test_assign_is_sticky_and_sends_the_share_to_the_challenger():
    ids = [f"id-{i}" for i in range(10_000)]
    tenth = experiments.assign(ids, 0.1)
    assert tenth.mean() == pytest.approx(0.1, abs=0.01)
    assert np.array_equal(tenth, experiments.assign(list(reversed(ids)), 0.1)[::-1])  # order does not matter
    quarter = experiments.assign(ids, 0.25)
    assert np.all(quarter[tenth])  # raising the share only moves ids champion → challenger
    assert not experiments.assign(ids, 0.0).any() and experiments.assign(ids, 1.0).all()
    assert experiments.arm("id-3", 0.1) == ("challenger" if tenth[3] else "champion")
    with pytest.raises(ValueError, match=r"share must be in \[0, 1\]"):
        experiments.assign(ids, 1.5)


def scores(n: int, quality: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (30% positive) and propensities separating them by ``quality`` (0: noise)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(quality * (2 * y - 1) + rng.normal(0, 1, n))))
    return y, p


def test_a_clearly_better_shadow_challenger_is_promoted():
    y, weak = scores(600, 0.5, 0)
    strong = 1 / (1 + np.exp(-(3 * (2 * y - 1) + np.random.default_rng(1).normal(0, 1, y.size))))
    result = experiments.compare((y, weak, 0.5), (y, strong, 0.5), "aucpr", mode="shadow", n=300)
    assert result.recommendation == "promote" and "better" in result.reason
    assert result.low > 0 and result.challenger > result.champion
    assert result.difference == pytest.approx(result.challenger - result.champion)
    assert result.n_champion == result.n_challenger == 600
    backwards = experiments.compare((y, strong, 0.5), (y, weak, 0.5), "aucpr", n=300)
    assert backwards.recommendation == "keep" and "worse" in backwards.reason and backwards.high < 0


def test_the_same_model_twice_is_no_difference():
    y, p = scores(400, 1.0, 2)
    result = experiments.compare((y, p, 0.5), (y, p, 0.5), "recall", mode="shadow", n=200)
    assert result.difference == result.low == result.high == 0.0
    assert result.recommendation == "keep" and "no clear difference" in result.reason
    assert result.to_dict()["metric"] == "recall"


def test_ab_compares_independent_arms_with_a_wider_interval():
    y_a, p_a = scores(400, 1.5, 3)
    y_b, p_b = scores(300, 1.5, 4)  # the same model quality on other rows
    ab = experiments.compare((y_a, p_a, 0.5), (y_b, p_b, 0.5), "aucpr", mode="ab", n=300)
    assert ab.low < 0 < ab.high and ab.recommendation == "keep"
    assert (ab.n_champion, ab.n_challenger) == (400, 300)
    y, weak = scores(400, 1.5, 3)
    paired = experiments.compare((y, weak, 0.5), (y, weak * 0.999, 0.5), "aucpr", mode="shadow", n=300)
    assert paired.high - paired.low < ab.high - ab.low


def test_compare_refuses_what_it_cannot_compare():
    y, p = scores(100, 1.0, 5)
    with pytest.raises(ValueError, match="same rows"):
        experiments.compare((y, p, 0.5), (y[::-1], p, 0.5), mode="shadow")
    with pytest.raises(ValueError, match="both classes"):
        experiments.compare((np.zeros(10), np.zeros(10), 0.5), (y, p, 0.5), mode="ab")
    with pytest.raises(ValueError, match="mode must be one of"):
        experiments.compare((y, p, 0.5), (y, p, 0.5), mode="canary")
    with pytest.raises(ValueError, match="unknown metric"):
        experiments.compare((y, p, 0.5), (y, p, 0.5), "luck")


def test_shadow_log_writes_batches_of_rows_to_the_store(tmp_path):
    from aml.mlops.datastore import DataStore

    store = DataStore(tmp_path / "store")
    log = experiments.ShadowLog(store, "shadow", flush_every=3, max_age_s=3600)
    assert log.add("a", ("2", 0.9, True), ("1", 0.4, False)) is None and len(log) == 1
    assert log.add("b", ("2", 0.1, False), ("1", 0.2, False)) is None
    path = log.add("c", ("2", 0.6, True), ("1", 0.7, True))
    assert path == store.run_path("shadow", store.latest("shadow"), "scores.csv") and len(log) == 0
    df = store.read_csv(path, dtype={"id": "string", "champion_version": "string", "challenger_version": "string"})
    assert list(df.columns) == list(experiments.ShadowLog.COLUMNS) and df["id"].tolist() == ["a", "b", "c"]
    assert df["champion_prediction"].tolist() == [True, False, True] and df["challenger_propensity"].iloc[2] == 0.7
    assert store.read_lineage("shadow", store.latest("shadow"))["rows"] == 3 and log.written == 3
    assert log.flush() is None  # nothing held
    log.add("d", ("2", 0.5, True), ("1", 0.5, True))
    assert log.flush() is not None and len(store.runs("shadow")) == 2 and log.written == 4


def test_shadow_log_writes_an_old_batch_on_the_next_row(tmp_path, monkeypatch):
    from aml.mlops.datastore import DataStore

    log = experiments.ShadowLog(DataStore(tmp_path / "store"), flush_every=1000, max_age_s=30)
    clock = iter([100.0, 110.0, 131.0])
    monkeypatch.setattr(experiments.time, "monotonic", lambda: next(clock))
    assert log.add("a", ("2", 0.9, True), ("1", 0.9, True)) is None  # first row at t=100 (age checked at 110)
    assert log.add("b", ("2", 0.9, True), ("1", 0.9, True)) is not None  # at 131: older than 30 s
    with pytest.raises(ValueError, match="flush_every must be"):
        experiments.ShadowLog(DataStore(tmp_path / "x"), flush_every=0)
