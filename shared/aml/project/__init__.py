"""The spam filter as an ML system (the course project, ``project/``): the four stages over a data store and a model
store (:mod:`aml.project.system`), the HTTP service (:mod:`aml.project.api`) and its Python client
(:mod:`aml.project.client`). The one subpackage where the spam filter (:mod:`aml.spam`) and the MLOps tools
(:mod:`aml.mlops`) meet."""
