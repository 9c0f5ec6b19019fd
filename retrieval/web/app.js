// The ondata chat page: asks through the On Your Data endpoint (streamed), shows citations and their passages.
// Plain JavaScript module, no build step, no third-party code. Text from the server is only ever inserted
// as text (textContent / createTextNode), never as HTML.

const AUTH_KEY = "ondata.auth";
const SETTINGS_KEY = "ondata.settings";
const MARKER = /\[\s*(doc\s*\d+(?:\s*,\s*doc\s*\d+)*)\s*\]/gi;
const DEFAULTS = { query_type: "vector_simple_hybrid", strictness: 3, top_n_documents: 5, in_scope: true, index_name: "" };
const REASONS = {
  null: "given to the answer",
  score: "left out: below the strictness threshold",
  rerank: "left out: beyond top_n_documents or the prompt's token budget",
};

const $ = (id) => document.getElementById(id);

const state = {
  config: null,
  auth: readSession(AUTH_KEY),
  settings: { ...DEFAULTS, ...(readSession(SETTINGS_KEY) || {}) },
  history: [],
  controller: null,
  returnFocus: null,
};

// ---------------------------------------------------------------- session storage (this tab only)

function readSession(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key) || "null");
  } catch {
    return null;
  }
}

function writeSession(key, value) {
  if (value === null) sessionStorage.removeItem(key);
  else sessionStorage.setItem(key, JSON.stringify(value));
}

// ---------------------------------------------------------------- HTTP

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function authHeaders() {
  if (!state.auth) return {};
  return state.auth.kind === "bearer" ? { Authorization: `Bearer ${state.auth.value}` } : { "api-key": state.auth.value };
}

async function errorOf(response) {
  let message = `The server answered ${response.status}.`;
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) message = body.error.message;
  } catch {
    /* not JSON */
  }
  return new HttpError(response.status, message);
}

async function request(path, { method = "GET", body, signal } = {}) {
  const headers = { ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) showSignIn(state.auth ? "Your key or token was not accepted. Sign in again." : "");
    throw error;
  }
  return response;
}

// ---------------------------------------------------------------- small DOM helpers

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function announce(text) {
  $("status").textContent = text;
}

// ---------------------------------------------------------------- sign-in and configuration

function showSignIn(message = "") {
  const dialog = $("sign-in");
  $("sign-in-error").textContent = message;
  $("sign-out").hidden = true;
  if (!dialog.open) dialog.showModal();
  $("credential").focus();
}

async function loadConfig() {
  const response = await request("/api/config");
  state.config = await response.json();
  const names = state.config.indexes;
  if (!names.includes(state.settings.index_name)) state.settings.index_name = state.config.default_index;
  const select = $("set-index");
  select.replaceChildren(...names.map((name) => el("option", { value: name, text: name })));
  select.disabled = names.length < 2;
  $("sign-out").hidden = !state.auth;
  $("sign-out").title = `Signed in as ${state.config.principal}`;
  renderSettings();
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const value = form.credential.value.trim();
  if (!value) return;
  state.auth = { kind: form.kind.value, value };
  $("sign-in-button").disabled = true;
  try {
    await loadConfig();
    writeSession(AUTH_KEY, state.auth);
    form.reset();
    $("sign-in").close();
    $("sign-out").hidden = false;
    $("question").focus();
  } catch (error) {
    state.auth = null;
    $("sign-in-error").textContent =
      error instanceof HttpError && error.status === 401 ? "That key or token was not accepted." : error.message;
  } finally {
    $("sign-in-button").disabled = false;
  }
}

function signOut() {
  writeSession(AUTH_KEY, null);
  state.auth = null;
  newChat();
  showSignIn();
}

// ---------------------------------------------------------------- settings drawer

function renderSettings() {
  const s = state.settings;
  $("set-index").value = s.index_name;
  $("set-query-type").value = s.query_type;
  $("set-strictness").value = String(s.strictness);
  $("strictness-value").textContent = String(s.strictness);
  $("set-top-n").value = String(s.top_n_documents);
  $("set-in-scope").checked = s.in_scope;
  const label = state.config ? `Index: ${s.index_name} · ${s.query_type} · strictness ${s.strictness} · top ${s.top_n_documents}` : "";
  $("index-label").textContent = label;
}

