"""The project's service serving the cascade (:mod:`aml.spam.cascade`): trained through the API as one registered
version (TF-IDF linear SVM first, all-MiniLM-L6-v2 fine-tuned for two steps of four texts and exported to ONNX
second), served with its first stage lean-compiled, ``/score`` returning the cascade's
propensities, and the fallback to the previous version when the cascade version breaks.

Flask's test client over real stores (a data store folder, a scratch MLflow registry), as ``test_api.py``; the
first 1,000 messages of the SMS collection. The fine-tune is tiny, so the transformer's figures mean nothing here:
what is tested is the path (train → export → register → load → serve → fall back), not the model's quality.
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import numpy as np
import pytest

from aml.core import datasets
from aml.mlops import registry, tracking
from aml.mlops.datastore import DataStore
from aml.project import api, system
from aml.spam import MODEL_NAME, outofdomain, sms

pytest.importorskip("onnxruntime")
pytest.importorskip("transformers")

TOKEN = "cascade-test-token-" + "c" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = {"model": "tfidf_naive_bayes", "params": {}, "max_gap": 0.1, "min_aucpr": 0.9}
#: the cascade's transformer fine-tuned for two steps of four texts of 16 tokens (the real MiniLM, the real export
#: and serving path; the figures mean nothing), its band capped at 10% of validation (fewer ONNX calls in the gate)
TINY = {"epochs": 1, "batch_size": 4, "max_length": 16, "max_steps_per_epoch": 2, "max_train": 64, "max_val": 32}
CASCADE = {"model": "tfidf_minilm_cascade", "params": {**TINY, "max_share": 0.1}}


def wait_job(client, job_id: str, timeout: float = 600.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}", headers=AUTH).json  # the token: the whole record
        if job["status"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout} s"
        time.sleep(0.2)


def train(client, body: dict) -> dict:
    started = client.post("/train", json=body, headers=AUTH)
    assert started.status_code == 202, started.json
    job = wait_job(client, started.json["job"])
    assert job["status"] == "succeeded", job
    return job["result"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Version 1 (naive Bayes) and version 2 (the cascade) trained through the API; the cascade promoted and
    serving (promoted by hand when its gate refuses it: the smoke fine-tune is not a model to judge)."""
    root = tmp_path_factory.mktemp("cascade")
    uri = tracking.new_store(root / "mlflow")
    with tracking.using(uri, experiment="test-cascade"):
        store = DataStore(root / "data")
        raw = root / sms.FILENAME
        collection = datasets.fetch("sms_spam") / sms.FILENAME
        raw.write_bytes(b"".join(collection.read_bytes().splitlines(keepends=True)[:1000]))
        system.ingest_raw(store, raw)
        app = api.create_app(store, {"train": FAST}, token=TOKEN, lock_dir=root / "locks", refresh_s=0)
        client = app.test_client()
        assert client.post("/prepare", json={}, headers=AUTH).status_code == 200
        first = train(client, {})
        cascade = train(client, CASCADE)
        if not cascade["promoted"]:
            registry.promote(MODEL_NAME, cascade["model_version"])
            assert client.post("/models/reload", headers=AUTH).status_code == 200
        yield SimpleNamespace(client=client, store=store, first=first, cascade=cascade)


def test_the_cascade_is_one_registered_version_with_an_onnx_second_stage(served):
    from aml.spam.cascade import Cascade
    from aml.spam.onnx import OnnxTextClassifier

    assert served.first["model_version"] == "1" and served.cascade["model_version"] == "2"
    assert registry.versions(MODEL_NAME) == ["2", "1"]
    model = registry.load_version(MODEL_NAME, "2")
    assert isinstance(model, Cascade) and isinstance(model.second_, OnnxTextClassifier)
    assert model.second_.max_abs_diff <= 1e-5 and model.band_ is not None
    gate = served.cascade["gate"]  # the gate reports the out-of-domain figures and compares with version 1's ham
    assert 0 <= gate["out_of_domain"]["ham_kept"] <= 1 and "out_of_domain:ham_lost" in gate["checks"]


def test_score_returns_the_cascades_propensities(served):
    client = served.client
    health = client.get("/health").json
    assert health["serving"]["version"] == "2" and not health["fallback"]
    assert health["serving"]["scorer"] == "cascade (lean first stage, OnnxTextClassifier)"
    model = registry.load_version(MODEL_NAME, "2")
    texts = outofdomain.load()["text"].tolist()[::4] + ["Ok lar... see you at lunch"]
    p1, routed = model.route(texts)
    assert routed.any() and not routed.all()  # both paths are exercised
    expected = model.predict_proba(texts)[:, 1]
    threshold = health["serving"]["threshold"]
    for text, p in zip(texts, expected, strict=True):
        body = client.post("/score", json={"text": text}).json
        assert body["model_version"] == "2"
        assert body["propensity"] == pytest.approx(p, abs=1e-9)
        assert body["prediction"] == bool(p >= threshold)
    outside = ~routed
    np.testing.assert_array_equal(expected[outside], p1[outside])  # outside the band: the first stage's
    cascade = client.get("/health").json["serving"]["cascade"]
    assert cascade["routed"] >= int(routed.sum()) and cascade["scored"] >= len(texts)
    scrape = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    found = {m: float(v) for m, v in re.findall(r'^aml_cascade_messages_total\{stage="(\w+)"\} (\S+)$', scrape, re.M)}
    assert found == {"all": cascade["scored"], "second": cascade["routed"]}, scrape[-2000:]


def test_a_broken_cascade_version_falls_back_to_the_previous_version(served):
    """Last in the module: it breaks version 2 on purpose."""
    client = served.client
    registry.corrupt_version(MODEL_NAME, "2")
    reloaded = client.post("/models/reload", headers=AUTH)
    assert reloaded.status_code == 200 and reloaded.json["fallback"]
    health = client.get("/health").json
    assert health["serving"]["version"] == "1" and health["fallback"]
    assert [f["version"] for f in health["failures"]] == ["2"]
    scored = client.post("/score", json={"text": "WINNER!! You have won a £1000 prize. Call 09061701461"}).json
    assert scored["model_version"] == "1" and 0 <= scored["propensity"] <= 1
