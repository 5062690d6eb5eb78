"""The downstream action: the messages predicted spam in a predictions file → ``actions/<run>/takedown.csv``, the
list an operator's tool takes down (batch ``POST /score`` calls it after scoring; ``project/src`` runs it alone)."""

from __future__ import annotations

from aml.mlops.datastore import DataStore
from aml.project.run import StoreRun
from aml.project.settings import StageError
from aml.spam import stages

PREDICTIONS_FILE, TAKEDOWN_FILE = "predictions.csv", "takedown.csv"
COLUMNS = (stages.ID, stages.PROPENSITY, "threshold", "model_version")


def takedown(store: DataStore, predictions: str | None = None) -> dict:
    """The messages predicted spam in ``predictions`` (a store path; default the latest predictions run) →
    ``actions/<run>/takedown.csv`` (``id``, ``propensity``, ``threshold``, ``model_version``), most likely spam
    first. Returns ``{"output", "count", "run"}``."""
    if predictions is None:
        predictions = store.run_path("predictions", store.resolve_latest("predictions"), PREDICTIONS_FILE)
    run = StoreRun(store, "actions")
    df = run.read_csv(predictions, record="predictions", dtype={stages.ID: "string"})
    missing = [
        c for c in (stages.ID, stages.PROPENSITY, stages.PREDICTION, "threshold", "model_version") if c not in df
    ]
    if missing:
        raise StageError(f"{predictions} is not a predictions file: columns {missing} are missing")
    flagged = df.loc[df[stages.PREDICTION].astype(bool), list(COLUMNS)]
    flagged = flagged.sort_values(stages.PROPENSITY, ascending=False)
    output = run.write_frame(TAKEDOWN_FILE, flagged)
    run.write_lineage({"outputs": {"takedown": output}})
    run.publish()
    return {"output": output["path"], "count": len(flagged), "run": run.id}