function readSettings() {
  const max = state.config ? state.config.max_top_n : 20;
  const topN = Math.min(max, Math.max(1, parseInt($("set-top-n").value, 10) || DEFAULTS.top_n_documents));
  state.settings = {
    index_name: $("set-index").value || state.settings.index_name,
    query_type: $("set-query-type").value,
    strictness: parseInt($("set-strictness").value, 10),
    top_n_documents: topN,
    in_scope: $("set-in-scope").checked,
  };
  writeSession(SETTINGS_KEY, state.settings);
  renderSettings();
}

function openSettings() {
  state.returnFocus = document.activeElement;
  renderSettings();
  $("settings").showModal();
}

// ---------------------------------------------------------------- answers: parsing the streamed text

function isAbstention(text) {
  const sentence = (state.config && state.config.abstention) || "";
  const norm = (t) => t.toLowerCase().split(/\s+/).join(" ");
  return sentence !== "" && norm(text).includes(norm(sentence).replace(/ please try another query or topic\.$/, ""));
}

function lastSentence(text) {
  const parts = text.trim().split(/(?<=[.!?])\s+(?=\S)/);
  return parts[parts.length - 1] || "";
}

// Split answer text into text and citation parts; a marker's claim is the sentence it follows.
function parseAnswer(raw, citations, streaming) {
  let text = raw;
  const prefix = state.config && state.config.extractive_prefix;
  if (prefix && text.startsWith(prefix)) text = text.slice(prefix.length).replace(/^\s+/, "");
  if (streaming) {
    const open = text.lastIndexOf("[");
    if (open >= 0 && !text.slice(open).includes("]")) text = text.slice(0, open);
  }
  const parts = [];
  const order = [];
  let last = 0;
  let claim = "";
  for (const match of text.matchAll(MARKER)) {
    const before = text.slice(last, match.index);
    if (before) parts.push({ kind: "text", text: before });
    if (before.trim()) claim = lastSentence(before);
    for (const n of match[1].match(/\d+/g).map(Number)) {
      const citation = citations[n - 1];
      if (!citation) continue;
      if (!order.includes(n)) order.push(n);
      parts.push({ kind: "cite", n, shown: order.indexOf(n) + 1, citation, claim });
    }
    last = match.index + match[0].length;
  }
  if (last < text.length) parts.push({ kind: "text", text: text.slice(last) });
  return { parts, order };
}

function snippet(text, n = 140) {
  const flat = (text || "").split(/\s+/).join(" ").trim();
  return flat.length <= n ? flat : `${flat.slice(0, n - 1)}…`;
}

function citationLabel(citation) {
  return citation.title || citation.filepath || "Untitled document";
}

// Render parts as paragraphs (blank lines), line breaks and bullet lists; citations as buttons.
function renderParts(container, parts, onCite) {
  container.replaceChildren();
  let block = null;
  let list = null;
  const newBlock = (bullet) => {
    if (bullet) {
      if (!list) {
        list = el("ul");
        container.append(list);
      }
      block = el("li");
      list.append(block);
    } else {
      list = null;
      block = el("p");
      container.append(block);
    }
  };
  const addText = (text) => {
    const lines = text.split("\n");
    lines.forEach((line, i) => {
      if (i > 0) {
        const bullet = /^\s*(?:[-*•]|\d+\.)\s+/.test(line);
        if (line.trim() === "" ) {
          block = null;
          return;
        }
        if (bullet || !block || block.tagName === "LI") newBlock(bullet);
        else block.append(el("br"));
        line = bullet ? line.replace(/^\s*(?:[-*•]|\d+\.)\s+/, "") : line;
      } else if (!block) {
        const bullet = /^\s*(?:[-*•]|\d+\.)\s+/.test(line);
        if (!line.trim()) return;
        newBlock(bullet);
        if (bullet) line = line.replace(/^\s*(?:[-*•]|\d+\.)\s+/, "");
      }
      if (line) block.append(document.createTextNode(line));
    });
  };
  for (const part of parts) {
    if (part.kind === "text") {
      addText(part.text);
    } else {
      if (!block) newBlock(false);
      const name = citationLabel(part.citation);
      block.append(
        el("button", {
          type: "button",
          class: "cite",
          "aria-label": `Source ${part.shown}: ${name}`,
          title: name,
          dataset: { n: String(part.n), chunkId: part.citation.chunk_id || "" },
          onclick: (event) => onCite(event.currentTarget, part),
        }, String(part.shown)),
      );
    }
  }
}

// ---------------------------------------------------------------- one question and its streamed answer

function addUserTurn(question) {
  $("messages").append(el("article", { class: "turn turn-user", "aria-label": "You asked" }, el("p", { text: question })));
}

