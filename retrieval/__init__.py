"""Answering questions from the index: retriever (hybrid/vector/text, filters, ACL), strictness, grounded
request builder, the Answerer port (a chat model's answerer, the offline extractive answerer) and the chat
model's answer parser, ``answer_question``, an Azure OpenAI On-Your-Data compatible facade and HTTP server,
and the chat web page it serves (``retrieval.webapp``, static files in ``retrieval/web/``; original documents
via ``retrieval.documents``).

Entry points: ``retrieval.retriever.Retriever``, ``retrieval.answer.answer_question``,
``retrieval.prompt.build_grounded_request``, ``retrieval.answerer.Answerer``, ``retrieval.citations.parse_citations``,
``retrieval.oyd.OnYourDataFacade``, ``retrieval.server.create_app``. Nothing heavy is imported here.
"""
