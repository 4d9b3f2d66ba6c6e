"""Seed data shipped with the matters service (a package so the YAML is installed with it)."""
