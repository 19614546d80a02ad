"""Site-side training: model, data, training step, device choice, job approval and the NVFlare
privacy/ledger filter. The only part of ``site_node`` that imports torch, MONAI or NVFlare."""
