// ragstack demo page: a plain-JS client of the REST API (no build step, no dependencies).
"use strict";

(() => {
  const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
  const STORAGE_KEY = "ragstack-demo.collection";
  const $ = (id) => document.getElementById(id);

  // Every streamed event, for tests and debugging: {event, t (ms since page load), data, answerLength}.
  const events = [];
  window.__demoEvents = events;

  const state = { collection: null, collections: [], sources: new Map(), asking: false };

  // -- helpers -------------------------------------------------------------------------------------------

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value !== undefined && value !== null && value !== false) node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function setMessage(node, text, kind = "") {
    node.textContent = text || "";
    node.dataset.kind = kind;
  }

  /** The message of an API error body `{"error": {code, message, detail}}`, or a fallback. */
  function errorMessage(body, status) {
    const error = body && body.error;
    if (error && error.message) {
      let message = error.message;
      if (error.code === "invalid_request" && Array.isArray(error.detail) && error.detail.length) {
        message += ": " + error.detail.map((d) => `${(d.loc || []).slice(1).join(".")} ${d.msg}`.trim()).join("; ");
      }
      return message;
    }
    return status ? `request failed (HTTP ${status})` : "network error";
  }

  // -- API key: kept in this tab's sessionStorage, sent as `Authorization: Bearer` on every call -------------
  const KEY_STORAGE = "ragstack.apiKey";
  function authHeaders() {
    const key = sessionStorage.getItem(KEY_STORAGE);
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json", ...authHeaders() } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      throw new Error("network error: the server did not answer");
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (error) {
      data = null;
    }
    if (!response.ok) throw new Error(errorMessage(data, response.status));
    return data;
  }

  function plural(count, word) {
    return `${count} ${word}${count === 1 ? "" : "s"}`;
  }

  function formatMs(ms) {
    return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
  }

  // -- collections ---------------------------------------------------------------------------------------

  async function loadCollections(select) {
    const selectNode = $("collection-select");
    try {
      state.collections = await api("GET", "/collections");
    } catch (error) {
      setMessage($("collection-info"), `Could not list collections: ${error.message}`, "error");
      return;
    }
    const names = state.collections.map((c) => c.name);
    let wanted = select || state.collection || localStorage.getItem(STORAGE_KEY);
    if (!names.includes(wanted)) wanted = names[0] || null;
    selectNode.replaceChildren(
      ...state.collections.map((c) =>
        el("option", { value: c.name }, `${c.name} (${plural(c.documents, "document")}, ${plural(c.chunks, "chunk")})`),
      ),
    );
    if (!names.length) selectNode.append(el("option", { value: "", disabled: true }, "no collections yet"));
    selectNode.value = wanted || "";
    await selectCollection(wanted);
  }

  async function selectCollection(name) {
    const previous = state.collection;
    state.collection = name || null;
    if (name) localStorage.setItem(STORAGE_KEY, name);
    const info = state.collections.find((c) => c.name === name);
    setMessage(
      $("collection-info"),
      info ? `${info.name}: ${plural(info.documents, "document")}, ${plural(info.chunks, "chunk")}` :
        "Create a collection to start.",
    );
    if (name !== previous) setMessage($("documents-message"), "");
    $("upload-button").disabled = !name;
    $("ask-button").disabled = !name;
    await loadDocuments();
  }

  async function createCollection(event) {
    event.preventDefault();
    const input = $("new-collection");
    const name = input.value.trim();
    const message = $("create-message");
    if (!NAME_RE.test(name)) {
      input.setAttribute("aria-invalid", "true");
      setMessage(message, "Invalid name: use 1 to 64 letters, digits, _ or -.", "error");
      input.focus();
      return;
    }
    input.removeAttribute("aria-invalid");
    try {
      await api("POST", "/collections", { name });
    } catch (error) {
      setMessage(message, error.message, "error");
      return;
    }
    input.value = "";
    setMessage(message, `Created collection ${name}.`, "ok");
    await loadCollections(name);
  }

  // -- documents -----------------------------------------------------------------------------------------

  async function loadDocuments() {
    const list = $("documents");
    const summary = $("documents-summary");
    list.replaceChildren();
    if (!state.collection) {
      setMessage(summary, "");
      return;
    }
    const collection = state.collection;
    let page;
    try {
      page = await api("GET", `/documents?collection=${encodeURIComponent(collection)}&limit=500`);
    } catch (error) {
      setMessage(summary, `Could not list documents: ${error.message}`, "error");
      return;
    }
    if (collection !== state.collection) return; // the selection changed meanwhile
    setMessage(summary, page.total ? plural(page.total, "document") : "No documents in this collection yet.");
    for (const doc of page.documents) {
      const details = [doc.content_type, plural(doc.pages, "page"), plural(doc.chunks, "chunk")].filter(Boolean);
      list.append(
        el(
          "li",
          { dataset: { documentId: doc.document_id } },
          el("span", { class: "doc-name" }, doc.filename || doc.title || doc.document_id),
          el("span", { class: "muted doc-meta" }, details.join(" · ")),
          el(
            "button",
            {
              type: "button",
              class: "danger small",
              "aria-label": `Delete ${doc.filename || doc.document_id}`,
              onclick: () => deleteDocument(doc),
            },
            "Delete",
          ),
        ),
      );
    }
  }

  async function deleteDocument(doc) {
    const name = doc.filename || doc.document_id;
    if (!window.confirm(`Delete ${name} and all its chunks from ${state.collection}?`)) return;
    const path = `/documents/${encodeURIComponent(doc.document_id)}?collection=${encodeURIComponent(state.collection)}`;
    try {
      const result = await api("DELETE", path);
      setMessage($("documents-message"), `Deleted ${name} (${plural(result.deleted_chunks, "chunk")}).`, "ok");
    } catch (error) {
      setMessage($("documents-message"), `Could not delete ${name}: ${error.message}`, "error");
      return;
    }
    await loadCollections(state.collection);
  }

  // -- upload (one XMLHttpRequest per file, for a progress bar each) -------------------------------------

  function uploadOne(file, collection, tags, row) {
    return new Promise((resolve) => {
      const progress = row.querySelector("progress");
      const status = row.querySelector(".upload-status");
      const show = (text, kind) => {
        status.textContent = text;
        row.dataset.status = kind;
      };
      const form = new FormData();
      form.append("files", file, file.name);
      form.append("collection", collection);
      if (tags) form.append("metadata", tags); // the API names the tags field `metadata`
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/documents/upload");
      xhr.setRequestHeader("Accept", "application/json");
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) {
          progress.value = Math.round((event.loaded / event.total) * 100);
          show(`uploading ${progress.value} %`, "uploading");
        }
      };
      xhr.upload.onload = () => {
        progress.value = 100;
        show("indexing…", "indexing");
      };
      xhr.onerror = () => {
        show("failed: network error", "failed");
        resolve(null);
      };
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch (error) {
          body = null;
        }
        // 200: {files: [...]}; 413/415/422 when every file failed: the same body under error.detail.
        const files = (body && body.files) || (body && body.error && body.error.detail && body.error.detail.files);
        const result = Array.isArray(files) ? files[0] : null;
        progress.value = 100;
        if (result) {
          const counts = result.status === "failed" ? "" : ` (${plural(result.pages, "page")}, ${plural(result.chunks, "chunk")})`;
          const reason = result.error ? `: ${result.error}` : "";
          show(`${result.status}${counts}${reason}`, result.status);
        } else {
          show(`failed: ${errorMessage(body, xhr.status)}`, "failed");
        }
        resolve(result);
      };
      xhr.send(form);
    });
  }

  async function upload(event) {
    event.preventDefault();
    const input = $("upload-files");
    const message = $("upload-message");
    const files = Array.from(input.files || []);
    if (!state.collection) {
      setMessage(message, "Select or create a collection first.", "error");
      return;
    }
    if (!files.length) {
      setMessage(message, "Choose one or more files.", "error");
      input.focus();
      return;
    }
    let tags = $("upload-tags").value.trim();
    if (tags) {
      try {
        const parsed = JSON.parse(tags);
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
        tags = JSON.stringify(parsed);
      } catch (error) {
        setMessage(message, 'Tags must be a JSON object, e.g. {"team": "qa"}.', "error");
        return;
      }
    }
    const collection = state.collection;
    setMessage(message, `Uploading ${plural(files.length, "file")} into ${collection}…`);
    const list = $("uploads");
    const rows = files.map((file) => {
      const label = `${file.name} upload progress`;
      const row = el(
        "li",
        { dataset: { filename: file.name, status: "queued" } },
        el("span", { class: "upload-name" }, file.name),
        el("progress", { max: "100", value: "0", "aria-label": label }),
        el("span", { class: "upload-status" }, "queued"),
      );
      list.prepend(row);
      return row;
    });
    $("upload-button").disabled = true;
    const results = [];
    for (let i = 0; i < files.length; i++) {
      // one request at a time: the server indexes files one by one anyway, and each bar stays meaningful
      results.push(await uploadOne(files[i], collection, tags, rows[i]));
    }
    $("upload-button").disabled = false;
    input.value = "";
    const indexed = results.filter((r) => r && r.status !== "failed").length;
    setMessage(message, `${indexed} of ${plural(files.length, "file")} stored in ${collection}.`, indexed ? "ok" : "error");
    await loadCollections(collection);
  }

  // -- answer and sources --------------------------------------------------------------------------------

  /** Render answer text with every [n] of a known source as a link to that source. */
  function renderAnswer(text) {
    const node = $("answer");
    const parts = [];
    const re = /\[(\d+)\]/g;
    let last = 0;
    let match;
    while ((match = re.exec(text)) !== null) {
      if (match.index > last) parts.push(text.slice(last, match.index));
      const n = Number(match[1]);
      if (state.sources.has(n)) {
        parts.push(
          el(
            "a",
            {
              href: `#source-${n}`,
              class: "cite",
              dataset: { n: String(n) },
              "aria-label": `source ${n}`,
              onclick: (e) => {
                e.preventDefault();
                revealSource(n);
              },
            },
            `[${n}]`,
          ),
        );
      } else {
        parts.push(match[0]);
      }
      last = re.lastIndex;
    }
    if (last < text.length) parts.push(text.slice(last));
    node.replaceChildren(...parts);
  }

  function revealSource(n) {
    const item = $(`source-${n}`);
    if (!item) return;
    for (const other of document.querySelectorAll(".sources li.highlight")) other.classList.remove("highlight");
    item.classList.add("highlight");
    const details = item.querySelector("details");
    if (details) details.open = true;
    item.scrollIntoView({ behavior: "smooth", block: "nearest" });
    item.focus({ preventScroll: true });
  }

  function renderSources(sources) {
    state.sources = new Map(sources.map((s) => [s.n, s]));
    const list = $("sources");
    list.replaceChildren(
      ...sources.map((s) => {
        const where = [s.filename || s.document_id || "unknown file", s.page != null ? `page ${s.page}` : null]
          .filter(Boolean)
          .join(", ");
        return el(
          "li",
          { id: `source-${s.n}`, tabindex: "-1", dataset: { n: String(s.n), cited: String(Boolean(s.cited)) } },
          el(
            "div",
            { class: "source-head" },
            el(
              "button",
              {
                type: "button",
                class: "source-n",
                "aria-label": `Show passage ${s.n}`,
                onclick: () => revealSource(s.n),
              },
              `[${s.n}]`,
            ),
            el("span", { class: "source-where" }, where),
            s.score != null ? el("span", { class: "muted score" }, `score ${Number(s.score).toFixed(3)}`) : null,
            el("span", { class: "badge", hidden: !s.cited }, "cited"),
          ),
          el("details", {}, el("summary", {}, "Passage"), el("p", { class: "passage" }, s.text)),
        );
      }),
    );
    if (!sources.length) list.append(el("li", { class: "muted empty" }, "No passage matched."));
  }

  function markCited(numbers) {
    const cited = new Set(numbers);
    for (const item of document.querySelectorAll(".sources li[data-n]")) {
      const isCited = cited.has(Number(item.dataset.n));
      item.dataset.cited = String(isCited);
      item.querySelector(".badge").hidden = !isCited;
    }
  }

  function showTimings(t) {
    $("timings").textContent = t
      ? `retrieval ${formatMs(t.retrieval)} · generation ${formatMs(t.generation)} · total ${formatMs(t.total)}`
      : "";
  }

  function setPhase(phase, text, kind = "") {
    const status = $("ask-status");
    status.dataset.phase = phase;
    setMessage(status, text, kind);
    $("answer").setAttribute("aria-busy", String(phase === "retrieving" || phase === "streaming"));
  }

  function resetAnswer() {
    events.length = 0;
    state.sources = new Map();
    $("answer").replaceChildren();
    $("answer").dataset.refused = "false";
    $("sources").replaceChildren();
    showTimings(null);
  }

  /** Split an SSE buffer into complete `event:`/`data:` blocks; returns [blocks, rest]. */
  function parseSse(buffer) {
    const blocks = [];
    const normalized = buffer.replace(/\r\n?/g, "\n");
    const pieces = normalized.split("\n\n");
    const rest = pieces.pop();
    for (const piece of pieces) {
      let event = "message";
      const data = [];
      for (const line of piece.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let value = colon === -1 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) blocks.push({ event, data: data.join("\n") });
    }
    return [blocks, rest];
  }

  async function askStreaming(body) {
    let response;
    try {
      response = await fetch("/query/stream", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream", ...authHeaders() },
        body: JSON.stringify(body),
      });
    } catch (error) {
      setPhase("error", "Network error: the server did not answer.", "error");
      return;
    }
    if (!response.ok) {
      let data = null;
      try {
        data = await response.json();
      } catch (error) {
        data = null;
      }
      setPhase("error", errorMessage(data, response.status), "error");
      return;
    }
    setPhase("retrieving", "Retrieving passages…");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let answer = "";
    let finished = false;
    const handle = ({ event, data }) => {
      let payload;
      try {
        payload = JSON.parse(data);
      } catch (error) {
        payload = data;
      }
      if (event === "sources") {
        renderSources(payload.sources || []);
        setPhase("streaming", "Generating the answer…");
      } else if (event === "token") {
        answer += payload.text || "";
        renderAnswer(answer);
      } else if (event === "done") {
        finished = true;
        // the streamed tokens add up to the final answer; `done` repeats it whole
        answer = payload.answer || answer;
        renderAnswer(answer);
        markCited(payload.cited || []);
        showTimings(payload.timings_ms);
        $("answer").dataset.refused = String(Boolean(payload.refused));
        setPhase("done", payload.refused ? "Done: the documents do not answer this question." : "Done.", "ok");
      } else if (event === "error") {
        finished = true;
        setPhase("error", `Error: ${payload.message || "the answer failed"} (${payload.code || "error"})`, "error");
      }
      events.push({ event, t: performance.now(), data: payload, answerLength: $("answer").textContent.length });
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        const [blocks, rest] = parseSse(buffer);
        buffer = rest;
        blocks.forEach(handle);
      }
      buffer += decoder.decode();
      parseSse(buffer + "\n\n")[0].forEach(handle);
    } catch (error) {
      setPhase("error", "The connection was interrupted.", "error");
      return;
    }
    if (!finished) setPhase("error", "The stream ended before the answer was complete.", "error");
  }

  async function searchOnly(body) {
    setPhase("retrieving", "Searching…");
    let result;
    try {
      result = await api("POST", "/query", { ...body, generate: false });
    } catch (error) {
      setPhase("error", error.message, "error");
      return;
    }
    renderSources(result.sources || []);
    showTimings(result.timings_ms);
    events.push({ event: "search", t: performance.now(), data: result, answerLength: 0 });
    setPhase("done", `Search only: ${plural(result.sources.length, "passage")}.`, "ok");
  }

  async function ask(event) {
    event.preventDefault();
    if (state.asking) return;
    const question = $("question").value.trim();
    if (!question) {
      setPhase("error", "Type a question first.", "error");
      $("question").focus();
      return;
    }
    if (!state.collection) {
      setPhase("error", "Select or create a collection first.", "error");
      return;
    }
    const body = { question, collection: state.collection };
    const topK = $("top-k").value.trim();
    if (topK) body.top_k = Number(topK);
    state.asking = true;
    $("ask-button").disabled = true;
    resetAnswer();
    try {
      if ($("search-only").checked) await searchOnly(body);
      else await askStreaming(body);
    } finally {
      state.asking = false;
      $("ask-button").disabled = !state.collection;
    }
  }

  // -- wiring --------------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("collection-select").addEventListener("change", (e) => selectCollection(e.target.value));
    $("refresh-collections").addEventListener("click", () => loadCollections());
    $("key-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const key = $("api-key").value.trim();
      if (key) sessionStorage.setItem(KEY_STORAGE, key);
      else sessionStorage.removeItem(KEY_STORAGE);
      $("api-key").value = "";
      $("api-key").placeholder = key ? "key set for this tab" : "rag_… (not needed in dev mode)";
      loadCollections();
    });
    $("create-form").addEventListener("submit", createCollection);
    $("upload-form").addEventListener("submit", upload);
    $("ask-form").addEventListener("submit", ask);
    $("question").addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("ask-form").requestSubmit();
    });
    loadCollections().then(() => document.body.setAttribute("data-ready", "true"));
  });
})();
