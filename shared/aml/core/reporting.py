"""The shared metrics file (``build/metrics.json``) and the summary table ``make run`` prints.

Each notebook records its headline figures under one key per assignment with :func:`record_metrics`; the file is
merged, never overwritten, so results can be compared run to run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aml.core import config
from aml.core.files import write_atomic


def jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and paths to plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # numpy scalar or array
        return value.tolist()
    return value


def _deep_merge(old: dict, new: Mapping) -> dict:
    out = dict(old)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_metrics(path: str | Path | None = None) -> dict:
    """The metrics file (``path``, default :func:`aml.core.config.metrics_file`) as a dict; ``{}`` when there is
    none yet, so a first run and a fresh clone read the same way."""
    path = Path(path) if path else config.metrics_file()
    return json.loads(path.read_text()) if path.is_file() else {}


def record_metrics(key: str, values: Mapping, path: str | Path | None = None) -> Path:
    """Merge ``{key: values}`` into the metrics file (atomically) and return its path."""
    path = Path(path) if path else config.metrics_file()
    merged = _deep_merge(read_metrics(path), {key: jsonable(values)})
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(merged, indent=2, sort_keys=True)))


def flatten(metrics: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def summary_table(metrics: Mapping) -> str:
    """A plain-text table ``assignment | metric | value`` of every scalar in the metrics."""
    rows = []
    for assignment, values in sorted(metrics.items()):
        items = flatten(values) if isinstance(values, Mapping) else {"": values}
        for name, value in items.items():
            if isinstance(value, float):
                value = f"{value:.4f}"
            elif isinstance(value, list):
                value = json.dumps(value)
            rows.append((assignment, name, str(value)))
    if not rows:
        return "(no metrics recorded)"
    widths = [max(len(r[i]) for r in [("assignment", "metric", "value"), *rows]) for i in range(3)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format("assignment", "metric", "value"), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)
