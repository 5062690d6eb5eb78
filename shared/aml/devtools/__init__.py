"""Tools for running and testing the workspace: the notebook runner behind ``make run``
(:mod:`~aml.devtools.notebooks`), server processes (:mod:`~aml.devtools.procs`), an HTTP client and load generator
(:mod:`~aml.devtools.http_client`), container engines (:mod:`~aml.devtools.containers`), coverage of server
subprocesses (:mod:`~aml.devtools.covreport`), git hooks (:mod:`~aml.devtools.hooks`), shared test fixtures
(:mod:`~aml.devtools.fixtures`) and the team-scale stack on loopback: PostgreSQL, an S3 server, MLflow, service
replicas behind nginx (:mod:`~aml.devtools.teamstack`)."""
