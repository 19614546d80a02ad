"""The site admin API (``site-node serve``): loopback only, bearer-token protected, read-only."""
