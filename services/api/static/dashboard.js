// The dashboard page: polls the API, draws every pipeline, and sends the commands of its buttons and form.
// Plain browser JavaScript, no build step and nothing loaded from elsewhere. Every string that comes from
// the API (ids, references, errors) is put into the page with textContent or an attribute, never as HTML.
// URLs are relative to the page (/dashboard), so the page also works behind a proxy that adds a path prefix.
"use strict";

(() => {
  const POLL_MS = 1500; // the pipelines snapshot
  const PREVIEW_MS = 1000; // each pipeline's preview image
  const WINDOW_S = 300; // how far back the sparklines reach
  const MIN_SPAN_S = 30; // the narrowest time span a sparkline shows
  const FPS_WINDOW_S = 10; // decode fps is measured over this long
  const CONFIRM_MS = 4000; // a second click on Terminate within this confirms it
  const SVG_W = 300;
  const SVG_H = 48;

  const $ = (selector, root = document) => root.querySelector(selector);
  const cards = new Map(); // pipeline id -> card state

  // ------------------------------------------------------------------ HTTP

  const pipelinePath = (id, action) => `inference_pipelines/${encodeURIComponent(id)}/${action}`;

  // The API's token (API_AUTH_TOKEN), when it runs with one: asked for once, kept for this tab only
  // (sessionStorage) and sent as "Authorization: Bearer" on every request of the page, previews included.
  const TOKEN_KEY = "vsim-api-token";

  function storedToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (_) {
      return ""; // storage disabled: the token is asked for again
    }
  }

  function askForToken(message) {
    const form = document.getElementById("login-form");
    form.hidden = false;
    setText(document.getElementById("login-note"), message);
    const input = form.elements.namedItem("token");
    if (document.activeElement !== input) input.focus();
  }

  // fetch() with the token; a 401 asks for it (again).
  async function request(path, init = {}) {
    const headers = Object.assign({}, init.headers || {});
    const token = storedToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(path, Object.assign({}, init, { headers }));
    if (response.status === 401) askForToken(token ? "The API refused this token." : "This API needs its token.");
    return response;
  }

  function onLogin(event) {
    event.preventDefault();
    const form = event.target;
    const token = String(new FormData(form).get("token") || "").trim();
    try {
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // storage disabled: nothing to keep
    }
    form.reset();
    form.hidden = true;
    schedulePoll(0);
  }

  async function errorText(response) {
    // Both error body generations carry "message"; the newer one adds the detailed inner message.
    try {
      const body = await response.json();
      const parts = [body.message, body.inner_error_message].filter((part) => typeof part === "string" && part);
      const unique = parts.filter((part, index) => parts.indexOf(part) === index);
      if (unique.length) return `${response.status}: ${unique.join(" — ")}`;
    } catch (_) {
      // not JSON: the status says enough
    }
    return `${response.status} ${response.statusText}`;
  }

  async function post(path, body) {
    const init = { method: "POST", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await request(path, init);
    if (!response.ok) throw new Error(await errorText(response));
    return response.json();
  }

  // ------------------------------------------------------------------ formatting

  const fixed = (value, digits) => (typeof value === "number" && isFinite(value) ? value.toFixed(digits) : "–");
  const millis = (seconds) => (typeof seconds === "number" && isFinite(seconds) ? `${Math.round(seconds * 1000)} ms` : "–");
  const text = (value) => (value === null || value === undefined || value === "" ? "–" : String(value));

  function setText(element, value) {
    const next = text(value);
    if (element.textContent !== next) element.textContent = next;
  }

  // ------------------------------------------------------------------ sparklines

  // The samples' time span, at least MIN_SPAN_S (so the first seconds do not squeeze into a corner).
  function spanOf(samples, now) {
    const oldest = samples.length ? samples[0].t : now;
    return Math.min(WINDOW_S, Math.max(MIN_SPAN_S, now - oldest));
  }

  function describeSpan(seconds) {
    return seconds >= 90 ? `${Math.round(seconds / 60)} min` : `${Math.round(seconds)} s`;
  }

  // One path through the samples' values, with a gap wherever a value is missing (e.g. while muted).
  function drawSpark(svg, samples, key, now) {
    const line = $("path", svg);
    const values = samples.map((sample) => sample[key]).filter((value) => typeof value === "number" && isFinite(value));
    if (!values.length) {
      line.setAttribute("d", "");
      return null;
    }
    const max = Math.max(...values);
    const min = Math.min(...values);
    // Scaled to the values' own range (a steady line sits mid-height), padded a little at both ends.
    const range = Math.max(max - min, 0.1 * Math.abs(max), 1e-9);
    const low = min - 0.15 * range - (range - (max - min)) / 2;
    const high = low + range * 1.3;
    const span = spanOf(samples, now);
    let path = "";
    let drawing = false;
    for (const sample of samples) {
      const value = sample[key];
      if (typeof value !== "number" || !isFinite(value)) {
        drawing = false;
        continue;
      }
      const x = SVG_W - ((now - sample.t) / span) * SVG_W;
      const y = SVG_H - ((value - low) / (high - low)) * SVG_H;
      path += `${drawing ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)} `;
      drawing = true;
    }
    line.setAttribute("d", path.trim());
    return { min, max, span };
  }

  // ------------------------------------------------------------------ one pipeline's card

  function createCard(id) {
    const node = document.getElementById("pipeline-template").content.firstElementChild.cloneNode(true);
    node.dataset.pipelineId = id;
    setText($(".pipeline-id", node), id);
    $(".pipeline-id", node).title = id;
    const card = {
      id, node, samples: [], decoded: new Map(), previewUrl: null, previewBusy: false, previewAt: 0,
      confirmTimer: null, busy: false, state: null, hasPreview: false,
    };
    for (const button of node.querySelectorAll("button[data-action]")) {
      button.addEventListener("click", () => onAction(card, button));
    }
    $(".preview-img", node).addEventListener("load", () => {
      $(".preview-img", node).hidden = false;
    });
    return card;
  }

  async function onAction(card, button) {
    const action = button.dataset.action;
    const result = $(".action-result", card.node);
    if (action === "terminate" && !button.classList.contains("armed")) {
      button.classList.add("armed");
      button.textContent = "Confirm terminate";
      card.confirmTimer = setTimeout(() => disarm(button), CONFIRM_MS);
      return;
    }
    disarm(button);
    card.busy = true;
    updateButtons(card);
    setText(result, `${action}…`);
    try {
      await post(pipelinePath(card.id, action));
      setText(result, `${action}: done`);
    } catch (error) {
      setText(result, `${action} failed: ${error.message}`);
    } finally {
      card.busy = false;
      updateButtons(card);
      schedulePoll(0);
    }
  }

  function disarm(button) {
    if (!button.classList.contains("armed")) return;
    button.classList.remove("armed");
    button.textContent = "Terminate";
  }

  function updateButtons(card) {
    $(".pause", card.node).disabled = card.busy || card.state !== "RUNNING";
    $(".resume", card.node).disabled = card.busy || card.state !== "MUTED";
    $(".terminate", card.node).disabled = card.busy;
  }

  function updateCard(card, pipeline, now) {
    const node = card.node;
    card.state = pipeline.pipeline_state || null;
    const state = $(".state", node);
    setText(state, pipeline.pipeline_state || (pipeline.error ? "UNKNOWN" : null));
    state.dataset.state = pipeline.pipeline_state || "UNKNOWN";
    node.dataset.state = state.dataset.state;
    setText($(".device", node), pipeline.device);
    setText($(".owner", node), pipeline.owner);
    setText($(".restarts", node), pipeline.restarts);
    setText($(".frames", node), pipeline.frames_processed);
    const problem = pipeline.error || pipeline.last_error;
    const lastError = $(".last-error", node);
    lastError.hidden = !problem;
    setText(lastError, problem ? (pipeline.error ? `status unavailable: ${problem}` : `last error: ${problem}`) : "");
    updateButtons(card);

    // Samples for the sparklines: throughput and the worst source's e2e latency, muted time left as gaps.
    const latencies = pipeline.sources.map((source) => source.e2e_latency).filter((value) => typeof value === "number");
    const running = pipeline.pipeline_state === "RUNNING";
    card.samples.push({
      t: now,
      fps: running ? pipeline.inference_throughput : null,
      e2e: running && latencies.length ? Math.max(...latencies) : null,
    });
    while (card.samples.length && card.samples[0].t < now - WINDOW_S) card.samples.shift();
    const fpsRange = drawSpark($(".fps-spark", node), card.samples, "fps", now);
    const e2eRange = drawSpark($(".e2e-spark", node), card.samples, "e2e", now);
    setText($(".fps-now", node), running ? fixed(pipeline.inference_throughput, 1) : "–");
    setText($(".fps-range", node), fpsRange ? `${fixed(fpsRange.min, 1)}–${fixed(fpsRange.max, 1)} over ${describeSpan(fpsRange.span)}` : "");
    setText($(".e2e-now", node), running && latencies.length ? millis(Math.max(...latencies)) : "–");
    setText($(".e2e-range", node), e2eRange ? `${millis(e2eRange.min)}–${millis(e2eRange.max)} over ${describeSpan(e2eRange.span)}` : "");

    updateSources(card, pipeline.sources, typeof pipeline.reported_at === "number" ? pipeline.reported_at : now);
    card.hasPreview = Boolean(pipeline.has_preview);
    if (!card.hasPreview) markPreview(card, running ? "no preview yet" : "no new frames while not running");
  }

  // Decode fps from frames_decoded over the last FPS_WINDOW_S, timed by the worker's report clock when known.
  function decodeFps(card, source, at) {
    if (typeof source.frames_decoded !== "number") return null;
    let history = card.decoded.get(source.source_id) || [];
    if (history.length && source.frames_decoded < history[history.length - 1].frames) history = []; // restarted
    if (!history.length || at > history[history.length - 1].t) history.push({ t: at, frames: source.frames_decoded });
    while (history.length > 2 && history[1].t <= at - FPS_WINDOW_S) history.shift();
    card.decoded.set(source.source_id, history);
    const first = history[0];
    const newest = history[history.length - 1];
    if (newest.t - first.t < 0.9) return null;
    return (newest.frames - first.frames) / (newest.t - first.t);
  }

  function updateSources(card, sources, at) {
    const body = $(".sources tbody", card.node);
    while (body.rows.length > sources.length) body.deleteRow(-1);
    sources.forEach((source, index) => {
      const row = body.rows[index] || body.insertRow();
      while (row.cells.length < 6) row.insertCell();
      const fps = decodeFps(card, source, at);
      setText(row.cells[0], source.source_id);
      setText(row.cells[1], source.source_reference);
      row.cells[1].title = text(source.source_reference);
      setText(row.cells[2], source.state);
      row.cells[2].dataset.state = text(source.state);
      setText(row.cells[3], fps === null ? "–" : fixed(fps, 1));
      setText(row.cells[4], millis(source.e2e_latency));
      setText(row.cells[5], millis(source.inference_latency));
    });
  }

  // ------------------------------------------------------------------ previews

  function markPreview(card, note) {
    const img = $(".preview-img", card.node);
    const caption = $(".preview-note", card.node);
    card.node.classList.toggle("stale", !img.hidden);
    setText(caption, img.hidden ? note : `${note} (last preview shown)`);
  }

  async function refreshPreview(card) {
    if (card.previewBusy || !card.hasPreview) return;
    card.previewBusy = true;
    card.previewAt = Date.now();
    try {
      const response = await request(pipelinePath(card.id, "preview.jpg"), { cache: "no-store" });
      if (!response.ok) {
        markPreview(card, response.status === 404 ? "no preview right now" : `preview unavailable (${response.status})`);
        return;
      }
      const url = URL.createObjectURL(await response.blob());
      const img = $(".preview-img", card.node);
      const old = card.previewUrl;
      card.previewUrl = url;
      img.src = url;
      if (old) setTimeout(() => URL.revokeObjectURL(old), PREVIEW_MS);
      card.node.classList.remove("stale");
      setText($(".preview-note", card.node), `preview ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      markPreview(card, `preview unavailable: ${error.message}`);
    } finally {
      card.previewBusy = false;
    }
  }

  function previewLoop() {
    for (const card of cards.values()) {
      if (Date.now() - card.previewAt >= PREVIEW_MS - 50) refreshPreview(card);
    }
  }

  // ------------------------------------------------------------------ the snapshot poll

  let pollTimer = null;
  let polling = false;

  function schedulePoll(delay) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay);
  }

  function setConnection(ok, message) {
    const connection = document.getElementById("connection");
    connection.dataset.ok = ok ? "yes" : "no";
    setText(connection, ok ? `updated ${new Date().toLocaleTimeString()}` : "not updating");
    const banner = document.getElementById("banner");
    banner.hidden = !message;
    setText(banner, message || "");
  }

  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const response = await request("dashboard/api/pipelines", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(await errorText(response));
      render(await response.json());
    } catch (error) {
      setConnection(false, `Cannot read the pipelines: ${error.message}`);
    } finally {
      polling = false;
      schedulePoll(POLL_MS);
    }
  }

  function render(snapshot) {
    const now = Date.now() / 1000;
    const list = document.getElementById("pipelines");
    const seen = new Set();
    for (const pipeline of snapshot.pipelines) {
      seen.add(pipeline.pipeline_id);
      let card = cards.get(pipeline.pipeline_id);
      if (!card) {
        card = createCard(pipeline.pipeline_id);
        cards.set(pipeline.pipeline_id, card);
      }
      updateCard(card, pipeline, now);
    }
    for (const [id, card] of cards) {
      if (seen.has(id)) continue;
      if (card.previewUrl) URL.revokeObjectURL(card.previewUrl);
      clearTimeout(card.confirmTimer);
      card.node.remove();
      cards.delete(id);
    }
    // The manager's order; a card is only moved when it is out of place (a moved node loses focus).
    snapshot.pipelines.forEach((pipeline, index) => {
      const node = cards.get(pipeline.pipeline_id).node;
      if (list.children[index] !== node) list.insertBefore(node, list.children[index] || null);
    });
    document.getElementById("empty").hidden = snapshot.pipelines.length > 0;

    const counts = {};
    for (const pipeline of snapshot.pipelines) {
      const state = pipeline.pipeline_state || "UNKNOWN";
      counts[state] = (counts[state] || 0) + 1;
    }
    const parts = Object.keys(counts).sort().map((state) => `${counts[state]} ${state.toLowerCase()}`);
    setText(document.getElementById("summary"),
      `${snapshot.pipelines.length} pipeline${snapshot.pipelines.length === 1 ? "" : "s"}${parts.length ? ` · ${parts.join(" · ")}` : ""}`);
    const warnings = [];
    if (snapshot.redis_error) warnings.push(`Devices and previews unavailable: ${snapshot.redis_error}`);
    else if (!snapshot.previews) warnings.push("Previews and devices need the API to read Redis (API_REDIS_URL).");
    setConnection(true, warnings.join(" "));
  }

  // ------------------------------------------------------------------ the start form

  function initPayload(form) {
    const data = new FormData(form);
    const reference = String(data.get("video_reference")).trim();
    const maxFps = String(data.get("max_fps")).trim();
    const confidence = String(data.get("confidence")).trim();
    const device = String(data.get("device")).trim();
    const step = {
      type: "roboflow_core/roboflow_object_detection_model@v2", name: "model", images: "$inputs.image",
      model_id: String(data.get("model_id")).trim(),
    };
    if (confidence) step.confidence = Number(confidence);
    const payload = {
      video_configuration: {
        type: "VideoConfiguration",
        video_reference: /^\d+$/.test(reference) ? Number(reference) : reference, // a number: a local camera
        max_fps: maxFps ? Number(maxFps) : null,
      },
      processing_configuration: {
        type: "WorkflowConfiguration",
        workflow_specification: {
          version: "1.0",
          inputs: [{ type: "WorkflowImage", name: "image" }],
          steps: [step],
          outputs: [{ type: "JsonField", name: "predictions", selector: "$steps.model.*" }],
        },
      },
      sink_configuration: { type: "MemorySinkConfiguration", results_buffer_size: 64 },
    };
    if (device) payload.device = device;
    payload.type = "init";
    return payload;
  }

  async function onStart(event) {
    event.preventDefault();
    const form = event.target;
    const button = document.getElementById("start-button");
    const result = document.getElementById("start-result");
    button.disabled = true;
    setText(result, "starting… (the worker opens the source and loads the model)");
    try {
      const body = await post("inference_pipelines/initialise", initPayload(form));
      const id = body.context && body.context.pipeline_id;
      result.dataset.pipelineId = id || "";
      setText(result, `started ${text(id)}`);
      schedulePoll(0);
    } catch (error) {
      result.dataset.pipelineId = "";
      setText(result, `not started: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  document.getElementById("start-form").addEventListener("submit", onStart);
  document.getElementById("login-form").addEventListener("submit", onLogin);
  setInterval(previewLoop, 250);
  poll();
})();
