"""Federated jobs at the hub: templates, runners (NVFlare simulator / Session API), API and CLI.

Nothing here imports torch, MONAI or NVFlare at import time: the runners load them lazily, so the
catalog works on a hub without the deep-learning stack.
"""
