"""Operations: what runs the spam filter in production, apart from the tooling that tests it (``aml.devtools``).

The continuous-delivery step run by the project's post-receive hook (:mod:`~aml.ops.deploy`), the container engine
driver (:mod:`~aml.ops.containers`), nginx in front of the services (:mod:`~aml.core.nginx`: the production server's
buffering proxy and the team stack's balancer), and the team-scale stack (:mod:`~aml.ops.teamstack`: PostgreSQL, an
S3 server, nginx, an MLflow server, service replicas) live here, with what they stand on: server processes on free
ports, started, polled and always stopped (:mod:`~aml.ops.procs`), and an HTTP client, a load generator and slow
clients that see every answer as it is (:mod:`~aml.ops.http_client`, :mod:`~aml.ops.slowclients`). They are used
by people and hooks operating the system, not only by the test suite, which imports them from here.
"""
