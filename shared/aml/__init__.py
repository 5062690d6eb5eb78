"""AML Workspace helper library.

The notebooks of the Applied Machine Learning course tell the story; the logic lives here, in five subpackages by
responsibility, whose imports run one way (``tests/unit/test_package.py`` checks it)::

    aml.core       configuration, logging, datasets + registry, hashing, splits, metrics + threshold rule, plots,
                   the model artefact format, the metrics file            (no torch, MLflow, Flask or DVC)
    aml.spam       the SMS spam filter: data, benchmark models, the course's stage functions (load_data … save_model),
                   model selection, the DVC pipeline, single-message scoring, the Flask service, behavioural tests
    aml.transfer   transfer learning with PyTorch: training loop, photos, tweets (assignment 5)
    aml.mlops      git/DVC data versions and MLflow tracking/registry, generic (never imports aml.spam)
    aml.devtools   notebook runner (``make run``), server processes, HTTP client and load generator, containers,
                   coverage, git hooks, test fixtures

Importing ``aml`` or a subpackage imports none of its modules: each front end pays only for what it uses.
"""

__version__ = "0.2.0"
