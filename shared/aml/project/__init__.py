"""The spam filter as an ML system (the course project, ``project/``), one module per step of a request:
:mod:`~aml.project.settings` (stage configurations, the stores from the environment) → the stages
(:mod:`~aml.project.prepare`, :mod:`~aml.project.train`, :mod:`~aml.project.score`, :mod:`~aml.project.evaluate`,
:mod:`~aml.project.takedown`) → :mod:`~aml.project.run` (one run in the data store); :mod:`~aml.project.serving` (the
serving model, its holder, the experiment router) and :mod:`~aml.project.monitoring`; the HTTP service
(:mod:`~aml.project.api`, its :mod:`~aml.project.endpoints` table and :mod:`~aml.project.handlers`) and its Python
client (:mod:`~aml.project.client`); :mod:`~aml.project.system` names them all in one place. The one subpackage where
the spam filter (:mod:`aml.spam`) and the MLOps tools (:mod:`aml.mlops`) meet."""
