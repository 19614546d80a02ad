"""Federated cohort queries evaluated at the site (the fedquery job): counts and survival, floored."""
