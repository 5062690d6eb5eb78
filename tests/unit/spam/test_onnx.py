"""Unit tests of aml.spam.onnx: the export checked against torch (and refused when it differs), the classifier's
batching, pickling, and loading without torch or transformers (the serving image has neither).

The model is a small randomly initialised BERT (2 layers, 32 wide) with MiniLM's real tokenizer: the export, the
tokenizer path and the check are the same as for the fine-tuned MiniLM, in a second instead of ten."""

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from aml.spam import onnx

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

TEXTS = [
    "Ok lar... see you at lunch",
    "WINNER!! You have won a £1000 prize. Call 09061701461 to claim now",
    "",
    "Your parcel is waiting: pay the £1.99 fee at https://example.test/parcel",
    "word " * 200,  # truncated to max_length
    "Émile’s café — naïve façade ☕",
]


@pytest.fixture(scope="module")
def tiny():
    """(tokenizer, model): MiniLM's fast tokenizer and a small random BERT classifier with two labels."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from aml.core.text import minilm_path

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
    )
    return tokenizer, BertForSequenceClassification(config).eval()


@pytest.fixture(scope="module")
def exported(tiny):
    tokenizer, model = tiny
    return onnx.export(model, tokenizer, 32, TEXTS)


def torch_proba(tiny, texts, max_length=32):
    tokenizer, model = tiny
    enc = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    return torch.softmax(logits, dim=1).numpy()


def test_export_equals_torch_within_the_tolerance(exported, tiny):
    assert exported.n_verified == len(TEXTS)
    assert 0 <= exported.max_abs_diff <= onnx.TOLERANCE
    more = ["Meeting moved to 3pm, room 2.14", "Use 730215 to sign in", "Hi Mum, this is my new number"]
    np.testing.assert_allclose(exported.predict_proba(more), torch_proba(tiny, more), rtol=0, atol=onnx.TOLERANCE)
    assert exported.classes_.tolist() == [0, 1]
    assert len(exported.encode(["word " * 200])[0]) == 32  # truncated, special tokens included


def test_batching_and_order_do_not_change_the_result(exported):
    texts = TEXTS * 3
    batched = exported.predict_proba(texts)
    single = np.vstack([exported.predict_proba([t]) for t in texts])
    np.testing.assert_allclose(batched, single, rtol=0, atol=onnx.TOLERANCE)
    small = pickle.loads(pickle.dumps(exported))
    small.batch_size = 2
    np.testing.assert_allclose(small.predict_proba(texts), batched, rtol=0, atol=onnx.TOLERANCE)
    assert exported.predict(texts).tolist() == batched.argmax(axis=1).tolist()


def test_export_refuses_a_graph_that_differs_from_the_reference(tiny):
    tokenizer, model = tiny

    class Other:
        def predict_proba(self, texts):
            return np.tile([0.5, 0.5], (len(texts), 1)) + np.array([[0.3, -0.3]])

    with pytest.raises(onnx.ExportMismatch, match="differs from the torch model"):
        onnx.export(model, tokenizer, 32, TEXTS, reference=Other())


def test_export_estimator_uses_the_estimator_parts_and_checks_against_it(tiny):
    tokenizer, model = tiny

    class Fitted:
        def __init__(self):
            self.model, self.tokenizer, self.max_length, self.classes_ = model, tokenizer, 16, np.array([0, 1])

        def predict_proba(self, texts):
            return torch_proba(tiny, list(texts), max_length=16)

    clf = onnx.export_estimator(Fitted(), TEXTS)
    assert clf.max_length == 16 and clf.max_abs_diff <= onnx.TOLERANCE
    with pytest.raises(ValueError, match="no 'model'"):
        onnx.export_estimator(object(), TEXTS)


def test_servable_exports_a_torch_classifier_and_leaves_other_models_alone(tiny):
    from sklearn.dummy import DummyClassifier

    tokenizer, model = tiny

    class Fitted:
        def __init__(self):
            self.model, self.tokenizer, self.max_length, self.classes_ = model, tokenizer, 16, np.array([0, 1])

        def predict_proba(self, texts):
            return torch_proba(tiny, list(texts), max_length=16)

    fitted = Fitted()
    assert onnx.is_torch_classifier(fitted)
    served = onnx.servable(fitted, TEXTS)
    assert isinstance(served, onnx.OnnxTextClassifier) and served.n_verified == len(TEXTS)
    np.testing.assert_allclose(served.predict_proba(TEXTS), fitted.predict_proba(TEXTS), rtol=0, atol=onnx.TOLERANCE)
    assert not onnx.is_torch_classifier(served)
    other = DummyClassifier().fit([[0], [1]], [0, 1])
    assert onnx.servable(other, TEXTS) is other and onnx.servable(served, TEXTS) is served
    fitted.model = object()  # holds parts, but not a transformers model: not exported
    assert not onnx.is_torch_classifier(fitted) and onnx.servable(fitted, TEXTS) is fitted


def test_export_refuses_no_samples_and_a_slow_tokenizer(tiny):
    tokenizer, model = tiny
    with pytest.raises(ValueError, match="sample texts"):
        onnx.export(model, tokenizer, 32, [])

    class Slow:
        is_fast = False

    with pytest.raises(ValueError, match="not a fast tokenizer"):
        onnx.export(model, Slow(), 32, TEXTS)


def test_bad_input_and_bad_construction(exported):
    assert exported.predict_proba([]).shape == (0, 2)
    with pytest.raises(ValueError, match="string object"):
        exported.predict_proba("one text")
    with pytest.raises(TypeError, match="must be a str"):
        exported.predict_proba([b"bytes"])
    with pytest.raises(ValueError, match="onnx_model"):
        onnx.OnnxTextClassifier(b"", "{}", 32)
    with pytest.raises(ValueError, match="max_length"):
        onnx.OnnxTextClassifier(b"x", "{}", 1)


def test_a_corrupt_graph_fails_when_it_first_scores(exported):
    broken = pickle.loads(pickle.dumps(exported))
    broken.onnx_model = b"not an onnx graph"
    with pytest.raises(Exception, match="(?i)protobuf|parse|load"):
        broken.predict_proba(["hello"])


def test_the_pickled_classifier_scores_without_torch_or_transformers(exported, tmp_path):
    path = tmp_path / "clf.pkl"
    path.write_bytes(pickle.dumps(exported))
    expected = exported.predict_proba(TEXTS[:2])
    code = textwrap.dedent(
        f"""
        import pickle, sys, json
        clf = pickle.loads(open({str(path)!r}, "rb").read())
        p = clf.predict_proba({TEXTS[:2]!r})
        heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
        print(json.dumps({{"p": p.tolist(), "heavy": heavy}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    import json

    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    np.testing.assert_allclose(result["p"], expected, rtol=0, atol=1e-12)
