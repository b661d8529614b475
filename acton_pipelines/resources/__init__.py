"""Dagster resources: the CRM and the warehouse."""