function answerView() {
  const body = el("div", { class: "answer-body" });
  const notice = el("div", { class: "notice", hidden: true });
  const sources = el("div", { class: "sources", hidden: true });
  const details = el("details", { class: "details", hidden: true });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const waiting = el("p", { class: "waiting", text: "Searching the documents…" });
  const badge = el("p", { class: "badge", hidden: true });
  const article = el("article", { class: "turn turn-answer", "aria-label": "Answer" },
    el("h2", { class: "visually-hidden", text: "Answer" }), badge, waiting, notice, body, sources, details, error);
  $("messages").append(article);
  return { article, body, notice, sources, details, error, waiting, badge };
}

function renderRetrieved(view, context, indexName) {
  const docs = context.all_retrieved_documents || [];
  const intent = (() => {
    try {
      return JSON.parse(context.intent || "[]");
    } catch {
      return [];
    }
  })();
  const list = el("ol", { class: "retrieved" });
  docs.forEach((doc, i) => {
    const reason = doc.filter_reason === undefined ? null : doc.filter_reason;
    const score = typeof doc.original_search_score === "number" ? doc.original_search_score.toFixed(4) : "–";
    list.append(el("li", { class: reason ? "left-out" : "used", dataset: { filterReason: String(reason) } },
      el("button", {
        type: "button",
        class: "linklike",
        onclick: (event) => openCitation(event.currentTarget, { citation: doc, claim: "", shown: i + 1, indexName, retrieved: true }),
      }, citationLabel(doc)),
      el("span", { class: "doc-file", text: [doc.filepath, doc.page ? `page ${doc.page}` : ""].filter(Boolean).map((t) => ` · ${t}`).join("") }),
      el("span", { class: "doc-score", text: ` · score ${score}` }),
      el("span", { class: "doc-score", text: typeof doc.rerank_score === "number" ? ` · rerank ${doc.rerank_score.toFixed(2)}` : "" }),
      el("span", { class: "doc-reason", text: ` · ${REASONS[reason] || reason}` }),
      el("span", { class: "doc-snippet", text: snippet(doc.content) }),
    ));
  });
  view.details.replaceChildren(
    el("summary", { text: `Search details: ${docs.length} document${docs.length === 1 ? "" : "s"} retrieved` }),
    el("p", { class: "intent" }, "Searched for: ", el("q", { text: intent.join(" · ") || "–" })),
    docs.length ? list : el("p", { text: "The search found nothing you may see." }),
  );
  view.details.hidden = false;
}

function renderSources(view, parsed, context, indexName) {
  if (!parsed.order.length) {
    view.sources.hidden = true;
    return;
  }
  const seen = new Map();
  for (const part of parsed.parts) if (part.kind === "cite" && !seen.has(part.n)) seen.set(part.n, part);
  const items = [...seen.values()].map((part) =>
    el("li", {},
      el("button", {
        type: "button",
        class: "source-chip",
        onclick: (event) => openCitation(event.currentTarget, { ...part, indexName }),
      }, `${part.shown}. ${citationLabel(part.citation)}${part.citation.page ? `, page ${part.citation.page}` : ""}`),
    ));
  view.sources.replaceChildren(el("h3", { text: "Sources" }), el("ol", { class: "source-list" }, items));
  view.sources.hidden = false;
}

