"""The local demo: the whole platform on embedded defaults (``make demo`` / ``python -m infra.demo``)."""
