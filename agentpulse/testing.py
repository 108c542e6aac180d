"""Pytest plugin for users' own tests (placeholder: fixtures land with the structure layer)."""
