"""The hub's model registry: every finished training job publishes a versioned model with its card.

A card names the template and the digest of its code, the training sites and rounds, each site's
validation metrics and curated-dataset version, and the SHA-256 of the weights file a site pulls.
Federated evaluations of a version (the ``evaluate`` job template) are kept per site beside it.
"""
