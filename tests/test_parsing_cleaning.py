"""Unit tests of the pure helpers in pipelines.parsing.cleaning and pipelines.parsing.tables."""

from __future__ import annotations

from pipelines.parsing.cleaning import (
    dehyphenate,
    edge_line_key,
    find_repeated_edge_lines,
    heading_level_from_numbering,
    is_list_item,
    is_title_case_heading,
    join_lines,
    normalize_unicode,
    remove_repeated_edge_lines,
)
from pipelines.parsing.tables import html_table_to_markdown, markdown_table


def test_ligatures_and_spaces() -> None:
    assert normalize_unicode("e\ufb03cient \ufb02ow o\ufb00er \ufb01le \ufb04") == "efficient flow offer file ffl"
    assert normalize_unicode("a\u00a0b\u200bc\u00add") == "a bcd"
    # NFKC is not applied outside the ligature block
    assert normalize_unicode("m² ½ ™") == "m² ½ ™"


def test_dehyphenate() -> None:
    assert dehyphenate("the regu-\nlation applies") == "the regulation applies"
    assert dehyphenate("a well-\nknown fact") == "a well-known fact"
    # the document's own spelling decides
    assert dehyphenate("in-network care\nan in-\nnetwork doctor") == "in-network care\nan in-network doctor"
    assert dehyphenate("Section A-\nB") == "Section A-B"  # capitalised continuation: keep


def test_join_lines() -> None:
    assert join_lines(["First  line of", "a para-", "graph ends here."]) == "First line of a paragraph ends here."
    assert join_lines(["costs are out-of-", "pocket"], vocabulary=frozenset({"out-of-pocket"})) == "costs are out-of-pocket"


def test_repeated_edge_lines_ignore_digits() -> None:
    pages = [
        ["Contoso Handbook", f"Body about {topic}", f"More on {topic}", f"Page {i} of 5"]
        for i, topic in enumerate(["leave", "pay", "travel", "safety", "perks"], start=1)
    ]
    pages[2] = ["Contoso Handbook", "Only one line here", "Page 3 of 5"]
    drop = find_repeated_edge_lines(pages)
    assert drop[0] == {0, 3}
    assert drop[2] == {0, 2}
    cleaned = remove_repeated_edge_lines(pages)
    assert cleaned[0] == ["Body about leave", "More on leave"]
    assert edge_line_key("Page 12 of 20") == edge_line_key("page 3 of 4")


def test_repeated_edge_lines_need_most_pages() -> None:
    pages = [["Intro"] + ["text"] * 5, ["Intro"] + ["other"] * 5, ["Next"] + ["x"] * 5, ["Last"] + ["y"] * 5]
    drop = find_repeated_edge_lines([[f"{l} {i}{j}" if l in "textotherxy" else l for j, l in enumerate(p)] for i, p in enumerate(pages)])
    assert drop[0] == set()  # "Intro" on 2 of 4 pages is not "most pages"
    assert find_repeated_edge_lines([["Header", "a"], ["Header", "b"]]) == [set(), set()]  # too few pages


def test_heading_heuristics() -> None:
    assert heading_level_from_numbering("3 Benefits") == 1
    assert heading_level_from_numbering("3.2 Leave policy") == 2
    assert heading_level_from_numbering("1.2.3 Carry Over") == 3
    assert heading_level_from_numbering("1. Call your doctor first.") is None
    assert heading_level_from_numbering("2024 Annual Report") is None
    assert heading_level_from_numbering("3 apples are on the table") is None
    assert is_title_case_heading("Tips for Choosing an In-Network Provider")
    assert is_title_case_heading("SUMMARY OF YOUR COSTS")
    assert not is_title_case_heading("This is a sentence.")
    assert not is_title_case_heading("Employees must book travel early")
    assert not is_title_case_heading("Company Values:")
    assert is_list_item("• Bullet") and is_list_item("1. Step") and is_list_item("a) Option")
    assert not is_list_item("1.5 million people")


def test_markdown_table_shape() -> None:
    assert markdown_table([["A", "B"], ["1"], [], ["x|y", " 2 \n 3 "]]).splitlines() == [
        "| A | B |",
        "|---|---|",
        "| 1 |  |",
        "| x\\|y | 2 3 |",
    ]
    assert markdown_table([]) == ""


def test_html_table_colspan_and_nested() -> None:
    html = (
        "<table><tr><th colspan='2'>Plan</th><th>Cost</th></tr>"
        "<tr><td>A</td><td>B<br>C</td><td><table><tr><td>in</td></tr></table>$5</td></tr></table>"
    )
    assert html_table_to_markdown(html).splitlines() == ["| Plan | Plan | Cost |", "|---|---|---|", "| A | B C | in$5 |"]


def test_numbered_list_items_and_run_on_lines_are_not_headings() -> None:
    from pipelines.parsing.cleaning import continues_numbered_list

    # a wrapped list item that ends in "the" runs on into the next line: no heading
    assert heading_level_from_numbering("2. Familiarize yourself with the applicable laws, such as ERISA, the") is None
    assert not is_title_case_heading("Reimbursement Program for")
    assert continues_numbered_list("1. Read your plan.", "2. Familiarize yourself with the laws")
    assert continues_numbered_list("14. Director of Sales", "15. Director of Research and Development")
    assert not continues_numbered_list("1. Read your plan.", "3. Benefits")
    assert not continues_numbered_list("Some text", "2. Benefits")
    assert not continues_numbered_list("1.5 million people", "2. Benefits")
