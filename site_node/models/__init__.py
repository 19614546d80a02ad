"""Models at the site: pulled from the hub's registry, added from a file, or trained locally.

Every model version is a weights file under ``<home>/models/<name>/<version>/`` with its card, and
a row of ``site_model`` holding its SHA-256; inference and evaluation refuse a model whose file no
longer matches. Nothing here imports torch: loading the network is in :mod:`site_node.inference`.
"""
