"""The one line a failure is shown as."""

from acton_pipelines.errors import MAX_CAUSE_CHARS, one_line


def test_one_line_keeps_the_first_line_masks_passwords_and_stays_short() -> None:
    assert one_line("\n  first  \n\nsecond\nthird\n") == "first (+2 more lines)"
    assert one_line("only") == "only"
    # A heading that announces a list keeps the list's first entry.
    assert one_line("The mapping has 2 problems:\n a: bad\n b: worse") == (
        "The mapping has 2 problems: a: bad (+1 more line)"
    )
    assert one_line("could not connect to postgresql://acton:hunter2@db:5432/wh") == (
        "could not connect to postgresql://acton:***@db:5432/wh"
    )
    long = one_line("x" * 1000)
    assert len(long) == MAX_CAUSE_CHARS and long.endswith("…")
