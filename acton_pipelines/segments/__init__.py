"""Segments: the default and custom segments with explainable members.

``rules`` decides membership from a DataFrame of contacts; ``build`` writes ``segments`` and
``segment_members``; ``assets`` holds the Dagster asset.
"""
