"""Schedules and sensors: the incremental and full syncs, the mapping, imports, deletion-log,
edits and failure sensors, the push after a sync, and the freshness checks."""
