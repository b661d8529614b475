"""Scores: one integer per Act-On contact per score sheet.

``rules`` computes scores from a DataFrame of contacts; ``build`` writes ``contact_scores``;
``assets`` holds the Dagster asset.
"""
