"""Integrations with third-party toolkits (each optional, imported on demand)."""
