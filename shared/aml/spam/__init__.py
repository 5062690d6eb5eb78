"""The SMS spam filter: data (:mod:`~aml.spam.sms`), benchmark models (:mod:`~aml.spam.models`), the course's stage
functions (:mod:`~aml.spam.stages`), model selection (:mod:`~aml.spam.selection`), the DVC pipeline
(:mod:`~aml.spam.pipeline`), single-message scoring (:mod:`~aml.spam.scoring`), the Flask service
(:mod:`~aml.spam.service`), behavioural tests (:mod:`~aml.spam.behaviour`) and the out-of-domain evaluation set
(:mod:`~aml.spam.outofdomain`).

Importing the package imports none of its modules: the serving image carries NumPy, scikit-learn and Flask, not
pandas or the training code.
"""

#: the name of the served spam filter, in the model store and the MLflow registry (defined once)
MODEL_NAME = "sms-spam-filter"
