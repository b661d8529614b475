"""Dagster assets, grouped by domain."""
