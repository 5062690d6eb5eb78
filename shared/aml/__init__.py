"""AML Workspace helper library.

The notebooks of the Applied Machine Learning course tell the story; the logic lives here, in eight subpackages by
responsibility, whose imports run one way (``tests/unit/test_package.py`` checks it)::

    aml.core       configuration, logging, datasets + registry, hashing, splits, metrics + threshold rule, plots,
                   the model artefact format, the metrics file, HTML pages from templates
                                                                          (no torch, MLflow, Flask or DVC)
    aml.spam       the SMS spam filter: data, benchmark models, the course's stage functions (load_data … save_model),
                   model selection, the DVC pipeline, single-message scoring, the Flask service, behavioural tests
    aml.transfer   transfer learning with PyTorch: training loop, photos, tweets (assignment 5)
    aml.mlops      git/DVC data versions, MLflow tracking/registry, the data store, drift checks, background jobs,
                   backups; generic (never imports aml.spam)
    aml.project    the ML system of the project: its stages, the serving model, the HTTP API and its client, monitoring
    aml.ops        operations: server processes, HTTP client, containers, the CD step, the team-scale stack
    aml.deep       the library of the deep-learning lecture labs
    aml.devtools   running and testing: notebook runner (``make run``), test fixtures and switches, coverage,
                   git hooks, the wrk load generator

Importing ``aml`` or a subpackage imports none of its modules: each front end pays only for what it uses.
The version below is the package's only version number (``pyproject.toml`` reads it).
"""

__version__ = "0.2.0"
