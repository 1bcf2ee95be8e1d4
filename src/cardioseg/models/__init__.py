"""Models: the explicit table of factories (``registry.MODELS``) and ``factory.build_model``."""
