"""Tools for running and testing the workspace: the notebook runner behind ``make run``
(:mod:`~aml.devtools.notebooks`), coverage of server subprocesses (:mod:`~aml.devtools.covreport`), git hooks
(:mod:`~aml.devtools.hooks`), shared test fixtures (:mod:`~aml.devtools.fixtures`), the test environment's switches
(:mod:`~aml.devtools.testenv`) and the wrk load generator (:mod:`~aml.devtools.loadgen`).

What operates the system (server processes, the HTTP client, containers, the CD step, the team stack) is in
:mod:`aml.ops`; the tests use it from there."""
