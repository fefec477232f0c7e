// The selfalign inspector: what the proxy would inject for a message, and the answers it streams.
//
// Everything shown comes from the proxy (messages, statements, answers, error texts) and is put
// into the page as text (textContent, append(string)), never as markup. The API key lives in this
// tab's sessionStorage and travels only in the Authorization header.
"use strict";

(() => {
  const KEY_STORE = "selfalign.inspector.key";
  const $ = (id) => document.getElementById(id);
  let key = sessionStorage.getItem(KEY_STORE) || "";
  let running = null; // the AbortController of the request in flight
  let countries = new Map();

  class HttpError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  function headers(json) {
    const h = {};
    if (json) h["Content-Type"] = "application/json";
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  async function errorOf(res) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = await res.json();
      if (body && body.error && typeof body.error.message === "string") message = body.error.message;
    } catch (_) { /* not JSON: the status line says enough */ }
    return new HttpError(res.status, message);
  }

  async function getJSON(path) {
    const res = await fetch(path, { headers: headers(false), cache: "no-store" });
    if (!res.ok) throw await errorOf(res);
    return res.json();
  }

  async function postJSON(path, body, signal) {
    const res = await fetch(path, { method: "POST", headers: headers(true), body: JSON.stringify(body), signal });
    if (!res.ok) throw await errorOf(res);
    return res.json();
  }

  function setStatus(text, isError) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
  }

  function option(value, label) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    return o;
  }

  function fmt(x) {
    if (typeof x !== "number" || !isFinite(x)) return "—";
    return Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(3);
  }

  // ------------------------------------------------------------------ the key

  function askForKey(message) {
    $("app").hidden = true;
    $("forget").hidden = true;
    $("auth").hidden = false;
    $("auth-error").textContent = message || "";
    setStatus("An API key is needed.", false);
    $("key").focus();
  }

  $("auth-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    key = $("key").value.trim();
    $("key").value = "";
    if (key) sessionStorage.setItem(KEY_STORE, key);
    start();
  });

  $("forget").addEventListener("click", () => {
    if (running) running.abort();
    key = "";
    sessionStorage.removeItem(KEY_STORE);
    askForKey("");
  });

  // ---------------------------------------------------------------- the pickers

  async function start() {
    let opts, models;
    try {
      [opts, models] = await Promise.all([getJSON("/v1/selfalign/options"), getJSON("/v1/models")]);
    } catch (e) {
      if (e.status === 401) {
        if (key) sessionStorage.removeItem(KEY_STORE);
        askForKey(key ? `That key was refused: ${e.message}` : "");
        key = "";
        return;
      }
      setStatus(`Could not read the proxy's options: ${e.message}`, true);
      return;
    }
    fillPickers(opts, models);
    $("auth").hidden = true;
    $("app").hidden = false;
    $("forget").hidden = !key;
    const d = opts.default;
    const who = d ? (d.profile ? `profile ${d.profile}` : d.country ? countryName(d.country) : "none") : "none";
    setStatus(`Proxy ready · default values: ${who}`, false);
    $("message").focus();
  }

  function countryName(id) {
    return countries.has(id) ? `${countries.get(id)} (${id})` : id;
  }

  function fillPickers(opts, models) {
    const d = opts.default || {};
    const target = $("target");
    target.replaceChildren(option("off", "none (no injection)"));
    if (opts.profile.length) {
      const group = document.createElement("optgroup");
      group.label = "Registered profiles";
      for (const p of opts.profile) group.append(option("profile:" + p.id, `${p.id} — ${p.name}`));
      target.append(group);
    }
    const group = document.createElement("optgroup");
    group.label = "Countries";
    countries = new Map(opts.country.map((c) => [c.id, c.name]));
    for (const c of opts.country) group.append(option("country:" + c.id, `${c.name} (${c.id})`));
    target.append(group);
    const fallback = countries.has("USA") ? "country:USA" : target.options[target.options.length - 1].value;
    target.value = d.profile ? "profile:" + d.profile : d.country ? "country:" + d.country : fallback;
    if (!target.value) target.value = fallback;

    const language = $("language");
    language.replaceChildren(option("", "auto (the message's)"));
    for (const l of opts.language) language.append(option(l.id, `${l.name} (${l.id})`));
    language.value = d.language || "";

    const strategy = $("strategy");
    strategy.replaceChildren(...opts.strategy.map((s) => option(s.id, s.id)));
    strategy.value = d.strategy || opts.strategy[0].id;

    const k = $("k");
    k.min = opts.k.minimum;
    k.max = opts.k.maximum;
    k.value = d.k || opts.k.default;

    const format = $("format");
    format.replaceChildren(...opts.format.map((f) => option(f.id, f.id)));
    for (const [i, f] of opts.format.entries()) format.options[i].title = f.description;
    format.value = d.format || opts.format[0].id;

    const relevance = $("min-relevance");
    relevance.min = opts.min_relevance.minimum;
    relevance.max = opts.min_relevance.maximum;
    relevance.value = d.min_relevance ?? opts.min_relevance.default;

    $("model").replaceChildren(...models.data.map((m) => option(m.id, m.id)));
    syncLanguage();
  }

  // A registered profile has one language of its own.
  function syncLanguage() {
    $("language").disabled = $("target").value.startsWith("profile:") || $("target").value === "off";
  }
  $("target").addEventListener("change", syncLanguage);

  function choice() {
    const target = $("target").value;
    if (target === "off") return { country: "none" };
    const [kind, id] = [target.slice(0, target.indexOf(":")), target.slice(target.indexOf(":") + 1)];
    const out = { [kind]: id, strategy: $("strategy").value, k: Number($("k").value), format: $("format").value,
                  min_relevance: Number($("min-relevance").value) };
    if (kind === "country" && $("language").value) out.language = $("language").value;
    return out;
  }

  function describe(target) {
    if (target === "off") return "(country none)";
    if (target.startsWith("profile:")) return `(profile ${target.slice(8)})`;
    return `(${countryName(target.slice(8))})`;
  }

  // --------------------------------------------------------------- one question

  $("message").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      $("ask").requestSubmit();
    }
  });

  $("stop").addEventListener("click", () => { if (running) running.abort(); });

  $("ask").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("message").value;
    if (!text.trim()) return;
    if (running) running.abort();
    const ctl = new AbortController();
    running = ctl;
    $("stop").disabled = false;
    const selfalign = choice();
    const model = $("model").value || undefined;
    const maxTokens = parseInt($("max-tokens").value, 10);
    const base = { model, messages: [{ role: "user", content: text }], stream: true };
    if (maxTokens > 0) base.max_tokens = maxTokens;
    const compare = $("compare").checked;
    $("aligned").querySelector(".who").textContent = describe($("target").value);
    $("unaligned").hidden = !compare;
    clearDemonstrations("Looking up demonstrations…");

    const work = [
      postJSON("/v1/selfalign/demonstrations", { text, model, selfalign }, ctl.signal)
        .then((d) => { if (!ctl.signal.aborted) showDemonstrations(d); }, demonstrationsFailed),
      stream($("aligned"), { ...base, selfalign }, ctl.signal),
    ];
    if (compare) work.push(stream($("unaligned"), { ...base, selfalign: { country: "none" } }, ctl.signal));
    await Promise.allSettled(work);
    if (running === ctl) {
      running = null;
      $("stop").disabled = true;
    }
  });

  // ------------------------------------------------------------- demonstrations

  function clearDemonstrations(note) {
    $("demos").hidden = true;
    $("demos").tBodies[0].replaceChildren();
    $("relevance").hidden = true;
    $("relevance").textContent = "";
    $("system-details").hidden = true;
    $("system").textContent = "";
    $("demos-count").textContent = "";
    const el = $("demos-note");
    el.textContent = note;
    el.classList.remove("error");
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function showDemonstrations(d) {
    clearDemonstrations("");
    const rel = d.relevance;
    if (rel && typeof rel === "object") {
      const el = $("relevance");
      const parts = [rel.reason, `score ${fmt(rel.score)} vs threshold ${fmt(rel.threshold)}`].filter(Boolean);
      el.textContent = `injected: ${rel.inject ? "yes" : "no"} — ${parts.join(", ")}`;
      el.className = rel.inject ? "yes" : "no";
      el.hidden = false;
    }
    if (!d.enabled) {
      $("demos-note").textContent = "Alignment is off for this request: nothing is injected.";
      return;
    }
    const who = d.profile && !d.country ? `profile ${d.profile}` : countryName(d.country || d.profile || "");
    $("demos-count").textContent = `· ${d.data.length} for ${who}, in ${d.language || "—"}, ${d.strategy}, k=${d.k}`;
    if (!d.data.length) {
      $("demos-note").textContent = "No demonstration for this message.";
      return;
    }
    const rows = d.data.map((demo, i) => {
      const tr = document.createElement("tr");
      tr.append(cell(String(i + 1), "num"), cell(fmt(demo.score), "num"), cell(demo.probe_id || "—", "code"),
                cell(demo.category || "—"), cell(demo.language || "—", "code"), cell(demo.text, "statement"));
      return tr;
    });
    $("demos").tBodies[0].replaceChildren(...rows);
    $("demos").hidden = false;
    if (d.system_message) {
      $("system").textContent = d.system_message;
      $("system-details").hidden = false;
    }
  }

  function demonstrationsFailed(e) {
    if (e.name === "AbortError") return;
    if (e.status === 401) return askForKey(`That key was refused: ${e.message}`);
    clearDemonstrations(`Could not get the demonstrations: ${e.message}`);
    $("demos-note").classList.add("error");
  }

  // -------------------------------------------------------------- the answers

  // One Server-Sent Events stream of chat completion chunks, appended to the panel as text.
  async function stream(panel, body, signal) {
    const out = panel.querySelector(".text");
    const meta = panel.querySelector(".meta");
    out.replaceChildren();
    meta.textContent = "waiting for the model…";
    meta.classList.remove("error");
    panel.classList.add("busy");
    panel.owner = signal; // a newer question takes the panel over: this one must not write to it any more
    const mine = () => panel.owner === signal;
    const started = performance.now();
    let finish = null;
    let injected = null;
    const fail = (text) => {
      if (!mine()) return;
      meta.textContent = text;
      meta.classList.add("error");
    };
    try {
      const res = await fetch("/v1/chat/completions", {
        method: "POST", headers: headers(true), body: JSON.stringify(body), signal });
      if (!res.ok) {
        const e = await errorOf(res);
        if (e.status === 401) askForKey(`That key was refused: ${e.message}`);
        return fail(`error ${e.status}: ${e.message}`);
      }
      injected = res.headers.get("X-SelfAlign-Demonstrations");
      meta.textContent = "streaming…";
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let done = false;
      while (!done) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buffer += decoder.decode(value, { stream: true });
        let m;
        while (!done && (m = /\r\n\r\n|\n\n|\r\r/.exec(buffer))) {
          const event = buffer.slice(0, m.index);
          buffer = buffer.slice(m.index + m[0].length);
          const data = event.split(/\r\n|\n|\r/).filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(l.startsWith("data: ") ? 6 : 5)).join("\n");
          if (!data) continue;
          if (data === "[DONE]") { done = true; break; }
          let chunk;
          try { chunk = JSON.parse(data); } catch (_) { return fail("the stream sent an event that is not JSON"); }
          if (chunk.error) return fail(`error: ${chunk.error.message || "the upstream failed"}`);
          for (const c of chunk.choices || []) {
            if (c.index && c.index !== 0) continue;
            if (c.delta && typeof c.delta.content === "string") out.append(c.delta.content);
            if (c.finish_reason) finish = c.finish_reason;
          }
        }
      }
      if (!done) reader.cancel().catch(() => {});
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const parts = [`${seconds} s`];
      if (injected !== null) parts.push(`${injected} demonstration${injected === "1" ? "" : "s"} injected`);
      if (finish) parts.push(finish === "length" ? "stopped at max tokens" : `finish: ${finish}`);
      if (!done) parts.push("stream ended without [DONE]");
      meta.textContent = "done · " + parts.join(" · ");
    } catch (e) {
      if (e.name === "AbortError") fail("stopped");
      else fail(`error: ${e.message}`);
    } finally {
      if (mine()) panel.classList.remove("busy");
    }
  }

  start();
})();
