"""The workspace's foundations, used by every other package: configuration (:mod:`~aml.core.config`), logging
(:mod:`~aml.core.logs`), atomic file writes (:mod:`~aml.core.files`), datasets and their registry (:mod:`~aml.core.datasets`), file digests
(:mod:`~aml.core.hashing`), stratified splits (:mod:`~aml.core.splits`), metrics and the threshold rule
(:mod:`~aml.core.metrics`), plots (:mod:`~aml.core.plots`), the model artefact format (:mod:`~aml.core.modelstore`)
and the metrics file (:mod:`~aml.core.reporting`).

It imports none of torch, MLflow, Flask or DVC (a test checks it), so any front end can use it cheaply.
"""
