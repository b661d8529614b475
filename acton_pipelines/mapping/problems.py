"""A problem found in the mapping, and the error that carries all of them.

Every problem names the file, the entry and the line, and its message says what is wrong and
how to fix it, so a data engineer can correct ``mapping_config/`` without reading a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from acton_pipelines.errors import UserError


@dataclass(frozen=True)
class MappingProblem:
    """One thing wrong with the mapping.

    ``file`` is the file name (``contact_mapping.yaml``), ``entry`` the entry inside it
    (``custom_fields[2] "Renewal Date"``, empty for the whole file), ``line`` its 1-based line
    (``None`` when it has no single place, e.g. a missing file).
    """

    file: str
    entry: str
    line: int | None
    message: str

    @classmethod
    def at(cls, origin: tuple[str, str, int | None], name: str, message: str) -> MappingProblem:
        """A problem at a model's ``origin`` (file, entry, line), labelled with its name."""
        file, entry, line = origin
        return cls(file, entry_label(entry, name), line, message)

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}, line {self.line}"
        return (
            f"{where}: {self.entry}: {self.message}" if self.entry else f"{where}: {self.message}"
        )


class MappingError(UserError):
    """The mapping cannot be used; ``problems`` lists every reason, ``str()`` one per line."""

    def __init__(self, problems: Sequence[MappingProblem], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        # The constructor's arguments, so the error survives pickling between processes.
        super().__init__(self.problems, source)

    def __str__(self) -> str:
        count = len(self.problems)
        where = f" in {self.source}" if self.source else ""
        header = f"The mapping{where} has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([header, *(str(p) for p in self.problems)])


def entry_label(entry: str, name: object) -> str:
    """``custom_fields[2]`` + ``Renewal Date`` -> ``custom_fields[2] "Renewal Date"``."""
    if isinstance(name, str) and name:
        return f'{entry} "{name}"' if entry else f'"{name}"'
    return entry


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate the user most likely meant: same name in other casing, else a near miss."""
    options = list(dict.fromkeys(candidates))
    by_lower = {c.lower(): c for c in options}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    # Compare case-insensitively: 'renewal_dt__c' is as close to 'Renewal_Date__c' as it looks.
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[match[0]] if match else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` for the closest candidate, or an empty string."""
    match = closest(word, candidates)
    return f" (did you mean '{match}'?)" if match is not None and match != word else ""
