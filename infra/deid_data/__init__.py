"""Generators of the data files shipped in ``site_node/deid/data`` (run by hand, output committed)."""
