"""Production provisioning: the NVFlare project template, its renderer and ``nvflare provision``.

``central-hub provision`` calls :func:`central_hub.provision.cli.provision_command`; see
``docs/deployment.md`` for which startup kit goes to which machine.
"""
