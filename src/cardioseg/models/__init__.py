"""Models: one registry of factories (see ``registry``)."""
