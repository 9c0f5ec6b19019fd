"""The chat page in a real headless Chromium (Playwright), against `ondata serve`'s app over the sample PDFs.

One browser session, one small index (two sample PDFs, embedded with the real MiniLM model,
loaded once). The test signs in with the API key, asks a sample question and waits for the streamed
answer (measuring when the first token shows), opens a citation and checks the highlighted sentence
and its page against the index, opens the document at that page, switches strictness in the
settings drawer, asks a follow-up (history sent, query rewritten), sees an abstention said plainly,
and starts a new chat; screenshots at 1280 and 390 px go to the test artifacts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.browser import artifacts_dir, report_line, serve_in_thread

pytestmark = pytest.mark.slow

DOCS = Path(__file__).resolve().parents[1] / "data" / "samples" / "docs"
KEY = "browser-test-key"
QUESTION = "How many days a year can I work from another country?"
FOLLOW_UP = "How far in advance must I request it?"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not (DOCS / "employee_handbook.pdf").is_file():
        pytest.skip("the sample corpus (data/samples/docs) is not there")
    from ondata.settings import Settings
    from ondata.wiring import build_answerer, build_embedder, build_index
    from pipelines.ingest import ingest
    from pipelines.sources.local import LocalFolderSource
    from retrieval.documents import DocumentFiles
    from retrieval.oyd import OnYourDataFacade
    from retrieval.retriever import Retriever
    from retrieval.server import create_app

    settings = Settings(index_dir=tmp_path_factory.mktemp("page-index"), embedder="local")
    embedder = build_embedder(settings)
    index = build_index(settings, embedder)
    report = ingest(LocalFolderSource(DOCS, include=("employee_handbook.pdf", "fy2025_budget_summary.pdf")),
                    index=index, embedder=embedder)
    assert not report.failed
    retriever = Retriever(index, embedder)
    facade = OnYourDataFacade({"samples": retriever}, build_answerer(settings, embedder=embedder))
    app = create_app(facade, api_key=KEY, page=True, index_names=["samples"], documents=DocumentFiles.under(DOCS))
    with serve_in_thread(app) as url:
        # "with the model already loaded": one request through the API before the page asks
        warm = httpx.post(f"{url}/openai/deployments/ondata/chat/completions?api-version=2024-10-21",
                          headers={"api-key": KEY}, timeout=60, json={
                              "messages": [{"role": "user", "content": "vacation days"}],
                              "data_sources": [{"type": "azure_search", "parameters": {"index_name": "samples"}}]})
        assert warm.status_code == 200, warm.text
        yield {"url": url, "index": index}
    index.close()


def page_of_sentence(index, sentence: str) -> int:
    """The page the index records for the sentence (independently of the page's code)."""
    for chunk in index.get_chunks([c.id for c in _all_chunks(index)]):
        at = " ".join(chunk.content.split()).find(" ".join(sentence.split()))
        if at >= 0:
            # map the offset in the whitespace-collapsed text back to the chunk's own text
            words_before = len(" ".join(chunk.content.split())[:at].split())
            offset = [m.start() for m in re.finditer(r"\S+", chunk.content)][words_before]
            return chunk.page_at(offset)
    raise AssertionError(f"no chunk holds {sentence!r}")


def _all_chunks(index):
    import sqlite3

    con = sqlite3.connect(f"file:{index.sqlite_path}?mode=ro", uri=True)
    try:
        return [type("Row", (), {"id": i}) for (i,) in con.execute("SELECT id FROM chunks")]
    finally:
        con.close()


def wait_for_answer(page, n: int):
    page.wait_for_selector(f".turn-answer >> nth={n - 1}", state="attached")
    page.wait_for_function("n => document.querySelectorAll('.turn-answer')[n - 1]?.dataset.totalMs", arg=n, timeout=30_000)
    return page.locator(".turn-answer").nth(n - 1)


def test_chat_page_end_to_end(browser, site):
    out = artifacts_dir()
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    try:
        page.goto(site["url"] + "/")

        # ---- sign in (the key is kept in sessionStorage, sent as the api-key header)
        dialog = page.locator("#sign-in")
        dialog.wait_for(state="visible")
        problems.clear()  # the page's first /api/config is refused with 401 until signed in: expected
        assert page.locator("#sign-in-error").inner_text() == ""  # a first visit is not an error
        page.screenshot(path=str(out / "sign-in-1280.png"))
        page.get_by_label("Key or token").fill("not-the-key")
        page.get_by_role("button", name="Sign in").click()
        page.locator("#sign-in-error").filter(has_text="not accepted").wait_for()
        page.get_by_label("Key or token").fill(KEY)
        page.keyboard.press("Enter")
        dialog.wait_for(state="hidden")
        assert page.evaluate("JSON.parse(sessionStorage.getItem('ondata.auth')).value") == KEY
        assert page.evaluate("localStorage.length") == 0
        problems.clear()

        # ---- ask by keyboard; the answer streams in
        question = page.get_by_role("textbox", name="Your question")
        question.fill(QUESTION)
        with page.expect_request(re.compile(r"/openai/deployments/.+/chat/completions\?api-version=")) as asked:
            question.press("Enter")
        body = json.loads(asked.value.post_data)
        assert body["stream"] is True and asked.value.headers["api-key"] == KEY
        params = body["data_sources"][0]["parameters"]
        assert params["index_name"] == "samples" and params["strictness"] == 3
        assert "all_retrieved_documents" in params["include_contexts"]
        answer = wait_for_answer(page, 1)
        first_ms = float(answer.get_attribute("data-first-token-ms"))
        total_ms = float(answer.get_attribute("data-total-ms"))
        report_line(f"chat page: first streamed token visible {first_ms:.0f} ms after asking "
                    f"(whole answer {total_ms:.0f} ms; sample PDFs, MiniLM loaded, extractive, headless Chromium)")
        (out / "chat-page-timings.json").write_text(json.dumps({"first_token_ms": first_ms, "total_ms": total_ms}))
        text = answer.locator(".answer-body").inner_text()
        assert "20 working days" in text
        assert "no language model" in answer.locator(".badge").inner_text()  # an extractive answer says it quotes
        assert answer.locator(".sources .source-chip").count() >= 1
        details = answer.locator("details.details")
        details.locator("summary").click()
        reasons = details.locator(".retrieved li").evaluate_all("els => els.map(e => e.dataset.filterReason)")
        assert "null" in reasons and len(reasons) >= 2  # every hit, with its filter_reason

        # ---- open the first citation: the cited sentence is highlighted, with its page
        cite = answer.locator(".answer-body .cite").first
        cite.click()
        panel = page.locator("#citation-panel")
        mark = panel.locator("mark")
        mark.wait_for()
        quoted = mark.inner_text()
        assert "20 working days" in quoted
        assert " ".join(quoted.split()).rstrip(".") in " ".join(text.split())  # the answer quotes the passage
        expected_page = page_of_sentence(site["index"], quoted)
        assert panel.get_attribute("data-page") == str(expected_page)
        assert f"{expected_page}" in panel.locator("#citation-meta").inner_text()
        assert "employee_handbook.pdf" in panel.locator("#citation-meta").inner_text()
        page.screenshot(path=str(out / "chat-1280.png"))

        # ---- open the original document at that page (fetched with the key, opened as a PDF blob)
        with page.expect_response(re.compile(r"/documents/")) as doc_response, context.expect_page() as popup:
            panel.get_by_role("button", name=re.compile(rf"Open the document at page {expected_page}")).click()
        assert doc_response.value.status == 200
        assert doc_response.value.headers["content-type"] == "application/pdf"
        assert doc_response.value.headers["x-content-type-options"] == "nosniff"
        assert re.fullmatch(rf"blob:{re.escape(site['url'])}/[0-9a-f-]+#page={expected_page}", popup.value.url)
        popup.value.close()

        # ---- Escape closes the panel and gives the focus back to the citation
        page.keyboard.press("Escape")
        panel.wait_for(state="hidden")
        assert page.evaluate("document.activeElement.classList.contains('cite')")

        # ---- settings drawer: switch strictness, by keyboard
        page.get_by_role("button", name="Settings").click()
        strictness = page.get_by_label(re.compile("Strictness"))
        strictness.focus()
        page.keyboard.press("End")
        assert page.locator("#strictness-value").inner_text() == "5"
        page.screenshot(path=str(out / "settings-1280.png"))
        page.get_by_role("button", name="Done").click()
        assert "strictness 5" in page.locator("#index-label").inner_text()

        # ---- a follow-up: the history goes with it, the search query is rewritten
        question.fill(FOLLOW_UP)
        with page.expect_request(re.compile(r"/chat/completions")) as asked:
            page.get_by_role("button", name="Ask").click()
        body = json.loads(asked.value.post_data)
        assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
        assert body["data_sources"][0]["parameters"]["strictness"] == 5
        second = wait_for_answer(page, 2)
        assert second.get_attribute("data-strictness") == "5"
        intent = second.locator(".intent q").text_content()
        assert intent != FOLLOW_UP and "country" in intent.lower()
        assert "four weeks" in second.locator(".answer-body").inner_text()

        # ---- an unanswerable question is said so plainly
        question.fill("Who won the football world cup in 1966?")
        question.press("Enter")
        third = wait_for_answer(page, 3)
        assert "No answer found" in third.locator(".notice").inner_text()
        assert third.locator(".answer-body").is_hidden()

        # ---- the phone size: still readable, the panel covers the screen and can be closed
        page.set_viewport_size({"width": 390, "height": 844})
        second.scroll_into_view_if_needed()
        page.screenshot(path=str(out / "chat-390.png"))
        second.locator(".answer-body .cite").first.click()
        panel.locator("mark").wait_for()
        box = panel.bounding_box()
        assert box["width"] == 390 and page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(out / "citation-390.png"))
        page.get_by_role("button", name="Close the source panel").click()
        panel.wait_for(state="hidden")

        # ---- new chat
        page.get_by_role("button", name="New chat").click()
        assert page.locator(".turn").count() == 0
        report_line(f"chat page screenshots: {out / 'chat-1280.png'}, {out / 'chat-390.png'}, {out / 'citation-390.png'}")
        assert problems == []
    finally:
        context.close()
