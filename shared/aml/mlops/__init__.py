"""MLOps tools, generic: git/DVC data versions (:mod:`~aml.mlops.versioning`) and MLflow tracking and registry
(:mod:`~aml.mlops.tracking`). They take the function or the data they act on and never import the spam filter."""
