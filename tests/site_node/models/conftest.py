"""A real hub (registry, tokens, uvicorn) and seg3d weights for the pull tests."""

from tests.central_hub.conftest import hub_db_url, hub_settings, live_hub, tokens  # noqa: F401
from tests.site_node.inference.conftest import weights_file  # noqa: F401
