"""The course's Deep Learning part: the library behind the lecture labs in ``lectures/``.

Each lecture notebook tells its story by calling the functions of one module here; every function is unit-tested in
``tests/unit/deep/``. CPU-sized on purpose: small networks on data that is offline here (scikit-learn's digits,
``make_circles``/``make_moons``, the SMS collection, the tweets, the duck/chicken photos).
"""
