"""Deployment helpers: start/stop scripts, systemd units, readiness waits (see docs/deployment.md)."""
