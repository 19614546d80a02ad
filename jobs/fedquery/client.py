"""fedquery client: the thin NVFlare Client API script each site runs (logic in site_node.query)."""

from pathlib import Path

from site_node.query.client import run_query_client

if __name__ == "__main__":
    run_query_client(Path(__file__).resolve().parent)
