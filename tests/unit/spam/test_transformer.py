"""The fine-tuned spam transformer and its stack with the TF-IDF model: real MiniLM, a few optimisation steps on a
handful of texts (the real code path in seconds; the figures are measured by the A1 notebook on the full budget)."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from aml.spam import models, stages, transformer

HAM = [
    "see you at lunch",
    "ok i will call you later",
    "thanks for dinner last night",
    "are you home yet",
    "love you mum",
    "running late sorry",
    "what time is the match",
    "can you pick up milk",
    "meeting moved to 3pm tomorrow",
    "your parcel was delivered to the porch",
]
SPAM = [
    "WIN a £1000 prize! call 09061701461 now",
    "FREE ringtone txt STOP to 85069",
    "Congratulations you have been selected to claim cash",
    "URGENT! your mobile won a bonus call 0800123456",
    "Claim your free entry www.win.com",
    "You won £500 txt WIN to 80086",
    "Free msg: reply YES for offer",
    "Cash prize awaits call 09050000327",
    "FLASH SALE up to 70% off today only",
    "Earn $500 a day from home, click here",
]
X = HAM + SPAM
Y = np.array([0] * len(HAM) + [1] * len(SPAM))
#: a few optimisation steps on short texts: seconds on a CPU
TINY = {"epochs": 1, "batch_size": 4, "max_length": 16, "max_steps_per_epoch": 2, "evals_per_epoch": 2}


@pytest.fixture(scope="module")
def tuned():
    transformer.clear_cache()
    return transformer.fine_tune_spam(X, Y, X[::2], Y[::2], **TINY)


def test_fine_tune_spam_interface(tuned):
    """What the ONNX export and the cascade use: a fitted estimator with model, tokenizer, max_length."""
    assert isinstance(tuned, transformer.FineTunedTransformer)
    assert tuned.max_length == 16 and not tuned.model.training
    assert tuned.model.config.num_labels == 2 and tuned.model.config.id2label == {0: "ham", 1: "spam"}
    assert tuned.tokenizer.is_fast and tuned.tokenizer("hello")["input_ids"][0] == tuned.tokenizer.cls_token_id
    p = tuned.predict_proba(X)
    assert p.shape == (len(X), 2) and np.allclose(p.sum(1), 1, atol=1e-5)
    assert list(tuned.classes_) == [0, 1] and set(tuned.predict(X)) <= {0, 1}
    assert tuned.predict_proba([]).shape == (0, 2)


def test_scores_in_input_order_whatever_the_batch(tuned):
    p = tuned.predict_proba(X)[:, 1]
    assert tuned.predict_proba([X[13]])[0, 1] == pytest.approx(p[13], abs=1e-5)
    assert np.allclose(tuned.predict_proba(X[::-1])[:, 1], p[::-1], atol=1e-5)
    assert np.allclose(tuned.decision_function(X[:3]), np.log(p[:3] / (1 - p[:3])), atol=1e-3)


def test_the_last_texts_are_not_scored_twice(tuned, monkeypatch):
    first = tuned.predict_proba(X[:4])
    first[0, 0] = 99.0  # the caller's copy: the kept result is not touched
    monkeypatch.setattr(transformer.FineTunedTransformer, "_device", lambda self: pytest.fail("scored twice"))
    again = tuned.predict_proba(X[:4])
    assert again[0, 0] != 99.0 and again.shape == (4, 2)
    monkeypatch.undo()
    assert "_last" not in tuned.__getstate__()  # not saved with the model


def test_early_stopping_sees_the_validation_texts(tuned):
    summary = tuned.fit_result_
    assert summary["train_texts"] == len(X) and summary["validation_texts"] == len(X[::2])
    assert summary["steps"] == 2 and len(tuned.history_) == 2  # two validation evaluations
    assert tuned.history_["val_loss"].notna().all()


def test_without_validation_a_stratified_share_of_train_is_held_out_and_budgets_subset(monkeypatch):
    monkeypatch.setattr(transformer, "_CACHE", transformer.OrderedDict())  # keep the module fixture's entry
    model = transformer.FineTunedTransformer(validation_fraction=0.25, max_train=8, max_val=4, **TINY).fit(X, Y)
    # 5 of the 20 texts held out for early stopping, 4 of them used (max_val); 8 of the other 15 fine-tuned on
    assert model.fit_result_["validation_texts"] == 4 and model.fit_result_["train_texts"] == 8
    assert model.predict_proba(X[:2]).shape == (2, 2)


def test_same_data_and_settings_fine_tune_once(tuned):
    again = clone(tuned).fit(X, Y, X_val=X[::2], y_val=Y[::2])
    assert again.model is tuned.model  # from the in-process cache
    key = transformer._cache_key(X, Y, X[::2], Y[::2], tuned._settings())
    assert key != transformer._cache_key(X, Y, X[::2], Y[::2], clone(tuned).set_params(seed=1)._settings())
    assert key != transformer._cache_key(X, Y, X[1::2], Y[1::2], tuned._settings())
    assert key == transformer._cache_key(X, Y, X[::2], Y[::2], clone(tuned).set_params(progress=True)._settings())


def test_pickles_as_plain_data_and_reloads_identically(tuned):
    blob = pickle.dumps(tuned)
    state = tuned.__getstate__()
    assert "model" not in state and "tokenizer" not in state
    assert "tokenizer.json" in state["_tokenizer_files"] and len(state["_model_config"]["id2label"]) == 2
    reloaded = pickle.loads(blob)
    assert np.allclose(reloaded.predict_proba(X), tuned.predict_proba(X), atol=1e-6)
    assert reloaded.get_params() == tuned.get_params()


def test_bad_input_is_refused_clearly():
    with pytest.raises(ValueError, match="labels"):
        transformer.FineTunedTransformer(**TINY).fit(X, Y[:-1])
    with pytest.raises(ValueError, match="0 \\(ham\\) or 1"):
        transformer.FineTunedTransformer(**TINY).fit(X, Y * 2)
    with pytest.raises(ValueError, match="both X_val and y_val"):
        transformer.FineTunedTransformer(**TINY).fit(X, Y, X_val=X)
    with pytest.raises(ValueError, match="validation_fraction"):
        transformer.FineTunedTransformer(validation_fraction=1.5, **TINY).fit(X, Y)
    with pytest.raises(NotFittedError):
        transformer.FineTunedTransformer().predict_proba(["hello"])


def test_accepts_validation():
    assert transformer.accepts_validation(transformer.FineTunedTransformer())
    assert transformer.accepts_validation(transformer.TfidfTransformerStack())
    assert not transformer.accepts_validation(models.tfidf_logreg())
    assert not transformer.accepts_validation(object())


# -- the stack: its parts fitted on train, its combiner on validation only ------------------------------------------

VAL_HAM = ["dentist reminder for tuesday at 10", "the quarterly report is attached for review", "home by six"]
VAL_SPAM = ["CLAIM your crypto bonus now www.coin.biz", "URGENT parcel fee due pay at bit.ly/x", "WIN cash now"]
X_VAL = VAL_HAM + VAL_SPAM
Y_VAL = np.array([0, 0, 0, 1, 1, 1])


def _cheap_stack(**kw):
    # the stack takes any two probabilistic text models; two TF-IDF models keep this test fast (the transformer's
    # own part is covered above and in test_stack_with_the_fine_tuned_transformer)
    return transformer.TfidfTransformerStack(first=models.tfidf_naive_bayes(), second=models.tfidf_logreg(), **kw)


def test_stack_fits_parts_on_train_and_combiner_on_validation_only():
    stack = _cheap_stack().fit(X, Y, X_val=X_VAL, y_val=Y_VAL)
    vocabulary = stack.first_.named_steps["counts"].vocabulary_
    assert "dentist" not in vocabulary and "crypto" not in vocabulary  # validation words never reach the parts
    features = stack._features(X_VAL)
    assert np.allclose(stack.combiner_.predict_proba(features), stack.predict_proba(X_VAL))
    assert set(stack.weights_) == {"first", "second"}
    # the combiner is a function of the validation data: other validation labels, other weights
    flipped = _cheap_stack().fit(X, Y, X_val=X_VAL, y_val=1 - Y_VAL)
    assert flipped.weights_["first"] < 0 < stack.weights_["first"]
    p = stack.predict_proba(X)
    assert p.shape == (len(X), 2) and np.allclose(p.sum(1), 1) and stack.predict_proba([]).shape == (0, 2)
    assert p[len(HAM) :, 1].mean() > p[: len(HAM), 1].mean()


def test_stack_without_validation_holds_out_part_of_train_and_refuses_one_class():
    stack = _cheap_stack(validation_fraction=0.3).fit(X, Y)
    assert len(stack.first_.named_steps["clf"].class_count_) == 2
    assert stack.first_.named_steps["clf"].class_count_.sum() == 14  # 70% of 20 texts
    with pytest.raises(ValueError, match="both classes"):
        _cheap_stack().fit(X, Y, X_val=VAL_HAM, y_val=[0, 0, 0])
    with pytest.raises(NotFittedError):
        _cheap_stack().predict_proba(["hello"])


def test_stack_with_the_fine_tuned_transformer_pickles(tuned):
    stack = transformer.TfidfTransformerStack(
        first=models.tfidf_logreg(), second=transformer.FineTunedTransformer(**TINY), export_onnx=False
    ).fit(X, Y, X_val=X[::2], y_val=Y[::2])
    assert stack.second_.model is tuned.model  # the fine-tuning of the same data and settings is reused
    reloaded = pickle.loads(pickle.dumps(stack))
    assert np.allclose(reloaded.predict_proba(X), stack.predict_proba(X), atol=1e-6)


def test_the_fitted_stack_serves_through_onnx_without_torch(tuned, tmp_path):
    """What A1 saves when the stack is selected must load where the serving image has no torch (issue 24)."""
    from aml.spam import onnx

    stack = transformer.TfidfTransformerStack(
        first=models.tfidf_logreg(), second=transformer.FineTunedTransformer(**TINY)
    ).fit(X, Y, X_val=X[::2], y_val=Y[::2])
    assert isinstance(stack.second_, onnx.OnnxTextClassifier) and stack.second_.n_verified == len(X[::2])
    assert stack.second_fit_["train_texts"] == len(X)  # the fine-tuning's summary is kept
    np.testing.assert_allclose(stack.second_.predict_proba(X), tuned.predict_proba(X), rtol=0, atol=onnx.TOLERANCE)
    path = tmp_path / "stack.pkl"
    path.write_bytes(pickle.dumps(stack))
    code = (
        "import json, pickle, sys\n"
        "class Refuse:  # importing torch or transformers now fails, as in the serving image\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'):\n"
        "            raise ImportError(name + ' is not in the serving image')\n"
        "sys.meta_path.insert(0, Refuse())\n"
        f"stack = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        f"print(json.dumps(stack.predict_proba({X!r})[:, 1].tolist()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    np.testing.assert_allclose(json.loads(out.stdout.splitlines()[-1]), stack.predict_proba(X)[:, 1], atol=1e-12)


def test_the_training_stage_returns_the_fine_tuned_transformer_in_its_served_form(tuned):
    from aml.spam import onnx

    df = pd.DataFrame({"text": X, "y": Y})
    trained = stages.train(transformer.FineTunedTransformer(**TINY), df, df.iloc[::2], name="minilm_finetuned")
    assert isinstance(trained.model, onnx.OnnxTextClassifier)  # the cached fine-tuning, exported and checked
    np.testing.assert_allclose(
        trained.scored["validation"][stages.PROPENSITY], tuned.predict_proba(X[::2])[:, 1], rtol=0, atol=1e-5
    )


# -- the selection stage passes validation to the models that use it ------------------------------------------------


def test_stages_fit_passes_validation_only_to_models_that_take_it():
    df = pd.DataFrame({"text": X, "y": Y})
    df_val = pd.DataFrame({"text": X_VAL, "y": Y_VAL})
    stack = stages.fit(_cheap_stack(), df, df_val)
    assert "dentist" not in stack.first_.named_steps["counts"].vocabulary_
    assert stack.combiner_.n_features_in_ == 2
    plain = stages.fit(models.tfidf_naive_bayes(), df, df_val)  # a plain model: fit(X, y) only, on train
    assert "dentist" not in plain.named_steps["counts"].vocabulary_
    trained = stages.train(_cheap_stack(), df, df_val, name="stack")
    assert trained.metrics["validation"]["aucpr"] > 0.5 and 0 <= trained.threshold <= 1


def test_catalogue_entries_and_budgets():
    assert {"minilm_finetuned", "tfidf_minilm_stack"} <= set(models.TRANSFORMER_MODELS) <= set(models.CATALOGUE)
    lean = models.benchmark_models(include_transformer=False)
    assert not set(models.TRANSFORMER_MODELS) & set(lean)
    smoke = models.transformer_params("smoke")
    line_up = models.benchmark_models(seed=3, params=smoke)
    assert line_up["minilm_finetuned"].get_params()["max_train"] == 64
    assert line_up["minilm_finetuned"].seed == 3
    stack = line_up["tfidf_minilm_stack"]
    assert stack.second.max_train == 64 and stack.seed == 3 and stack.first.named_steps["clf"].estimator.C == 1.0
    assert models.transformer_params("full")["minilm_finetuned"] == {"epochs": 2}
    with pytest.raises(ValueError, match="unknown budget"):
        models.transformer_params("huge")
    with pytest.raises(ValueError, match="unknown models"):
        models.benchmark_models(params={"nope": {}})
