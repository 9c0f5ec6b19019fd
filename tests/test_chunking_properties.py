"""Property tests of pipelines.chunking (hypothesis): size limit, coverage in order, whole sentences, ids."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexers.records import PAGE_OFFSETS_KEY
from indexers.tokens import count_tokens
from pipelines.chunking import ChunkingConfig, chunk_document
from pipelines.records import Element, ParsedDocument, SourceItem

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FIRST = ["Alpha", "Bravo", "Émile", "Zoë", "Our", "The", "Seven", "Quartz", "Über", "Yes"]
WORDS = [
    "data", "index", "vector", "naïve", "café", "table", "river", "numbers", "3.5", "2024", "x-ray",
    "e-mail", "über", "日本語", "🙂", "(note)", "value,", "straße", "μέτρο", "ok", "tokens", "Paris",
]
ENDS = [".", "!", "?", '."']

ITEM = SourceItem(id="src/doc.txt", version="v1", name="doc.txt", groups=("g",), metadata={"k": 1})


@st.composite
def sentences(draw) -> str:
    words = [draw(st.sampled_from(FIRST))] + draw(st.lists(st.sampled_from(WORDS), min_size=0, max_size=40))
    return " ".join(words) + draw(st.sampled_from(ENDS))


@dataclass
class GenDoc:
    doc: ParsedDocument
    atoms: list[tuple[int, int]]  # spans in doc.text that must never be cut (sentences, rows, headings)


@st.composite
def documents(draw) -> GenDoc:
    """A document of headings, paragraphs, lists and Markdown tables, with the spans of its sentences."""
    elements: list[Element] = []
    atoms: list[tuple[int, int]] = []
    pos = 0
    page = draw(st.sampled_from([None, 1]))
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["title", "text", "text", "list", "table"]))
        local: list[tuple[int, int]] = []
        if kind == "title":
            text = draw(sentences()).rstrip('.!?"')
            local.append((0, len(text)))
            level = draw(st.integers(1, 3))
        elif kind == "text":
            parts = draw(st.lists(sentences(), min_size=1, max_size=8))
            text, off = "", 0
            for k, s in enumerate(parts):
                if k:
                    text += " "
                    off += 1
                local.append((off, off + len(s)))
                text += s
                off += len(s)
            level = None
        elif kind == "list":
            lines = draw(st.lists(sentences(), min_size=1, max_size=6))
            text, off = "", 0
            for k, s in enumerate(lines):
                line = "- " + s
                if k:
                    text += "\n"
                    off += 1
                local.append((off, off + len(line)))
                text += line
                off += len(line)
            level = None
        else:
            n_rows = draw(st.integers(1, 30))
            cells = draw(st.lists(st.sampled_from(WORDS), min_size=2, max_size=2))
            rows = [f"| {cells[0]} {r} | {cells[1]} |" for r in range(n_rows)]
            text = "\n".join(["| A | B |", "|---|---|", *rows])
            off = len("| A | B |\n|---|---|\n")
            for r in rows:
                local.append((off, off + len(r)))
                off += len(r) + 1
            level = None
        if page is not None:
            page += draw(st.integers(0, 1))
        elements.append(Element(kind, text, page=page, level=level))  # type: ignore[arg-type]
        atoms.extend((pos + a, pos + b) for a, b in local)
        pos += len(text) + 2
    return GenDoc(ParsedDocument(source_id=ITEM.id, title="T", elements=tuple(elements)), atoms)


@st.composite
def configs(draw) -> ChunkingConfig:
    size = draw(st.integers(16, 160))
    return ChunkingConfig(chunk_size=size, overlap=draw(st.integers(0, (size - 1) // 2)))


def check_structure(doc: ParsedDocument, chunks, cfg: ChunkingConfig) -> None:
    text = doc.text
    n = len(chunks)
    assert len({c.id for c in chunks}) == n
    for k, c in enumerate(chunks):
        assert c.chunk_index == k and c.source_chunks == n
        user_meta = {k: v for k, v in c.metadata.items() if k != PAGE_OFFSETS_KEY}
        assert c.source_id == ITEM.id and c.groups == ("g",) and user_meta == {"k": 1}
        for offset, page in c.metadata.get(PAGE_OFFSETS_KEY, ()):
            assert 0 <= offset <= len(c.content) and c.page_at(offset) == page
            assert c.page_start <= page <= c.page_end
        assert count_tokens(c.content, encoding=cfg.encoding) <= cfg.chunk_size
        span = text[c.char_start:c.char_end]
        assert span and span == span.strip()
        if c.content != span:  # a continued table: header + separator rows, then the span
            head = c.content[: len(c.content) - len(span)]
            assert c.content.endswith(span) and head.endswith("\n") and head.count("\n") == 2
    for a, b in zip(chunks, chunks[1:]):  # in order
        assert a.char_start <= b.char_start and a.char_end < b.char_end
    # the chunks cover every non-blank character of the document
    covered = 0
    for c in chunks:
        assert text[covered:c.char_start].strip() == ""
        covered = max(covered, c.char_end)
    assert text[covered:].strip() == ""


@SETTINGS
@given(gen=documents(), cfg=configs())
def test_chunks_fit_cover_in_order_and_never_cut_a_fitting_sentence(gen: GenDoc, cfg: ChunkingConfig):
    doc = gen.doc
    chunks = chunk_document(doc, ITEM, config=cfg)
    if not doc.text.strip():
        assert chunks == []
        return
    check_structure(doc, chunks, cfg)
    text = doc.text
    last_home = -1
    for a, b in gen.atoms:
        if count_tokens(text[a:b]) > cfg.chunk_size:
            continue  # may be cut as a last resort
        homes = [k for k, c in enumerate(chunks) if c.char_start <= a and b <= c.char_end]
        assert homes, f"sentence {text[a:b]!r} was cut"
        assert homes[0] >= last_home  # sentences appear in order
        last_home = homes[0]
        assert text[a:b] in chunks[homes[0]].content


@SETTINGS
@given(
    texts=st.lists(
        st.tuples(st.sampled_from(["title", "text", "list", "table"]), st.text(max_size=400)), max_size=8
    ),
    cfg=configs(),
)
def test_arbitrary_text_never_breaks_the_invariants(texts, cfg: ChunkingConfig):
    doc = ParsedDocument(
        source_id=ITEM.id, title="", elements=tuple(Element(k, t, level=1) for k, t in texts)  # type: ignore[arg-type]
    )
    chunks = chunk_document(doc, ITEM, config=cfg)
    if not doc.text.strip():
        assert chunks == []
    else:
        check_structure(doc, chunks, cfg)


@SETTINGS
@given(gen=documents(), cfg=configs(), extra=st.sampled_from(["zebra", "quokka", "gnu"]))
def test_ids_are_stable_and_follow_content(gen: GenDoc, cfg: ChunkingConfig, extra: str):
    doc = gen.doc
    first = chunk_document(doc, ITEM, config=cfg)
    again = chunk_document(doc, ITEM, config=cfg)
    assert [c.id for c in first] == [c.id for c in again]
    assert first == again
    if not doc.text.strip():
        return
    # append a word to the document (one the generator never uses): the last chunk changes, and with it its id
    last = doc.elements[-1]
    changed = ParsedDocument(
        source_id=doc.source_id,
        title=doc.title,
        elements=doc.elements[:-1] + (Element(last.kind, last.text + " " + extra, page=last.page, level=last.level),),
    )
    after = chunk_document(changed, ITEM, config=cfg)
    # (a word that does not fit a tiny chunk may be cut: only its tail must be in the last chunk)
    assert after[-1].content[-2:] == extra[-2:] and after[-1].content != first[-1].content
    assert after[-1].id != first[-1].id
    for a, b in zip(first, after):  # an id changes exactly when the content at that position does
        assert (a.id == b.id) == (a.content == b.content)
