"""Citation parsing: renumbering in order of first use, unknown markers removed, text outside markers kept."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from indexers.text import MARKER, marker_numbers
from retrieval.citations import StreamingMarkerFilter, parse_citations
from retrieval.records import Citation, Claim


def markers(text: str) -> list[list[int]]:
    return [marker_numbers(m.group(1)) for m in MARKER.finditer(text)]

SOURCES = [Citation(content=f"content {i}", title=f"T{i}", chunk_id=f"c{i}") for i in range(1, 6)]


def test_renumbers_in_order_of_first_use():
    p = parse_citations("A [doc3]. B [doc1]. C [doc3][doc5].", SOURCES)
    assert p.text == "A [doc1]. B [doc2]. C [doc1][doc3]."
    assert [c.chunk_id for c in p.citations] == ["c3", "c1", "c5"]
    assert p.source_numbers == (3, 1, 5)
    assert p.unknown_markers_removed == 0


def test_comma_list_and_spacing_and_case():
    p = parse_citations("A [doc2, doc4]. B [ DOC4 ].", SOURCES)
    assert p.text == "A [doc1][doc2]. B [doc2]."
    assert [c.chunk_id for c in p.citations] == ["c2", "c4"]


def test_unknown_markers_removed_and_counted():
    p = parse_citations("A [doc9]. B [doc0][doc2]. C [doc2, doc7].", SOURCES)
    assert p.text == "A . B [doc1]. C [doc1]."
    assert p.unknown_markers_removed == 3
    assert [c.chunk_id for c in p.citations] == ["c2"]


def test_no_sources_removes_everything():
    p = parse_citations("Claim [doc1].", [])
    assert p.text == "Claim ." and p.citations == () and p.unknown_markers_removed == 1


def test_non_markers_untouched():
    text = "See [docs], [doc], [1], doc1 and [doc1x]."
    assert parse_citations(text, SOURCES).text == text


_piece = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="[]"), max_size=12),
    st.integers(0, 8).map(lambda n: f"[doc{n}]"),
    st.lists(st.integers(0, 8), min_size=1, max_size=3).map(lambda ns: "[" + ", ".join(f"doc{n}" for n in ns) + "]"),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_piece, max_size=20), st.integers(0, 5))
def test_properties(pieces, n_sources):
    text = "".join(pieces)
    sources = SOURCES[:n_sources]
    p = parse_citations(text, sources)
    nums = [n for marker in markers(p.text) for n in marker]
    # bijection onto 1..k in order of first use
    first_use = list(dict.fromkeys(nums))
    assert first_use == list(range(1, len(p.citations) + 1))
    # no surviving marker points nowhere
    assert all(1 <= n <= len(p.citations) for n in nums)
    # each renumbered marker maps back to the original source it pointed at
    orig = [n for marker in markers(text) for n in marker if 1 <= n <= n_sources]
    assert [p.source_numbers[n - 1] for n in nums] == orig
    assert [c for c in p.citations] == [sources[n - 1] for n in p.source_numbers]
    # removed markers are counted
    total = sum(len(m) for m in markers(text))
    assert p.unknown_markers_removed == total - len(orig)
    # text outside markers unchanged
    assert MARKER.sub("", p.text) == MARKER.sub("", text)


@settings(max_examples=200, deadline=None)
@given(st.lists(_piece, max_size=15), st.integers(0, 5), st.lists(st.integers(1, 7), max_size=10))
def test_streaming_filter_matches_batch_removal(pieces, n_sources, cuts):
    text = "".join(pieces)
    f = StreamingMarkerFilter(n_sources)
    out, pos = [], 0
    for c in cuts:
        out.append(f.feed(text[pos:pos + c]))
        pos += c
    out.append(f.feed(text[pos:]))
    out.append(f.flush())
    streamed = "".join(out)
    expected = MARKER.sub(
        lambda m: "".join(f"[doc{n}]" for n in map(int, re.findall(r"\d+", m.group(1))) if 1 <= n <= n_sources), text
    )
    assert streamed == expected


def test_citation_page_is_where_the_cited_sentence_stands():
    """A chunk spanning pages 9-10: a claim about page 10's sentence cites page 10, not page_start."""
    from indexers.records import PAGE_OFFSETS_KEY, Chunk, SearchHit

    content = "Sick pay lasts ten weeks at full pay.\n\nPartner leave is six weeks at full pay."
    chunk = Chunk(id="c1", source_id="h.pdf", content=content, chunk_index=0, filepath="h.pdf",
                  page_start=9, page_end=10, metadata={PAGE_OFFSETS_KEY: [[0, 9], [content.index("Partner"), 10]]})
    source = Citation.from_hit(SearchHit(chunk=chunk, score=1.0))
    parsed = parse_citations("Partners get six weeks of leave at full pay [doc1].", [source])
    assert parsed.citations[0].page == 10 and parsed.citations[0].ref == "h.pdf#page=10"
    # each claim cites the page of its own sentence: one chunk, two pages, two citations
    parsed = parse_citations("Sick pay lasts ten weeks [doc1]. Partner leave is six weeks [doc1].", [source])
    assert [c.page for c in parsed.citations] == [9, 10] and {c.chunk_id for c in parsed.citations} == {"c1"}
    assert parsed.text == "Sick pay lasts ten weeks [doc1]. Partner leave is six weeks [doc2]."
    assert parsed.claims == (Claim("Sick pay lasts ten weeks.", (1,), (9,)), Claim("Partner leave is six weeks.", (2,), (10,)))
    assert parsed.citations[1].to_oyd()["page"] == 10 and parsed.citations[1].pages == "9-10"
    assert chunk.page_at(0) == 9 and chunk.page_at(len(content) - 1) == 10


def test_claims_take_the_markers_of_their_sentence():
    p = parse_citations("First fact here [doc1]. Second one [doc2][doc1]. Ok.", SOURCES)
    assert p.claims == (Claim("First fact here.", (1,), (None,)), Claim("Second one.", (2, 1), (None, None)), Claim("Ok."))
    # markers placed after the full stop belong to the sentence before
    p = parse_citations("Balance billing is covered. [doc1] That is why we partnered. [doc2][doc3] Done here.", SOURCES)
    assert [(c.text, c.sources) for c in p.claims] == [
        ("Balance billing is covered.", (1,)), ("That is why we partnered.", (2, 3)), ("Done here.", ())]
    assert parse_citations("", SOURCES).claims == () and parse_citations("[doc1]", SOURCES).claims == ()
