"""Hub authentication: random bearer tokens bound to a role, stored hashed, revocable."""
