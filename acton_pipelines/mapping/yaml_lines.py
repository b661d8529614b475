"""YAML parsing that remembers where every mapping and key came from.

Problems must point at a line of the user's file, so mappings are loaded as ``LineDict``: a
plain ``dict`` that also knows its own line and the line of each key. Repeated keys, which
PyYAML would silently resolve to the last one, are recorded so they can be reported.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode


class LineDict(dict[Any, Any]):
    """A YAML mapping with ``line`` (1-based, where it starts) and ``key_lines`` per key."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        """Line of ``key`` if present, else of the mapping itself."""
        return self.key_lines.get(key, self.line)


class _LineLoader(yaml.SafeLoader):
    """SafeLoader building ``LineDict`` mappings and recording repeated keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.repeated_keys: list[tuple[str, int]] = []


def _construct_mapping(loader: _LineLoader, node: MappingNode) -> LineDict:
    loader.flatten_mapping(node)  # resolve YAML merge keys (<<) like SafeLoader does
    data = LineDict(node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            repeated = key in data
        except TypeError as exc:  # a list or mapping used as a key
            raise yaml.constructor.ConstructorError(
                None, None, "found an unhashable key", key_node.start_mark
            ) from exc
        if repeated:
            loader.repeated_keys.append((str(key), line))
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = line
    return data


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_with_lines(text: str) -> tuple[Any, list[tuple[str, int]]]:
    """Parse ``text``; return the document (mappings as ``LineDict``) and repeated keys.

    Raises ``yaml.YAMLError`` on a syntax error (its ``problem_mark`` holds the place).
    """
    loader = _LineLoader(text)
    try:
        return loader.get_single_data(), loader.repeated_keys
    finally:
        loader.dispose()
