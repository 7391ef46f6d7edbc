// The page: a document (pasted, opened or dropped), read into the server's cache
// with progress (/api/prefill), then questions answered by /v1/chat/completions,
// streamed. The document opens the first user message of every request, so the
// server reuses its cached tokens and each question only costs the question.
"use strict";

const $ = (id) => document.getElementById(id);
// Small models follow a document best when it comes in the user's turn, before the question.
const DOC_OPEN = "Here is a document.\n\n<document>\n";
const DOC_CLOSE = "\n</document>\n\n";

const state = {
  model: null,
  key: sessionStorage.getItem("pytactic-key") || "",
  readText: null,      // the document text the cache holds (null: not read)
  turns: [],           // [{role, content}] of the conversation so far
  busy: null,          // the AbortController of the request in flight
};

// ---- requests --------------------------------------------------------------------

function headers(extra) {
  const h = Object.assign({}, extra);
  if (state.key) h["Authorization"] = "Bearer " + state.key;
  return h;
}

async function post(path, body, contentType, signal) {
  const res = await fetch(path, {
    method: "POST", body, signal,
    headers: headers({ "Content-Type": contentType || "application/json" }),
  });
  if (res.status === 401) {
    $("keyform").hidden = false;
    $("apikey").focus();
  }
  if (!res.ok) throw new Error(await errorText(res));
  return res;
}

async function errorText(res) {
  try {
    const j = await res.json();
    return (j.error && j.error.message) || res.statusText;
  } catch (e) {
    return res.status + " " + res.statusText;
  }
}

// Server-sent events of a fetch response, as parsed JSON (or the string "[DONE]").
async function* events(res) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data) continue;
      const item = data === "[DONE]" ? data : JSON.parse(data);
      if (item.error) throw new Error(item.error.message);
      yield item;
    }
  }
}

// ---- the document ------------------------------------------------------------------

// The messages of a request: the conversation, the document before the first question.
function messagesFor(turns) {
  const text = state.readText;
  return turns.map((t, i) => (i === 0 && text ? { role: t.role, content: DOC_OPEN + text + DOC_CLOSE + t.content } : t));
}

function setDocStatus(text) { $("docstatus").textContent = text; }

async function loadFile(file) {
  setDocStatus("Opening " + file.name + "…");
  try {
    if (/\.pdf$/i.test(file.name) || file.type === "application/pdf") {
      const res = await post("/api/extract?name=" + encodeURIComponent(file.name), file, "application/pdf");
      const j = await res.json();
      $("doc").value = j.text;
      setDocStatus(file.name + ": " + j.pages + " pages, " + j.chars.toLocaleString() + " characters");
    } else {
      $("doc").value = await file.text();
      setDocStatus(file.name + ": " + $("doc").value.length.toLocaleString() + " characters");
    }
    docChanged();
    $("read").focus();
  } catch (e) {
    setDocStatus("Could not open " + file.name + ": " + e.message);
  }
}

function docChanged() {
  if (state.readText !== null && $("doc").value !== state.readText) {
    state.readText = null;
    setDocStatus("The document changed: read it again before asking.");
  }
}

async function readDocument() {
  const text = $("doc").value;
  if (!text.trim() || state.busy) return;
  const ctl = new AbortController();
  setBusy(ctl);
  const bar = $("progress");
  bar.hidden = false;
  bar.removeAttribute("value"); // indeterminate until the first progress event
  setDocStatus("Reading…");
  const t0 = performance.now();
  try {
    state.readText = text;
    // The same tokens a first question will start with (the question left empty).
    const messages = messagesFor([{ role: "user", content: "" }]);
    const res = await post("/api/prefill", JSON.stringify({ messages }), null, ctl.signal);
    for await (const ev of events(res)) {
      if (ev.type === "progress") {
        bar.max = ev.total; bar.value = ev.done;
        setDocStatus("Reading… " + ev.done.toLocaleString() + " / " + ev.total.toLocaleString() + " tokens");
      } else if (ev.type === "ready") {
        bar.max = 1; bar.value = 1;
        const secs = ((performance.now() - t0) / 1000).toFixed(1);
        setDocStatus("Read: " + ev.tokens.toLocaleString() + " tokens in " + secs + " s" +
          (ev.cached ? " (" + ev.cached.toLocaleString() + " already cached)" : "") + ". Ask away.");
      }
    }
    $("question").focus();
  } catch (e) {
    state.readText = null;
    setDocStatus(e.name === "AbortError" ? "Reading stopped." : "Could not read: " + e.message);
  } finally {
    bar.hidden = true;
    setBusy(null);
  }
}

// ---- the conversation ---------------------------------------------------------------

