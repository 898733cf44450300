// The dashboard page: polls the API, draws every pipeline, and sends the commands of its buttons and form.
// Plain browser JavaScript, no build step and nothing loaded from elsewhere. Every string that comes from
// the API (ids, references, errors) is put into the page with textContent or an attribute, never as HTML.
// URLs are relative to the page (/dashboard), so the page also works behind a proxy that adds a path prefix.
// Two views, chosen by the URL's fragment: the pipelines (the default) and #webcam, the browser's camera sent
// through a workflow over WebRTC (see "the webcam view" below).
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
    webcamSnapshot(snapshot);
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

  // ------------------------------------------------------------------ views

  const VIEWS = ["pipelines", "webcam"];

  function showView() {
    const wanted = location.hash.replace(/^#/, "");
    const view = VIEWS.includes(wanted) ? wanted : "pipelines";
    for (const name of VIEWS) document.getElementById(`view-${name}`).hidden = name !== view;
    for (const tab of document.querySelectorAll(".views button")) {
      if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
      else tab.removeAttribute("aria-current");
    }
    if (view === "webcam" && !webcam.listed) loadWorkflows();
  }

  // ------------------------------------------------------------------ the webcam view

  // The browser's camera through a workflow, over WebRTC. This page is the offerer: it sends the camera as a
  // send-and-receive video track and opens the data channel before it makes the offer (the worker only
  // answers, and only keeps a channel the page opened), waits until ICE gathering is complete (the API takes
  // one offer, no trickle ICE) and POSTs it to inference_pipelines/initialise_webrtc with the workflow and
  // its chosen outputs. The reply's SDP answer is applied; the worker then sends the chosen output's image
  // back on the same video section and one JSON message per processed frame on the data channel. Stop
  // terminates the pipeline first and then closes the peer connection (a worker that waits for the next
  // frame finishes sooner while frames still come); closing the tab ends it too (the worker notices the
  // peer going away), and the page also sends a last terminate then.
  const ICE_GATHERING_MS = 5000; // at most this long for the candidates (host ones take milliseconds)
  const PEER_TIMEOUT_S = 10; // the worker ends the pipeline after this long without a camera frame
  const WEBCAM_STATS_MS = 1000;
  const MESSAGE_CHARS = 20000; // the latest message is shown up to this long
  const MESSAGE_DRAW_MS = 100; // the counts are redrawn at most this often
  const OUTPUT = "output:"; // an output select's value: this prefix and the output's name
  // The built-in choice: the default model's detections (as tools/payloads.py's INIT has them, output
  // "predictions") and the frame with their boxes and labels drawn (output "annotated") for the video.
  const DETECT_OUTPUTS = { names: ["predictions", "annotated"], video: `${OUTPUT}annotated`, data: `${OUTPUT}predictions` };

  function detectWorkflow(modelId) {
    return {
      version: "1.0",
      inputs: [{ type: "WorkflowImage", name: "image" }],
      steps: [
        { type: "roboflow_core/roboflow_object_detection_model@v2", name: "model", images: "$inputs.image",
          model_id: modelId, confidence: 0.3 },
        { type: "roboflow_core/bounding_box_visualization@v1", name: "boxes", image: "$inputs.image",
          predictions: "$steps.model.predictions" },
        { type: "roboflow_core/label_visualization@v1", name: "labels", image: "$steps.boxes.image",
          predictions: "$steps.model.predictions" },
      ],
      outputs: [
        { type: "JsonField", name: "predictions", selector: "$steps.model.predictions" },
        { type: "JsonField", name: "annotated", selector: "$steps.labels.image" },
      ],
    };
  }

  const webcam = {
    listed: false, // the stored workflows were read once
    choosing: 0, // the latest workflow choice whose outputs are being read
    ready: false, // the chosen workflow's outputs are known
    session: null, // the running (or starting) session
  };
  const byId = (id) => document.getElementById(id);

  function selectedWorkflow() {
    const select = byId("webcam-workflow");
    return select.options[select.selectedIndex] || select.options[0];
  }

  async function loadWorkflows() {
    webcam.listed = true;
    const select = byId("webcam-workflow");
    try {
      const response = await request("workflows", { cache: "no-store", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(await errorText(response));
      const body = await response.json();
      const previous = select.value;
      while (select.options.length > 1) select.remove(1); // the built-in choice stays
      for (const item of body.workflows || []) {
        const name = `${item.workspace_name}/${item.workflow_id}`;
        const option = new Option(name, `named:${name}`);
        option.dataset.workspace = item.workspace_name;
        option.dataset.workflowId = item.workflow_id;
        select.add(option);
      }
      select.value = Array.from(select.options).some((option) => option.value === previous) ? previous : "builtin";
    } catch (error) {
      webcam.listed = false;
      setText(byId("webcam-result"), `stored workflows unavailable: ${error.message}`);
    }
    await chooseWorkflow();
  }

  // Reads the chosen workflow's output names (the built-in one's are known) into the two output lists.
  async function chooseWorkflow() {
    const option = selectedWorkflow();
    const builtin = option.value === "builtin";
    byId("webcam-model").hidden = !builtin;
    const ticket = ++webcam.choosing;
    webcam.ready = false;
    updateWebcamButtons();
    let outputs = null;
    if (builtin) {
      outputs = DETECT_OUTPUTS;
    } else {
      try {
        const path = `workflows/${encodeURIComponent(option.dataset.workspace)}/${encodeURIComponent(option.dataset.workflowId)}`;
        const response = await request(path, { cache: "no-store", headers: { Accept: "application/json" } });
        if (!response.ok) throw new Error(await errorText(response));
        const body = await response.json();
        const declared = (body.specification && Array.isArray(body.specification.outputs)) ? body.specification.outputs : [];
        const names = declared.map((output) => output && output.name).filter((name) => typeof name === "string" && name);
        outputs = { names, video: "any", data: names.length ? `${OUTPUT}${names[0]}` : "none" };
      } catch (error) {
        if (ticket === webcam.choosing) setText(byId("webcam-result"), `workflow unavailable: ${error.message}`);
      }
    }
    if (ticket !== webcam.choosing) return; // a later choice is being read
    fillOutputs(outputs);
    webcam.ready = outputs !== null;
    updateWebcamButtons();
  }

  function fillOutputs(outputs) {
    const video = byId("webcam-stream-output");
    const data = byId("webcam-data-output");
    video.replaceChildren(new Option("the camera frame, unchanged", "input"), new Option("the first image output", "any"));
    data.replaceChildren(new Option("nothing", "none"));
    for (const name of outputs ? outputs.names : []) {
      video.add(new Option(name, `${OUTPUT}${name}`));
      data.add(new Option(name, `${OUTPUT}${name}`));
    }
    video.value = outputs ? outputs.video : "input";
    data.value = outputs ? outputs.data : "none";
  }

  // What the form says, read when Start is clicked (the controls are disabled while a session runs).
  function webcamChoice(form) {
    const data = new FormData(form);
    const option = selectedWorkflow();
    const processing = { type: "WorkflowConfiguration" };
    if (option.value === "builtin") {
      processing.workflow_specification = detectWorkflow(String(data.get("model_id") || "").trim());
    } else {
      processing.workspace_name = option.dataset.workspace;
      processing.workflow_id = option.dataset.workflowId;
    }
    const video = String(data.get("stream_output") || "input");
    const channel = String(data.get("data_output") || "none");
    const maxFps = String(data.get("max_fps") || "").trim();
    return {
      processing,
      maxFps: maxFps ? Number(maxFps) : null,
      // []: the camera frame comes back; [""]: the first image output; [name]: that output's image.
      streamOutput: video.startsWith(OUTPUT) ? [video.slice(OUTPUT.length)] : video === "any" ? [""] : [],
      dataOutput: channel.startsWith(OUTPUT) ? [channel.slice(OUTPUT.length)] : [],
      realtime: data.get("realtime") !== null,
    };
  }

  function webcamPayload(choice, offer, fps) {
    const payload = {
      // video_reference is ignored (the peer's track is the video); max_fps limits the frames processed.
      video_configuration: { type: "VideoConfiguration", video_reference: "webcam", max_fps: choice.maxFps },
      processing_configuration: choice.processing,
      webrtc_offer: { type: offer.type, sdp: offer.sdp },
      stream_output: choice.streamOutput,
      data_output: choice.dataOutput,
      webrtc_realtime_processing: choice.realtime,
      webrtc_peer_timeout: PEER_TIMEOUT_S,
    };
    if (typeof fps === "number" && isFinite(fps) && fps > 0) payload.webcam_fps = fps;
    return payload;
  }

  async function openCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || typeof RTCPeerConnection === "undefined") {
      throw new Error("this browser cannot send a camera from this page: browsers allow cameras only on secure " +
                      "(https) pages and on localhost or 127.0.0.1");
    }
    try {
      return await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (error) {
      const reason = error && error.name === "NotAllowedError" ? "camera permission denied" : "no camera";
      throw new Error(`${reason} (${error && error.name ? error.name : "error"}${error && error.message ? `: ${error.message}` : ""})`);
    }
  }

  // Resolves when ICE gathering is complete, or after ``ms`` with the candidates found so far.
  function iceGathered(pc, ms) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      };
      const check = () => {
        if (pc.iceGatheringState === "complete") finish();
      };
      const timer = setTimeout(finish, ms);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  function stopped(session) {
    if (session.stopping) throw new Error("stopped before it started");
  }

  async function onWebcamStart(event) {
    event.preventDefault();
    if (webcam.session || !webcam.ready) return;
    const choice = webcamChoice(event.target);
    const result = byId("webcam-result");
    const session = {
      pc: null, stream: null, channel: null, pipelineId: null, seen: false, stopping: false, ended: false, messages: 0,
      latest: null, drawTimer: null, statsTimer: null,
    };
    webcam.session = session;
    clearSessionView();
    updateWebcamButtons();
    try {
      setText(result, "opening the camera…");
      session.stream = await openCamera();
      stopped(session);
      const track = session.stream.getVideoTracks()[0];
      if (!track) throw new Error("the camera gave no video track");
      // Inference wants the camera's full resolution: under load the encoder drops frames, not pixels.
      if ("contentHint" in track) track.contentHint = "detail";
      byId("webcam-local").srcObject = session.stream;

      const pc = session.pc = new RTCPeerConnection({ iceServers: [] }); // host candidates: no outside server
      pc.addTransceiver(track, { direction: "sendrecv", streams: [session.stream] });
      session.channel = pc.createDataChannel("inference"); // before the offer, so the offer carries it
      session.channel.addEventListener("message", (message) => onChannelMessage(session, message));
      pc.addEventListener("track", (trackEvent) => {
        byId("webcam-remote").srcObject = trackEvent.streams[0] || new MediaStream([trackEvent.track]);
      });
      pc.addEventListener("connectionstatechange", () => onPeerState(session));

      setText(result, "gathering network candidates…");
      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc, ICE_GATHERING_MS);
      stopped(session);

      setText(result, "starting the pipeline… (a worker loads the workflow and answers)");
      const fps = track.getSettings ? track.getSettings().frameRate : undefined;
      const body = await post("inference_pipelines/initialise_webrtc", webcamPayload(choice, pc.localDescription, fps));
      session.pipelineId = (body.context && body.context.pipeline_id) || null;
      setText(byId("webcam-pipeline"), session.pipelineId);
      stopped(session);
      if (typeof body.sdp !== "string") throw new Error("the reply carries no SDP answer");
      await pc.setRemoteDescription({ type: body.type || "answer", sdp: body.sdp });
      stopped(session);
      setText(result, `started ${text(session.pipelineId)}`);
      session.statsTimer = setInterval(() => showStats(session), WEBCAM_STATS_MS);
      schedulePoll(0);
    } catch (error) {
      if (session.ended) return; // Stop came after the answer and has done everything
      const id = session.pipelineId;
      const wasStopped = session.stopping;
      endSession(session);
      if (id) {
        await terminateQuietly(id); // it started but the page cannot use it
        await showFinalState(id);
      }
      setText(result, wasStopped ? `stopped${id ? ` ${id}` : ""} before it started` : `not started: ${error.message}`);
    } finally {
      updateWebcamButtons();
    }
  }

  async function onWebcamStop() {
    const session = webcam.session;
    if (!session || session.stopping) return;
    session.stopping = true;
    updateWebcamButtons();
    const id = session.pipelineId;
    const result = byId("webcam-result");
    if (!id || session.pc === null || session.pc.remoteDescription === null) {
      setText(result, "stopping…"); // still starting: onWebcamStart ends it at its next step
      return;
    }
    setText(result, `stopping ${id}…`);
    let outcome = `stopped ${id}`;
    try {
      await post(pipelinePath(id, "terminate"));
    } catch (error) {
      outcome = `terminate failed: ${error.message} (the worker ends the pipeline once the camera stops)`;
    }
    endSession(session);
    await showFinalState(id);
    setText(result, outcome);
    schedulePoll(0);
  }

  async function terminateQuietly(id) {
    try {
      await post(pipelinePath(id, "terminate"));
    } catch (_) {
      // already gone, or the worker ends it when the peer stops sending
    }
  }

  // The pipeline's state as the manager keeps it after the end (TERMINATED, ENDED, FAILED), and its last error.
  async function showFinalState(id) {
    let state = "ENDED";
    let problem = null;
    try {
      const response = await request(pipelinePath(id, "status"), { cache: "no-store", headers: { Accept: "application/json" } });
      if (response.ok) {
        const report = (await response.json()).report || {};
        state = report.pipeline_state || state;
        problem = report.last_error || null;
      }
    } catch (_) {
      // the state stays "ENDED"
    }
    if (webcam.session === null) showWebcamState(state);
    return problem;
  }

  // Closes everything the session holds; the pipeline itself is the caller's business.
  function endSession(session) {
    session.stopping = true;
    session.ended = true;
    clearInterval(session.statsTimer);
    clearTimeout(session.drawTimer);
    if (session.channel) session.channel.close();
    if (session.pc) session.pc.close();
    if (session.stream) for (const track of session.stream.getTracks()) track.stop();
    if (webcam.session === session) {
      webcam.session = null;
      byId("webcam-local").srcObject = null;
      byId("webcam-remote").srcObject = null;
      setText(byId("webcam-peer"), session.pc ? "closed" : null);
      setText(byId("webcam-fps"), null);
      showVideoSize("local");
      showVideoSize("remote");
    }
    updateWebcamButtons();
  }

  function clearSessionView() {
    for (const id of ["webcam-pipeline", "webcam-peer", "webcam-fps", "webcam-local-size", "webcam-remote-size"]) {
      setText(byId(id), null);
    }
    showWebcamState(null);
    byId("webcam-messages").textContent = "0";
    byId("webcam-counts").dataset.messages = "0";
    byId("webcam-total").textContent = "";
    byId("webcam-message").textContent = "";
    byId("webcam-counts").tBodies[0].replaceChildren();
  }

  function updateWebcamButtons() {
    const session = webcam.session;
    byId("webcam-start").disabled = session !== null || !webcam.ready;
    byId("webcam-stop").disabled = session === null || session.stopping;
    for (const element of byId("webcam-form").querySelectorAll("select, input, #webcam-reload")) {
      element.disabled = session !== null;
    }
    // The model id belongs to the built-in workflow only (disabled, its emptiness does not block the form).
    const modelId = byId("webcam-form").elements.namedItem("model_id");
    modelId.disabled = session !== null || selectedWorkflow().value !== "builtin";
  }

  function showWebcamState(state) {
    const badge = byId("webcam-state");
    setText(badge, state);
    badge.dataset.state = state || "NONE";
  }

  function showVideoSize(which) {
    const video = byId(`webcam-${which}`);
    const size = video.srcObject && video.videoWidth ? `${video.videoWidth}×${video.videoHeight}` : "";
    byId(`webcam-${which}-size`).textContent = size;
  }

  function onPeerState(session) {
    if (webcam.session !== session || !session.pc) return;
    const state = session.pc.connectionState;
    setText(byId("webcam-peer"), state);
    if ((state === "failed" || state === "closed") && !session.stopping && session.pipelineId) {
      const id = session.pipelineId;
      endSession(session);
      setText(byId("webcam-peer"), state);
      terminateQuietly(id).then(() => showFinalState(id));
      setText(byId("webcam-result"), `the connection to the worker ${state === "failed" ? "failed" : "closed"}; ` +
                                     `pipeline ${id} is terminated`);
    }
  }

  // Receiving: the decoded size and frame rate of the video that comes back.
  async function showStats(session) {
    if (webcam.session !== session || !session.pc) return;
    try {
      const report = await session.pc.getStats();
      for (const stats of report.values()) {
        if (stats.type !== "inbound-rtp" || stats.kind !== "video") continue;
        const size = stats.frameWidth ? `${stats.frameWidth}×${stats.frameHeight}` : "no frame yet";
        const fps = typeof stats.framesPerSecond === "number" ? ` at ${fixed(stats.framesPerSecond, 1)} fps` : "";
        setText(byId("webcam-fps"), `${size}${fps}`);
      }
    } catch (_) {
      // closed meanwhile
    }
  }

  // ------------------------------------------------------------------ the data channel's messages

  function onChannelMessage(session, message) {
    if (webcam.session !== session) return;
    session.messages += 1;
    session.latest = message.data;
    if (session.drawTimer === null) session.drawTimer = setTimeout(() => drawMessage(session), MESSAGE_DRAW_MS);
  }

  // The detections in a message: a detections output ({image, predictions: [...]}), a list of detections,
  // or a dict output holding one of those; null when it holds none.
  function detectionsIn(value, depth = 0) {
    if (Array.isArray(value)) {
      return value.length && value.every((item) => item && typeof item === "object" && "class" in item) ? value : null;
    }
    if (!value || typeof value !== "object" || depth > 2) return null;
    if (Array.isArray(value.predictions)) return value.predictions;
    for (const inner of Object.values(value)) {
      const found = detectionsIn(inner, depth + 1);
      if (found) return found;
    }
    return null;
  }

  function drawMessage(session) {
    session.drawTimer = null;
    if (webcam.session !== session) return;
    const raw = session.latest;
    byId("webcam-messages").textContent = String(session.messages);
    let value;
    let shown;
    if (typeof raw === "string") {
      try {
        value = JSON.parse(raw);
        shown = JSON.stringify(value, null, 1);
      } catch (_) {
        shown = raw; // not JSON: shown as it came
      }
    } else {
      shown = `(a binary message of ${raw && raw.byteLength !== undefined ? raw.byteLength : raw.size} bytes)`;
    }
    const detections = value === undefined ? null : detectionsIn(value);
    const counts = new Map();
    for (const detection of detections || []) {
      const name = detection && typeof detection.class === "string" ? detection.class : "?";
      counts.set(name, (counts.get(name) || 0) + 1);
    }
    const rows = Array.from(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    const body = byId("webcam-counts").tBodies[0];
    while (body.rows.length > rows.length) body.deleteRow(-1);
    rows.forEach(([name, count], index) => {
      const row = body.rows[index] || body.insertRow();
      while (row.cells.length < 2) row.insertCell();
      setText(row.cells[0], name);
      setText(row.cells[1], count);
    });
    const total = detections ? detections.length : 0;
    byId("webcam-total").textContent = detections ? `· ${total} object${total === 1 ? "" : "s"}` : "· no detections in it";
    byId("webcam-counts").dataset.messages = String(session.messages);
    byId("webcam-message").textContent = shown.length > MESSAGE_CHARS ? `${shown.slice(0, MESSAGE_CHARS)}…` : shown;
  }

  // ------------------------------------------------------------------ the webcam session and the snapshot

  // The session's pipeline as the poll lists it; once listed and then gone, the pipeline has ended.
  function webcamSnapshot(snapshot) {
    const session = webcam.session;
    if (!session || !session.pipelineId || session.stopping) return;
    const found = snapshot.pipelines.find((pipeline) => pipeline.pipeline_id === session.pipelineId);
    if (found) {
      session.seen = true;
      showWebcamState(found.pipeline_state || "UNKNOWN");
    } else if (session.seen) {
      const id = session.pipelineId;
      endSession(session);
      showFinalState(id).then((problem) => {
        setText(byId("webcam-result"), `pipeline ${id} ended${problem ? `: ${problem}` : ""}`);
      });
    }
  }

  function onPageHide() {
    const session = webcam.session;
    if (!session) return;
    if (session.pipelineId) {
      const init = { method: "POST", keepalive: true, headers: { Accept: "application/json" } };
      request(pipelinePath(session.pipelineId, "terminate"), init).catch(() => {});
    }
    endSession(session);
  }

  document.getElementById("start-form").addEventListener("submit", onStart);
  document.getElementById("login-form").addEventListener("submit", onLogin);
  document.getElementById("webcam-form").addEventListener("submit", onWebcamStart);
  document.getElementById("webcam-stop").addEventListener("click", onWebcamStop);
  document.getElementById("webcam-reload").addEventListener("click", loadWorkflows);
  document.getElementById("webcam-workflow").addEventListener("change", chooseWorkflow);
  document.getElementById("webcam-remote").addEventListener("resize", () => showVideoSize("remote"));
  document.getElementById("webcam-local").addEventListener("resize", () => showVideoSize("local"));
  for (const tab of document.querySelectorAll(".views button")) {
    tab.addEventListener("click", () => {
      location.hash = tab.dataset.view === "pipelines" ? "" : tab.dataset.view; // the view is in the URL
    });
  }
  window.addEventListener("hashchange", showView);
  window.addEventListener("pagehide", onPageHide);
  fillOutputs(null);
  updateWebcamButtons();
  showView();
  setInterval(previewLoop, 250);
  poll();
})();
