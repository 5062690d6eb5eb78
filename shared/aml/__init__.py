"""AML Workspace helper library.

The notebooks of the Applied Machine Learning course tell the story; the logic lives here:

- :mod:`aml.config`      paths and environment variables (one place)
- :mod:`aml.datasets`    dataset registry, ``fetch`` with checksums, offline copies
- :mod:`aml.splits`      stratified train/validation/test positions and per-class counts, for any labels
- :mod:`aml.sms`         SMS Spam Collection: load, validate, deduplicate, split
- :mod:`aml.models`      benchmark spam models, from a keyword rule to transformer embeddings
- :mod:`aml.evaluation`  ``fit`` / ``score`` / ``evaluate`` / ``validate``, thresholds, plots
- :mod:`aml.modelstore`  save/load model artefacts with checksums
- :mod:`aml.reporting`   metrics file shared by all notebooks (``build/metrics.json``)
- :mod:`aml.notebooks`   ``make run``: execute notebooks with papermill, render HTML, print the metrics table
- :mod:`aml.spam_filter` the spam filter end to end (benchmark → select → threshold → save)
- :mod:`aml.versioning`  DVC in a scratch git repository: track, push, checkout, hashes (assignment 2)
- :mod:`aml.pipeline`    the DVC pipeline stages ``prepare`` → ``train`` → ``evaluate``
- :mod:`aml.tracking`    MLflow: tracking URI, the ``@tracked`` train function, registry aliases
- :mod:`aml.procs`       launch a server process on a free port, wait until it answers, always stop it
- :mod:`aml.serving`     model for the scoring service, HTTP client, bounded load generator
- :mod:`aml.containers`  docker/podman: build, run, wait, stop/remove
- :mod:`aml.covreport`   ``make coverage``: coverage of the assignment tests, server subprocesses included
- :mod:`aml.hooks`       ``make hooks``: install the git hooks
- :mod:`aml.training`    a PyTorch training loop: progress bars, early stopping, best checkpoint, reports (assignment 5)
- :mod:`aml.vision`      image folders, pretrained CNNs, feature-extractor vs fine-tuning, saliency (assignment 5)
- :mod:`aml.tweets`      3-class tweet sentiment: both file formats, TF-IDF baseline, transformer fine-tuning
"""

__version__ = "0.1.0"
