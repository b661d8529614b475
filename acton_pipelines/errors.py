"""Errors a user can act on, and the one line that says what went wrong.

An error raised as a ``UserError`` already says what is wrong, where and how to fix it, so a
failed step shows its message as it is; any other error is shown with its type's name.
"""

from __future__ import annotations

import re

# A cause longer than this is cut (SQL errors quote whole statements): a line, not a page.
MAX_CAUSE_CHARS = 500

# ``scheme://user:password@host`` in a message (a database or proxy URL quoted by an error):
# the password is masked before the line reaches a log, the warehouse or a webhook.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]+):[^\s@/]+@")


class UserError(Exception):
    """An error whose message says what is wrong and how to fix it (the CRM unreachable, the
    mapping invalid, a mirror table missing, a mass deletion refused)."""


def one_line(text: str) -> str:
    """The first non-blank line of ``text``, saying how many lines it leaves out, shortened to
    ``MAX_CAUSE_CHARS`` and with any URL password masked.

    A first line ending with ":" only announces what follows ("The mapping in ... has 1
    problem:"), so the line after it is kept too: the problem itself is the point.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    first, rest = lines[0], lines[1:]
    if first.endswith(":") and rest:
        first, rest = f"{first} {rest[0]}", rest[1:]
    first = _URL_PASSWORD.sub(r"\g<head>:***@", first)
    if len(first) > MAX_CAUSE_CHARS:
        first = first[: MAX_CAUSE_CHARS - 1].rstrip() + "…"
    more = len(rest)
    if more:
        first += f" (+{more} more line{'s' if more > 1 else ''})"
    return first
