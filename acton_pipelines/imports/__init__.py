"""Act-On-side changes that arrive as CSV files in the imports folder (``ACTON_IMPORTS_DIR``).

A file's name says its kind (:mod:`.kinds`); it is read with the ``csv`` module
(:mod:`.csv_table`), validated as a whole (:mod:`.validation`) and applied in one transaction
(:mod:`.apply`), or rejected with every problem listed. :mod:`acton_pipelines.imports.build`
processes a folder.
"""
