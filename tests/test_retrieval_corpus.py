"""Shared helpers of the retrieval tests (no tests here): a small ACL'd corpus in a LocalIndex with the hashing embedder."""

from __future__ import annotations

from pathlib import Path

from indexers.records import Chunk, SearchHit, chunk_id_for

DOCS = [
    # (source_id, page, groups, title, section, content)
    ("handbook.pdf", 3, (), "Employee Handbook", "Leave",
     "Employees get 25 days of paid vacation per year. Vacation requests must be approved by the line manager two weeks in advance."),
    ("handbook.pdf", 4, (), "Employee Handbook", "Remote work",
     "Remote work is allowed up to two days per week. The IT department provides a laptop and a headset."),
    ("benefits.md", None, (), "Benefits overview", "Insurance",
     "The company pays the full premium of the dental insurance. Vision insurance is optional and paid by the employee."),
    ("salaries.xlsx", None, ("hr",), "Salary bands", "Bands",
     "Salary band L3 ranges from 60,000 to 75,000 euros. Salary band L4 ranges from 75,000 to 95,000 euros."),
    ("board-minutes.docx", 2, ("board",), "Board minutes", "Acquisitions",
     "The board approved the acquisition of Fabrikam for 12 million euros. The deal closes in the third quarter."),
    ("security.pdf", 7, ("it", "security"), "Security policy", "Passwords",
     "Passwords must have at least 14 characters. Multi-factor authentication is mandatory for remote access."),
    ("o'brien notes.txt", None, ("hr", "board"), "O'Brien's notes", "Misc",
     "Parking spaces are assigned by seniority. Electric vehicle chargers are on level -1."),
]


def make_chunks() -> list[Chunk]:
    out = []
    for i, (sid, page, groups, title, section, content) in enumerate(DOCS):
        out.append(Chunk(
            id=chunk_id_for(sid, 0, content), source_id=sid, content=content, chunk_index=0, title=title,
            url=f"https://docs.example.com/{sid}", filepath=sid, page_start=page, page_end=page, section=section,
            groups=groups, metadata={"dept": "hr" if "hr" in groups else "general", "year": 2024 + i % 2},
        ))
    return out


def build_index(directory: Path):
    """A LocalIndex over ``make_chunks()`` with the hashing embedder; returns (index, embedder)."""
    from indexers.embedders.hashing import HashingEmbedder
    from indexers.local_index import LocalIndex

    embedder = HashingEmbedder(dimensions=256)
    index = LocalIndex(directory, dimensions=embedder.dimensions, model_id=embedder.model_id)
    index.ensure()
    chunks = make_chunks()
    index.upsert(chunks, vectors=embedder.embed_documents([c.content for c in chunks]))
    return index, embedder


def hit(content: str, *, n: int = 0, score: float = 0.03, vector_score: float | None = 0.5, text_score: float | None = None,
        title: str = "Doc", page: int | None = 1, section: str = "", source_id: str | None = None) -> SearchHit:
    sid = source_id or f"doc{n}.pdf"
    chunk = Chunk(id=chunk_id_for(sid, n, content), source_id=sid, content=content, chunk_index=n, title=title,
                  filepath=sid, page_start=page, page_end=page, section=section)
    return SearchHit(chunk=chunk, score=score, vector_score=vector_score, text_score=text_score)
