"""Operations: what runs the spam filter in production, apart from the tooling that tests it (``aml.devtools``).

The continuous-delivery step run by the project's post-receive hook, the container engine driver, and the team-scale
stack (PostgreSQL, nginx, MLflow server, Spark standalone cluster) live here: they are used by people and hooks
operating the system, not only by the test suite.
"""
