"""The serving model of :mod:`aml.project.serving`: the lean scorer where it compiles, the smoke check, the
threshold, the one experiment router online and batch scoring share, and the model holder's fallback (a previous
champion before a never-promoted version) and its message when every version is broken (on a real MLflow
registry)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aml.mlops import registry, tracking
from aml.project import serving
from aml.spam import lean

# -- the serving model -----------------------------------------------------------------------------------------------


def test_serving_model_compiles_a_linear_svm_to_the_lean_scorer(toy, linear_svm):
    ready = serving.serving_model(linear_svm, 0.5)
    assert ready.lean and isinstance(ready.scorer, lean.LeanScorer) and ready.threshold == 0.5
    texts = toy["validation"].text.tolist() + list(serving.PROBES)
    np.testing.assert_allclose(ready.propensities(texts), linear_svm.predict_proba(texts)[:, 1], atol=1e-9)
    prediction, propensity = ready.score_one("WIN a cash prize call 090600001 now")
    assert bool(prediction) is True
    assert propensity == pytest.approx(linear_svm.predict_proba(["WIN a cash prize call 090600001 now"])[0, 1])
    assert ready.version == "unregistered"
    assert ready.describe() == {"version": "unregistered", "threshold": 0.5, "scorer": "lean"}


def test_serving_model_serves_naive_bayes_as_the_full_model(toy, naive_bayes):
    ready = serving.serving_model(naive_bayes, 0.3)
    assert not ready.lean and ready.scorer is naive_bayes
    assert ready.describe()["scorer"] == "Pipeline"
    prediction, propensity = ready.score_one("see you at home tonight")
    assert not prediction and 0 <= propensity < 0.3
    np.testing.assert_allclose(ready.propensities(["a", "b"]), naive_bayes.predict_proba(["a", "b"])[:, 1])


def _toy_cascade(toy, linear_svm, naive_bayes):
    from aml.spam.cascade import Band, Cascade

    return Cascade.assemble(linear_svm, naive_bayes, Band(0.2, 0.8), 0.25)


def test_serving_model_serves_a_cascade_with_a_lean_first_stage(toy, linear_svm, naive_bayes):
    model = _toy_cascade(toy, linear_svm, naive_bayes)
    ready = serving.serving_model(model, 0.5)
    assert ready.lean and isinstance(ready.scorer.first_, lean.LeanScorer) and ready.scorer.second_ is naive_bayes
    texts = toy["validation"].text.tolist() + list(serving.PROBES) + ["see you at the cafe", "free entry"]
    np.testing.assert_allclose(ready.propensities(texts), model.predict_proba(texts)[:, 1], rtol=0, atol=1e-9)
    for text in texts:
        assert ready.score_one(text)[1] == pytest.approx(model.predict_proba([text])[0, 1], abs=1e-9)
    described = ready.describe()
    assert described["scorer"] == "cascade (lean first stage, Pipeline)"
    assert described["cascade"]["band"]["low"] == 0.2 and described["cascade"]["weight"] == 0.25
    assert described["cascade"]["scored"] >= len(texts) and 0 <= described["cascade"]["routed_share"] <= 1


def test_the_smoke_check_refuses_a_cascade_whose_second_stage_cannot_score(toy, linear_svm, naive_bayes):
    from aml.spam.cascade import Band, Cascade

    nothing_routed = Cascade.assemble(linear_svm, Fake(lambda texts: np.full((len(texts), 2), np.nan)), Band(0, 0))
    with pytest.raises(ValueError, match="second stage"):
        serving.serving_model(nothing_routed, 0.5)


class Fake:
    """A "model" whose ``predict_proba`` returns what the test asks for (the smoke check must catch it)."""

    def __init__(self, answer):
        self.answer = answer

    def predict_proba(self, texts):
        return self.answer(list(texts))


@pytest.mark.parametrize(
    "answer",
    [
        lambda texts: np.tile([-0.5, 1.5], (len(texts), 1)),  # propensity above 1
        lambda texts: np.tile([1.2, -0.2], (len(texts), 1)),  # propensity below 0
        lambda texts: np.tile([np.nan, np.nan], (len(texts), 1)),  # not a number
        lambda texts: np.array([[0.5, 0.5]]),  # one row whatever the number of texts
    ],
    ids=["above-1", "below-0", "nan", "one-row"],
)
def test_the_smoke_check_refuses_a_model_that_cannot_score(answer):
    with pytest.raises(ValueError, match="smoke check failed"):
        serving.serving_model(Fake(answer), 0.5)


def test_the_smoke_check_refuses_wrong_shapes_and_models_without_predict_proba():
    with pytest.raises((ValueError, IndexError)):
        serving.serving_model(Fake(lambda texts: np.full((len(texts), 1), 0.5)), 0.5)  # one column
    with pytest.raises((ValueError, IndexError)):
        serving.serving_model(Fake(lambda texts: np.full(len(texts), 0.5)), 0.5)  # one dimension
    with pytest.raises(AttributeError):
        serving.serving_model(object(), 0.5)


@pytest.mark.parametrize("threshold", [1.5, -0.1, float("nan"), "0.5", None, True])
def test_serving_model_refuses_a_bad_threshold(naive_bayes, threshold):
    with pytest.raises((TypeError, ValueError), match="threshold"):
        serving.serving_model(naive_bayes, threshold)


# -- the experiment router -------------------------------------------------------------------------------------------


def test_the_router_sends_an_id_to_one_arm_whichever_way_it_is_asked():
    from aml.mlops import experiments

    router = serving.Router(challenger="2", mode="ab", share=0.5)
    ids = [f"m{i}" for i in range(200)]
    arms = router.arms(ids)
    assert [router.arm(i) for i in ids] == arms.tolist()  # one message (online) = the same as in a batch
    assert (router.to_challenger(ids) == experiments.assign(ids, 0.5)).all()
    assert 60 < (arms == "challenger").sum() < 140
    shadow = serving.Router(challenger="2", mode="shadow")
    assert not shadow.to_challenger(ids).any() and shadow.arm("m1") == "champion"  # a shadow never answers
    assert not serving.Router().active() and serving.Router(challenger="2").active()


# -- the model holder: fallback warnings and the all-broken message --------------------------------------------------


def served(version: str = "1", fallback: bool = False, standing: str = registry.CHAMPION_STANDING):
    failures = [{"version": "2", "error": "OSError: broken"}] if fallback else []
    return registry.Served("m", version, None, "champion", fallback, failures, standing=standing)


def test_serving_warning_names_a_fallback_and_a_last_resort():
    assert serving.serving_warning(None) is None
    assert serving.serving_warning(served()) is None
    assert serving.serving_warning(served("1", standing=registry.PREVIOUS_CHAMPION)) is None
    fallback = serving.serving_warning(served("1", fallback=True, standing=registry.PREVIOUS_CHAMPION))
    assert fallback.startswith("serving version 1 as a fallback: newer versions failed") and "never" not in fallback
    last = serving.serving_warning(served("3", fallback=True, standing=registry.NEVER_PROMOTED))
    assert "as a fallback" in last and "version 3 was never champion" in last and "last resort" in last
    assert "POST /train" in last


def register_text_model(model, name: str, threshold: float = 0.5) -> str:
    """Log ``model`` with MLflow, register it under ``name`` with its ``threshold`` tag; returns the version."""
    import mlflow

    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", pip_requirements=tracking.model_requirements(), serialization_format="cloudpickle"
        )
    version = tracking.register(info.model_uri, name)
    registry.set_tags(name, version, {"threshold": threshold})
    return version


def test_the_holder_serves_a_previous_champion_and_when_all_break_says_what_to_do(
    mlflow_store, tmp_path, linear_svm, naive_bayes
):
    for model in (linear_svm, naive_bayes, linear_svm):
        register_text_model(model, "holder-test")
    for version in ("1", "3"):  # 2 never promoted: after 3 breaks, 1 serves, not 2
        registry.promote("holder-test", version)
    registry.corrupt_version("holder-test", "3")
    holder = serving.ModelHolder("holder-test", refresh_s=0)
    state = holder.describe()
    assert state["ready"] and state["serving"]["version"] == "1" and state["fallback"]
    assert state["serving"]["standing"] == registry.PREVIOUS_CHAMPION
    assert [f["version"] for f in state["failures"]] == ["3"] and "as a fallback" in state["warning"]
    for version in ("1", "2"):
        registry.corrupt_version("holder-test", version)
    holder.reload()
    state = holder.describe()
    assert not state["ready"] and state["serving"] is None and state["warning"] is None
    assert [f["version"] for f in state["failures"]] == ["3", "1", "2"]  # the never-promoted one last
    error = state["error"]
    assert error.startswith("no version of model 'holder-test' can serve: v3: ")
    assert "POST /train" in error and "'python -m src.backup restore BACKUP DEST'" in error
    assert str(tmp_path) not in error and str(tmp_path) not in json.dumps(state["failures"])