function addEntry(role, text) {
  const li = document.createElement("li");
  li.className = role;
  li.textContent = text;
  $("log").appendChild(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

function setBusy(ctl) {
  state.busy = ctl;
  $("stop").disabled = !ctl;
  $("ask").disabled = !!ctl;
  $("read").disabled = !!ctl;
}

async function ask(question) {
  if (!question.trim() || state.busy) return;
  if (state.readText === null && $("doc").value.trim()) {
    await readDocument(); // the question comes with the document: read it first
    if (state.readText === null) return;
  }
  const ctl = new AbortController();
  setBusy(ctl);
  addEntry("user", question);
  const li = addEntry("assistant streaming", "");
  const text = document.createTextNode("");
  li.appendChild(text);
  const messages = messagesFor(state.turns.concat([{ role: "user", content: question }]));
  $("chatstatus").textContent = "Thinking…";
  let usage = null, finish = null;
  try {
    const res = await post("/v1/chat/completions", JSON.stringify({
      model: state.model, messages, stream: true, stream_options: { include_usage: true },
      max_tokens: Math.max(1, parseInt($("maxtokens").value, 10) || 256),
    }), null, ctl.signal);
    $("chatstatus").textContent = "Answering…";
    for await (const ch of events(res)) {
      if (ch === "[DONE]") break;
      if (ch.usage) usage = ch.usage;
      const c = ch.choices && ch.choices[0];
      if (!c) continue;
      if (c.delta && c.delta.content) {
        text.data += c.delta.content;
        li.scrollIntoView({ block: "end" });
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
  } catch (e) {
    if (e.name !== "AbortError") {
      li.classList.add("error");
      text.data += (text.data ? "\n" : "") + "Error: " + e.message;
    } else {
      finish = "stopped";
    }
  } finally {
    li.classList.remove("streaming");
    setBusy(null);
  }
  if (!li.classList.contains("error")) {
    state.turns.push({ role: "user", content: question }, { role: "assistant", content: text.data });
  }
  const meta = document.createElement("span");
  meta.className = "meta muted";
  const parts = [];
  if (usage) {
    parts.push(usage.completion_tokens + " tokens");
    const cached = (usage.prompt_tokens_details || {}).cached_tokens || 0;
    parts.push((usage.prompt_tokens - cached) + " new prompt tokens, " + cached + " reused");
  }
  if (finish) parts.push(finish);
  meta.textContent = parts.join(" · ");
  li.appendChild(meta);
  $("chatstatus").textContent = "";
  $("question").focus();
}

function startOver() {
  if (state.busy) state.busy.abort();
  state.turns = [];
  $("log").replaceChildren();
  $("chatstatus").textContent = "";
  $("question").focus();
}

// ---- wiring ---------------------------------------------------------------------------

$("file").addEventListener("change", (e) => { if (e.target.files[0]) loadFile(e.target.files[0]); e.target.value = ""; });
$("clear").addEventListener("click", () => { $("doc").value = ""; state.readText = null; setDocStatus(""); $("doc").focus(); });
$("doc").addEventListener("input", docChanged);
$("doc").addEventListener("dragover", (e) => { e.preventDefault(); $("doc").classList.add("dragover"); });
$("doc").addEventListener("dragleave", () => $("doc").classList.remove("dragover"));
$("doc").addEventListener("drop", (e) => {
  e.preventDefault();
  $("doc").classList.remove("dragover");
  const f = e.dataTransfer.files[0];
  if (f) loadFile(f);
});
$("doc").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); readDocument(); } });
$("read").addEventListener("click", readDocument);
$("reset").addEventListener("click", startOver);
$("stop").addEventListener("click", () => state.busy && state.busy.abort());
$("askform").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = $("question").value;
  $("question").value = "";
  ask(q);
});
$("question").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("askform").requestSubmit(); }
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && state.busy) state.busy.abort();
  if (e.altKey && (e.key === "n" || e.key === "N")) { e.preventDefault(); startOver(); }
  if (e.altKey && (e.key === "o" || e.key === "O")) { e.preventDefault(); $("file").click(); }
});
$("keyform").addEventListener("submit", (e) => {
  e.preventDefault();
  state.key = $("apikey").value.trim();
  sessionStorage.setItem("pytactic-key", state.key);
  $("keyform").hidden = true;
});

(async function connect() {
  try {
    const h = await (await fetch("/health")).json();
    state.model = h.model;
    $("model").textContent = h.model + " · context " + h.n_ctx.toLocaleString() + " tokens" + (h.pdf ? "" : " · no PDF (pypdf missing)");
    if (h.auth_required && !state.key) $("keyform").hidden = false;
  } catch (e) {
    $("model").textContent = "server unreachable: " + e.message;
  }
  $("doc").focus();
})();
