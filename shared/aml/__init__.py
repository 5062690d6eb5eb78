"""AML Workspace helper library.

The notebooks of the Applied Machine Learning course tell the story; the logic lives here:

- :mod:`aml.config`      paths and environment variables (one place)
- :mod:`aml.datasets`    dataset registry, ``fetch`` with checksums, offline copies
- :mod:`aml.sms`         SMS Spam Collection: load, validate, deduplicate, split
- :mod:`aml.models`      benchmark spam models, from a keyword rule to transformer embeddings
- :mod:`aml.evaluation`  ``fit`` / ``score`` / ``evaluate`` / ``validate``, thresholds, plots
- :mod:`aml.modelstore`  save/load model artefacts with checksums
- :mod:`aml.reporting`   metrics file shared by all notebooks (``build/metrics.json``)
"""

__version__ = "0.1.0"