async function ask(question) {
  const settings = { ...state.settings };
  const indexName = settings.index_name;
  addUserTurn(question);
  const view = answerView();
  const messages = [...state.history, { role: "user", content: question }];
  const body = {
    messages,
    stream: true,
    data_sources: [{
      type: "azure_search",
      parameters: {
        index_name: indexName,
        query_type: settings.query_type,
        strictness: settings.strictness,
        top_n_documents: settings.top_n_documents,
        in_scope: settings.in_scope,
        include_contexts: ["citations", "intent", "all_retrieved_documents"],
      },
    }],
  };
  const started = performance.now();
  const controller = new AbortController();
  state.controller = controller;
  setBusy(true);
  view.article.dataset.strictness = String(settings.strictness);
  let text = "";
  let context = { citations: [] };
  let firstToken = null;
  const render = (streaming) => {
    const parsed = parseAnswer(text, context.citations || [], streaming);
    renderParts(view.body, parsed.parts, (button, part) => openCitation(button, { ...part, indexName }));
    return parsed;
  };
  try {
    const { deployment, api_version: version } = state.config;
    const url = `/openai/deployments/${encodeURIComponent(deployment)}/chat/completions?api-version=${encodeURIComponent(version)}`;
    const response = await request(url, { method: "POST", body, signal: controller.signal });
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let done = false;
    while (!done) {
      const chunk = await reader.read();
      if (chunk.done) break;
      buffer += decoder.decode(chunk.value, { stream: true });
      let cut;
      while (!done && (cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = event.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (!data) continue;
        if (data === "[DONE]") {
          done = true;
          break;
        }
        const payload = JSON.parse(data);
        if (payload.error) throw new HttpError(500, payload.error.message || "The answer failed.");
        const delta = (payload.choices && payload.choices[0] && payload.choices[0].delta) || {};
        if (delta.context) {
          context = delta.context;
          renderRetrieved(view, context, indexName);
        }
        if (delta.content) {
          text += delta.content;
          view.waiting.hidden = true;
          render(true);
          if (firstToken === null && view.body.textContent.trim()) {
            firstToken = performance.now() - started; // the first answer text a reader can see
            view.article.dataset.firstTokenMs = firstToken.toFixed(1);
          }
        }
      }
    }
    view.waiting.hidden = true;
    const parsed = render(false);
    view.article.dataset.totalMs = (performance.now() - started).toFixed(1);
    if (state.config.extractive) {
      view.badge.textContent = "Quoted from the documents: no language model wrote this answer; each sentence is a quote of the source it cites.";
      view.badge.hidden = false;
    }
    if (isAbstention(text)) {
      view.article.classList.add("abstained");
      view.badge.hidden = true;
      view.notice.replaceChildren(
        el("strong", { text: "No answer found." }),
        " The documents you can see do not contain this information. Try rephrasing the question",
        settings.strictness > 1 ? ", or lower the strictness in Settings." : ".",
      );
      view.notice.hidden = false;
      view.body.hidden = true;
    }
    renderSources(view, parsed, context, indexName);
    state.history = [...messages, { role: "assistant", content: text }];
    announce(isAbstention(text) ? "No answer found in the documents." : "Answer ready.");
  } catch (error) {
    view.waiting.hidden = true;
    if (error.name === "AbortError") {
      view.error.textContent = "Stopped.";
    } else {
      view.error.textContent = error.message || String(error);
    }
    view.error.hidden = false;
    if (text) render(false);
    announce("The answer failed.");
  } finally {
    if (state.controller === controller) state.controller = null;
    setBusy(false);
  }
}

function setBusy(busy) {
  $("messages").setAttribute("aria-busy", busy ? "true" : "false");
  const button = $("ask-button");
  button.textContent = busy ? "Stop" : "Ask";
  button.classList.toggle("btn-stop", busy);
  button.setAttribute("aria-label", busy ? "Stop the answer" : "Ask");
}

function newChat() {
  if (state.controller) state.controller.abort();
  state.history = [];
  $("messages").replaceChildren($("empty") || "");
  $("empty").hidden = false;
  closeCitation(false);
  $("question").value = "";
  $("question").focus();
  announce("New chat.");
}

// ---------------------------------------------------------------- the source (citation) panel

function metaRow(term, value) {
  return value === null || value === undefined || value === "" ? [] : [el("dt", { text: term }), el("dd", { text: String(value) })];
}

async function openCitation(button, part) {
  state.returnFocus = button;
  const panel = $("citation-panel");
  const citation = part.citation;
  panel.hidden = false;
  $("layout").classList.add("with-panel");
  document.querySelectorAll(".cite[aria-expanded], .source-chip[aria-expanded]").forEach((b) => b.removeAttribute("aria-expanded"));
  $("citation-title").textContent = `${part.retrieved ? "Retrieved document" : `Source ${part.shown}`}: ${citationLabel(citation)}`;
  $("citation-meta").replaceChildren();
  $("citation-actions").replaceChildren();
  $("citation-passage").replaceChildren(el("p", { class: "waiting", text: "Loading the passage…" }));
  $("citation-title").focus();
  try {
    const response = await request("/api/citation", {
      method: "POST",
      body: { index_name: part.indexName, chunk_id: citation.chunk_id, claim: part.claim || "" },
    });
    const d = await response.json();
    const page = citation.page ?? d.page;
    const span = d.page_start !== null && d.page_end !== null && d.page_end !== d.page_start ? ` (passage spans pages ${d.page_start}–${d.page_end})` : "";
    $("citation-meta").replaceChildren(
      ...metaRow("Document", d.title),
      ...metaRow("File", d.filepath),
      ...metaRow("Page", page === null || page === undefined ? null : `${page}${span}`),
      ...metaRow("Section", d.section),
    );
    $("citation-panel").dataset.page = page === null || page === undefined ? "" : String(page);
    renderPassage(d);
    renderDocumentLink(d, page);
  } catch (error) {
    $("citation-passage").replaceChildren(el("p", { class: "error", role: "alert", text: error.message }));
  }
}

function renderPassage(d) {
  const box = $("citation-passage");
  const content = d.content || "";
  if (!d.highlight) {
    box.replaceChildren(el("p", { class: "passage-text", text: content }));
    return;
  }
  const { start, end } = d.highlight;
  const mark = el("mark", { id: "cited-sentence", text: content.slice(start, end) });
  box.replaceChildren(el("p", { class: "passage-text" }, content.slice(0, start), mark, content.slice(end)));
  box.scrollTop = Math.max(0, mark.offsetTop - box.clientHeight / 3); // the cited sentence in view, the panel head too
}

function renderDocumentLink(d, page) {
  const holder = $("citation-actions");
  const doc = d.document;
  if (!doc) {
    holder.replaceChildren(el("span", { class: "hint", text: "The original document is not available here." }));
    return;
  }
  const atPage = doc.paged && page ? ` at page ${page}` : "";
  if (doc.kind === "url") {
    const href = doc.paged && page && !doc.href.includes("#") ? `${doc.href}#page=${page}` : doc.href;
    holder.replaceChildren(el("a", { class: "btn", href, target: "_blank", rel: "noopener noreferrer", text: `Open the document${atPage}` }));
    return;
  }
  const label = doc.inline ? `Open the document${atPage}` : `Download ${doc.name}`;
  holder.replaceChildren(el("button", { type: "button", class: "btn", id: "open-document", onclick: () => openDocument(doc, page) }, label));
}

async function openDocument(doc, page) {
  try {
    const response = await request(doc.href);
    const bytes = await response.blob();
    // Only types that cannot run script are opened; anything else is saved as opaque bytes.
    const inline = doc.inline && response.headers.get("content-type") === doc.content_type;
    const blob = new Blob([bytes], { type: inline ? doc.content_type.split(";")[0] : "application/octet-stream" });
    const url = URL.createObjectURL(blob);
    setTimeout(() => URL.revokeObjectURL(url), 120000);
    if (inline) {
      window.open(doc.paged && page ? `${url}#page=${page}` : url, "_blank", "noopener");
    } else {
      const a = el("a", { href: url, download: doc.name });
      document.body.append(a);
      a.click();
      a.remove();
    }
  } catch (error) {
    $("citation-actions").append(el("span", { class: "error", role: "alert", text: ` ${error.message}` }));
  }
}

function closeCitation(restoreFocus = true) {
  $("citation-panel").hidden = true;
  $("layout").classList.remove("with-panel");
  if (restoreFocus && state.returnFocus && document.contains(state.returnFocus)) state.returnFocus.focus();
}

// ---------------------------------------------------------------- wiring

function submitQuestion(event) {
  event.preventDefault();
  if (state.controller) {
    state.controller.abort();
    return;
  }
  const question = $("question").value.trim();
  if (!question || !state.config) return;
  $("question").value = "";
  $("empty").hidden = true;
  ask(question);
}

function init() {
  $("ask-form").addEventListener("submit", submitQuestion);
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!state.controller) $("ask-form").requestSubmit(); // while an answer streams, only "Stop" stops it
    }
  });
  $("new-chat").addEventListener("click", newChat);
  $("sign-out").addEventListener("click", signOut);
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-in").addEventListener("cancel", (event) => {
    if (!state.config) event.preventDefault(); // nothing works before signing in
  });
  $("open-settings").addEventListener("click", openSettings);
  $("settings-form").addEventListener("input", readSettings);
  $("settings-form").addEventListener("change", readSettings);
  $("settings").addEventListener("close", () => {
    readSettings();
    if (state.returnFocus) state.returnFocus.focus();
  });
  $("close-citation").addEventListener("click", () => closeCitation());
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("citation-panel").hidden && !document.querySelector("dialog[open]")) closeCitation();
  });
  renderSettings();
  loadConfig().then(
    () => $("question").focus(),
    (error) => {
      if (!(error instanceof HttpError && error.status === 401)) showSignIn(error.message);
    },
  );
}

init();
