"""The project's front ends, one module per stage (``python -m src.<stage>`` from ``project/``) and the service
(``python -m src.app``, or ``python src/app.py`` as the course has it): each wires ``config/*.yaml`` and the
environment (:mod:`src.constructors`, :mod:`src.helpers`) to a library function of :mod:`aml.project`.

A package, so that its modules are ``src.train``, ``src.score``..., never top-level modules named ``train`` or
``score`` that would shadow anything else of that name; the tests import it from ``project/`` like any package.
"""
