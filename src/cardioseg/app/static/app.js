// cardioseg review page: upload, see the model's contour, tune post-processing, correct with a brush.
// The server keeps each upload's probabilities and edits; this page draws and sends what the user does.
"use strict";

const FILL_ALPHA = 70;

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  sessions: new Map(), // id -> summary
  active: null,
  slice: 0,
  image: null, // HTMLImageElement of the slice
  mask: null, // Uint8Array, row-major labels of the slice
  width: 0,
  height: 0,
  tool: "brush",
  radius: 6,
  label: 1,
  drawing: null, // {points: [[x, y]], last: [x, y]}
  pendingStrokes: 0,
  strokeQueue: Promise.resolve(),
  requestToken: 0,
  cine: null, // the active cine's curve, ED/ES and EF (GET /cine)
  playing: false,
};

// ---------- server calls ----------

// X-Cardioseg tells the server the request comes from this page: a foreign page cannot send it.
async function api(method, url, body) {
  const options = { method, headers: { "X-Cardioseg": "1" } };
  if (body instanceof Blob) {
    options.body = body;
    options.headers["Content-Type"] = "application/octet-stream";
  } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, options);
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.detail || `request failed (${response.status})`);
  return data;
}

const sessionUrl = (path = "") => `/api/sessions/${state.active}${path}`;

function showError(error) {
  const toast = $("toast");
  toast.textContent = error.message || String(error);
  toast.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => (toast.hidden = true), 6000);
}

function busy(text) {
  $("busy").hidden = !text;
  $("busy-text").textContent = text || "";
}

// ---------- uploads and the session list ----------

async function uploadFiles(files) {
  for (const file of files) {
    if (file.size > state.info.max_upload_mb * 2 ** 20) {
      showError(new Error(`${file.name} is larger than the limit of ${state.info.max_upload_mb} MB`));
      continue;
    }
    busy(`Segmenting ${file.name}…`);
    try {
      const summary = await api("POST", `/api/sessions?name=${encodeURIComponent(file.name)}`, file);
      state.sessions.set(summary.id, summary);
      renderSessionList();
      if (!state.active || files.length === 1 || file === files[0]) await activate(summary.id);
    } catch (error) {
      showError(new Error(`${file.name}: ${error.message}`));
    } finally {
      busy(null);
    }
  }
  refreshEf();
}

function viewTag(summary) {
  return summary.view ? `${summary.view} ${summary.phase}` : "";
}

function renderSessionList() {
  const list = $("session-list");
  list.replaceChildren();
  for (const summary of state.sessions.values()) {
    const item = document.createElement("li");
    item.className = summary.id === state.active ? "active" : "";
    item.dataset.id = summary.id;
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = summary.kind === "volume" ? "3D" : summary.kind === "cine" ? "CINE" : summary.format === "dicom" ? "DCM" : "2D";
    const text = document.createElement("div");
    text.innerHTML = `<div class="name"></div><div class="tag"></div>`;
    text.querySelector(".name").textContent = summary.name;
    text.querySelector(".tag").textContent = [summary.patient, viewTag(summary)].filter(Boolean).join(" · ") ||
      `${summary.width}×${summary.height}${summary.slices > 1 ? `×${summary.slices}` : ""}`;
    const close = document.createElement("button");
    close.className = "close";
    close.title = "Close";
    close.textContent = "×";
    close.addEventListener("click", (event) => { event.stopPropagation(); closeSession(summary.id); });
    item.append(badge, text, close);
    item.addEventListener("click", () => activate(summary.id));
    list.append(item);
  }
}

async function closeSession(id) {
  await api("DELETE", `/api/sessions/${id}`).catch(() => {});
  state.sessions.delete(id);
  if (state.active === id) {
    state.active = null;
    const next = state.sessions.keys().next();
    if (!next.done) await activate(next.value);
    else clearViewer();
  }
  renderSessionList();
  refreshEf();
}

function clearViewer() {
  state.image = state.mask = null;
  $("empty").hidden = false;
  $("slice-bar").hidden = true;
  $("status-name").textContent = "—";
  $("measurements").innerHTML = `<p class="muted">—</p>`;
  $("qc").innerHTML = `<p class="muted">—</p>`;
  $("cine-panel").hidden = true;
  stopPlaying();
  state.cine = null;
  for (const id of ["download-png", "download-nifti"]) $(id).classList.add("disabled");
  layout();
}

async function activate(id) {
  state.active = id;
  const summary = state.sessions.get(id);
  state.slice = summary.initial_slice;
  $("empty").hidden = true;
  $("status-name").textContent = summary.name + (summary.spacing ? `  ·  ${summary.spacing.map((s) => s.toFixed(2)).join(" × ")} mm` : "");
  showSettings(summary.settings);
  const slider = $("slice");
  $("slice-bar").hidden = summary.slices <= 1;
  slider.max = summary.slices - 1;
  slider.value = state.slice;
  $("view-section").hidden = summary.kind === "volume";
  $("patient").value = summary.patient || "";
  $("view").value = viewTag(summary);
  stopPlaying();
  const cine = summary.kind === "cine";
  $("play").hidden = !cine;
  $("slice-label").textContent = cine ? "Frame" : "Slice";
  $("cine-panel").hidden = !cine;
  state.cine = null;
  renderSessionList();
  await loadSlice();
  if (cine) await refreshCine();
}

// ---------- slices ----------

function loadImage(url) {
  const image = new Image();
  image.src = url;
  return image.decode().then(() => image);
}

async function loadSlice() {
  const token = ++state.requestToken;
  const [image, payload] = await Promise.all([
    loadImage(sessionUrl(`/slices/${state.slice}/image.png`)),
    api("GET", sessionUrl(`/slices/${state.slice}`)),
  ]);
  if (token !== state.requestToken) return;
  state.image = image;
  applyPayload(payload);
  $("slice-value").textContent = `${state.slice + 1} / ${state.sessions.get(state.active).slices}`;
  updateDownloads();
}

function applyPayload(payload) {
  if (payload.slice !== state.slice) return;
  state.width = payload.width;
  state.height = payload.height;
  state.mask = Uint8Array.from(atob(payload.mask), (c) => c.charCodeAt(0));
  $("undo").disabled = !payload.can_undo;
  showMeasurements(payload.measurements);
  showQc($("qc"), payload.qc, state.sessions.get(state.active).kind === "cine" ? `frame ${state.slice + 1}` : "");
  if (state.cine) drawCurve();
  layout();
}

function updateDownloads() {
  const png = $("download-png");
  const nifti = $("download-nifti");
  png.href = sessionUrl(`/mask.png?slice=${state.slice}`);
  nifti.href = sessionUrl("/mask.nii.gz");
  png.classList.remove("disabled");
  nifti.classList.remove("disabled");
}

// ---------- drawing ----------

function layout() {
  const viewer = $("viewer");
  const canvases = [$("image-canvas"), $("cursor-canvas")];
  if (!state.image || !state.mask) {
    for (const canvas of canvases) canvas.hidden = true;
    return;
  }
  const summary = state.sessions.get(state.active);
  const [rowMm, colMm] = summary.spacing || [1, 1];
  const aspect = (state.width * colMm) / (state.height * rowMm);
  const room = { w: viewer.clientWidth - 32, h: viewer.clientHeight - 32 };
  const w = Math.max(50, Math.min(room.w, room.h * aspect));
  const h = w / aspect;
  const ratio = window.devicePixelRatio || 1;
  for (const canvas of canvases) {
    canvas.hidden = false;
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
  }
  render();
}

function render() {
  const canvas = $("image-canvas");
  const ctx = canvas.getContext("2d");
  const { width: W, height: H } = state;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(state.image, 0, 0, canvas.width, canvas.height);
  if ($("show-fill").checked) drawFill(ctx, canvas);
  drawContours(ctx, canvas.width / W, canvas.height / H);
}

function colourOf(label) {
  // the project's one palette (cardioseg.viz.palette), sent with the classes by /api/info
  const entry = state.info.classes.find((c) => c.label === label);
  return entry ? entry.colour : [255, 255, 255];
}

function drawFill(ctx, canvas) {
  const { width: W, height: H, mask } = state;
  const fill = new ImageData(W, H);
  const colours = new Map(state.info.classes.map((c) => [c.label, [...c.colour, FILL_ALPHA]]));
  for (let i = 0; i < mask.length; i++) {
    if (mask[i]) fill.data.set(colours.get(mask[i]) || [255, 255, 255, FILL_ALPHA], i * 4);
  }
  const buffer = new OffscreenCanvas(W, H);
  buffer.getContext("2d").putImageData(fill, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(buffer, 0, 0, canvas.width, canvas.height);
}

// The border of each class along pixel edges, one path per class: crisp at any zoom.
function drawContours(ctx, sx, sy) {
  const { width: W, height: H, mask } = state;
  const paths = new Map();
  const path = (label) => paths.get(label) || paths.set(label, new Path2D()).get(label);
  const at = (x, y) => (x < 0 || y < 0 || x >= W || y >= H ? 0 : mask[y * W + x]);
  for (let y = 0; y <= H; y++) {
    for (let x = 0; x <= W; x++) {
      const here = at(x, y);
      for (const [other, x0, y0, x1, y1] of [[at(x - 1, y), x, y, x, y + 1], [at(x, y - 1), x, y, x + 1, y]]) {
        if (here === other) continue;
        for (const label of [here, other]) {
          if (!label) continue;
          path(label).moveTo(x0 * sx, y0 * sy);
          path(label).lineTo(x1 * sx, y1 * sy);
        }
      }
    }
  }
  ctx.lineWidth = 1.6 * (window.devicePixelRatio || 1);
  ctx.lineCap = "square";
  for (const [label, p] of paths) {
    ctx.strokeStyle = `rgb(${colourOf(label).join(",")})`;
    ctx.stroke(p);
  }
}

function drawCursor(point) {
  const canvas = $("cursor-canvas");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!point) return;
  const sx = canvas.width / state.width;
  const sy = canvas.height / state.height;
  ctx.beginPath();
  ctx.ellipse((point[0] + 0.5) * sx, (point[1] + 0.5) * sy, (state.radius + 0.5) * sx, (state.radius + 0.5) * sy, 0, 0, 2 * Math.PI);
  ctx.lineWidth = 1.5 * (window.devicePixelRatio || 1);
  ctx.strokeStyle = state.tool === "brush" ? "#ffffffd0" : "#ff8a8ad0";
  ctx.setLineDash(state.tool === "brush" ? [] : [4, 3]);
  ctx.stroke();
}

// ---------- brush and eraser ----------

function pixelOf(event) {
  const canvas = $("cursor-canvas");
  const box = canvas.getBoundingClientRect();
  return [
    Math.floor(((event.clientX - box.left) / box.width) * state.width),
    Math.floor(((event.clientY - box.top) / box.height) * state.height),
  ];
}

// Paint the local copy the way the server will (discs along the segment), for immediate feedback.
function stampSegment(from, to) {
  const value = state.tool === "brush" ? state.label : 0;
  const r = state.radius;
  const steps = Math.max(1, Math.ceil(Math.hypot(to[0] - from[0], to[1] - from[1]) * 2));
  for (let s = 0; s <= steps; s++) {
    const cx = Math.round(from[0] + ((to[0] - from[0]) * s) / steps);
    const cy = Math.round(from[1] + ((to[1] - from[1]) * s) / steps);
    for (let dy = -r; dy <= r; dy++) {
      const y = cy + dy;
      if (y < 0 || y >= state.height) continue;
      for (let dx = -r; dx <= r; dx++) {
        const x = cx + dx;
        if (x >= 0 && x < state.width && dx * dx + dy * dy <= r * r) state.mask[y * state.width + x] = value;
      }
    }
  }
}

function startStroke(event) {
  if (!state.mask || event.button !== 0) return;
  event.target.setPointerCapture(event.pointerId);
  const point = pixelOf(event);
  state.drawing = { points: [point], last: point };
  stampSegment(point, point);
  render();
}

function moveStroke(event) {
  const point = pixelOf(event);
  drawCursor(point);
  if (!state.drawing) return;
  const { last } = state.drawing;
  if (point[0] === last[0] && point[1] === last[1]) return;
  stampSegment(last, point);
  state.drawing.points.push(point);
  state.drawing.last = point;
  requestAnimationFrame(render);
}

function endStroke() {
  if (!state.drawing) return;
  const stroke = { mode: state.tool, radius: state.radius, label: state.label, points: state.drawing.points };
  state.drawing = null;
  const index = state.slice;
  const url = sessionUrl(`/slices/${index}/strokes`);
  state.pendingStrokes++;
  state.strokeQueue = state.strokeQueue
    .then(() => api("POST", url, stroke))
    .then((payload) => {
      state.pendingStrokes--;
      if (!state.pendingStrokes && !state.drawing) {
        applyPayload(payload);
        afterEdit();
      }
    })
    .catch((error) => { state.pendingStrokes--; showError(error); });
}

async function sendAndShow(method, path) {
  try {
    const payload = await api(method, sessionUrl(path));
    if (payload.slice !== state.slice) {
      state.slice = payload.slice;
      $("slice").value = state.slice;
      await loadSlice();
    } else applyPayload(payload);
    afterEdit();
  } catch (error) {
    showError(error);
  }
}

function setTool(tool) {
  state.tool = tool;
  $("tool-brush").classList.toggle("active", tool === "brush");
  $("tool-eraser").classList.toggle("active", tool === "eraser");
}

function setRadius(radius) {
  state.radius = Math.max(1, Math.min(40, radius));
  $("brush-size").value = state.radius;
  $("brush-size-value").textContent = `${state.radius} px`;
}

// ---------- post-processing ----------

function showSettings(settings) {
  $("threshold").value = settings.threshold;
  $("threshold-value").textContent = Number(settings.threshold).toFixed(2);
  $("largest-component").checked = settings.largest_component;
  $("fill-holes").checked = settings.fill_holes;
  $("closing-radius").value = settings.closing_radius;
  $("closing-radius-value").textContent = `${settings.closing_radius} px`;
}

function readSettings() {
  return {
    threshold: Number($("threshold").value),
    largest_component: $("largest-component").checked,
    fill_holes: $("fill-holes").checked,
    closing_radius: Number($("closing-radius").value),
    min_slice_area: state.info.settings.min_slice_area,
  };
}

function settingsChanged() {
  const settings = readSettings();
  $("threshold-value").textContent = settings.threshold.toFixed(2);
  $("closing-radius-value").textContent = `${settings.closing_radius} px`;
  if (!state.active) return;
  clearTimeout(settingsChanged.timer);
  settingsChanged.timer = setTimeout(async () => {
    const token = ++state.requestToken;
    try {
      const payload = await api("PUT", sessionUrl(`/settings?slice=${state.slice}`), settings);
      state.sessions.get(state.active).settings = settings;
      if (token === state.requestToken) applyPayload(payload);
      afterEdit();
    } catch (error) {
      showError(error);
    }
  }, 60);
}

// ---------- quality control and the cine ----------

function afterEdit() {
  refreshEf();
  if (state.cine) refreshCine();
}

// The QC flag ("ok" or "check") and its reasons, as the server's clinical.qc found them.
function showQc(target, qc, where) {
  if (!qc) {
    target.innerHTML = `<p class="muted">—</p>`;
    return;
  }
  const flag = document.createElement("span");
  flag.className = `qc-flag ${qc.flag}`;
  flag.textContent = qc.flag === "ok" ? "QC ok" : "QC: check";
  const head = document.createElement("div");
  head.append(flag);
  if (where) head.append(` ${where}`);
  if (qc.uncertainty !== null && qc.uncertainty !== undefined) head.append(` · uncertainty ${fmt(qc.uncertainty, 2)}`);
  const reasons = document.createElement("ul");
  reasons.className = "qc-reasons";
  for (const reason of qc.reasons) {
    const item = document.createElement("li");
    item.textContent = reason;
    reasons.append(item);
  }
  target.replaceChildren(head, reasons);
}

async function refreshCine() {
  const id = state.active;
  try {
    const cine = await api("GET", sessionUrl("/cine"));
    if (id === state.active) showCine(cine);
  } catch (error) {
    showError(error);
  }
}

function showCine(cine) {
  state.cine = cine;
  const notes = $("cine-notes");
  notes.replaceChildren();
  if (!cine.available) {
    $("cine-ef").textContent = "EF –";
    $("cine-phases").textContent = cine.reason;
    $("cine-curve").replaceChildren();
    return;
  }
  $("cine-ef").textContent = cine.ef === null ? "EF not measurable" : `EF ${fmt(cine.ef)} %`;
  const source = { detected: "detected from the curve", DICOM: "tagged in the file", user: "set by you" }[cine.phase_source];
  $("cine-phases").textContent = `ED frame ${cine.ed + 1} · ES frame ${cine.es + 1} (${source}) · ${cine.method}`;
  for (const reason of cine.qc.reasons) {
    const item = document.createElement("li");
    item.textContent = reason;
    notes.append(item);
  }
  drawCurve();
}

// The curve (volume, else area) with the smoothed line, ED and ES, and the frame on screen.
function drawCurve() {
  const cine = state.cine;
  const svg = $("cine-curve");
  if (!cine || !cine.available) return;
  const values = cine.volume.some((v) => v !== null) ? cine.volume : cine.area;
  const known = [...values, ...cine.smoothed].filter((v) => v !== null);
  const low = Math.min(...known);
  const high = Math.max(...known);
  const W = 600, H = 150, pad = 16;
  const x = (k) => pad + ((W - 2 * pad) * k) / Math.max(1, cine.frames - 1);
  const y = (v) => H - pad - ((H - 2 * pad) * (v - low)) / Math.max(1e-9, high - low);
  const ns = "http://www.w3.org/2000/svg";
  const element = (name, attributes, text) => {
    const node = document.createElementNS(ns, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    if (text) node.textContent = text;
    return node;
  };
  const parts = [element("polyline", { class: "smoothed", points: cine.smoothed.map((v, k) => `${x(k)},${y(v)}`).join(" ") })];
  values.forEach((v, k) => v !== null && parts.push(element("circle", { class: "measured", cx: x(k), cy: y(v), r: 2.5 })));
  for (const [frame, name] of [[cine.ed, "ed"], [cine.es, "es"]]) {
    parts.push(element("line", { class: name, x1: x(frame), x2: x(frame), y1: 4, y2: H - 4 }));
    parts.push(element("text", { x: x(frame) + 3, y: 12, fill: name === "ed" ? "#d62728" : "#1f77b4" }, name.toUpperCase()));
  }
  parts.push(element("line", { class: "now", id: "cine-now", x1: x(state.slice), x2: x(state.slice), y1: 4, y2: H - 4 }));
  svg.replaceChildren(...parts);
}

async function movePhase(which) {
  if (!state.cine || !state.cine.available) return;
  const phases = { ed: state.cine.ed, es: state.cine.es, [which]: state.slice };
  try {
    showCine(await api("PUT", sessionUrl("/cine/phases"), phases));
  } catch (error) {
    showError(error);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Real time from the frame times (their median step) when the file gives them, else 25 frames a second.
function frameStep() {
  const times = state.cine && state.cine.times_ms;
  if (!times || times.length < 2) return 40;
  const steps = times.slice(1).map((t, k) => t - times[k]).sort((a, b) => a - b);
  return Math.max(10, steps[Math.floor(steps.length / 2)]);
}

async function play() {
  state.playing = true;
  $("play").textContent = "Pause";
  const id = state.active;
  while (state.playing && id === state.active) {
    const started = performance.now();
    state.slice = (state.slice + 1) % state.sessions.get(id).slices;
    $("slice").value = state.slice;
    try {
      await loadSlice();
    } catch (error) {
      showError(error);
      break;
    }
    await sleep(Math.max(0, frameStep() - (performance.now() - started)));
  }
  stopPlaying();
}

function stopPlaying() {
  state.playing = false;
  $("play").textContent = "Play";
}

// ---------- measurements and EF ----------

const fmt = (value, digits = 1) => Number(value).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

function metric(label, value, unit, second) {
  const box = document.createElement("div");
  box.className = "metric";
  box.innerHTML = `<div class="label"></div><div class="value"><span></span><span class="unit"></span></div><div class="second"></div>`;
  box.querySelector(".label").textContent = label;
  box.querySelector(".value span").textContent = value;
  box.querySelector(".unit").textContent = unit;
  box.querySelector(".second").textContent = second || "";
  return box;
}

function showMeasurements(measurements) {
  const summary = state.sessions.get(state.active);
  const boxes = [];
  const where = summary.slices > 1 ? ` · ${summary.kind === "cine" ? "frame" : "slice"} ${state.slice + 1}` : "";
  for (const area of measurements.areas) {
    boxes.push(area.mm2 === null
      ? metric(`${area.name} area${where}`, fmt(area.pixels, 0), "px", "pixel spacing unknown")
      : metric(`${area.name} area${where}`, fmt(area.mm2), "mm²", `${fmt(area.pixels, 0)} px`));
  }
  for (const volume of measurements.volumes || []) {
    boxes.push(volume.ml === null
      ? metric(`${volume.name} volume`, fmt(volume.voxels, 0), "voxels", "voxel spacing unknown")
      : metric(`${volume.name} volume`, fmt(volume.ml), "mL", `${fmt(volume.voxels, 0)} voxels`));
  }
  $("measurements").replaceChildren(...boxes);
}

async function refreshEf() {
  const ids = [...state.sessions.keys()];
  const target = $("ef");
  if (!ids.length) {
    target.innerHTML = `<p class="muted">Upload the 2CH and 4CH views at ED and ES of one patient.</p>`;
    return;
  }
  let result;
  try {
    result = await api("POST", "/api/ef", { sessions: ids });
  } catch (error) {
    showError(error);
    return;
  }
  if (!result.patients.length) {
    target.innerHTML = `<p class="muted">No apical views yet: name files like patient0001_2CH_ED.png or pick each image's view above.</p>`;
    return;
  }
  const cards = result.patients.map((patient) => {
    const card = document.createElement("div");
    card.className = "patient";
    const unit = patient.unit === "mL" ? "mL" : "px³";
    card.innerHTML = `<div class="patient-name"></div><div class="ef-value"></div><div class="volumes"></div><ul></ul>`;
    card.querySelector(".patient-name").textContent = `${patient.patient} · ${patient.views.length}/4 views`;
    const value = card.querySelector(".ef-value");
    value.textContent = patient.ef === null ? "EF not available" : `EF ${fmt(patient.ef)} %`;
    value.classList.toggle("pending", patient.ef === null);
    card.querySelector(".volumes").textContent = patient.ef === null ? "" :
      `EDV ${fmt(patient.edv, unit === "mL" ? 1 : 0)} ${unit} · ESV ${fmt(patient.esv, unit === "mL" ? 1 : 0)} ${unit}`;
    const notes = card.querySelector("ul");
    const spacingNote = patient.ef !== null && unit !== "mL" ? ["pixel spacing unknown: volumes in px³, the EF holds"] : [];
    for (const note of [...patient.notes, ...spacingNote]) {
      const item = document.createElement("li");
      item.textContent = note;
      notes.append(item);
    }
    return card;
  });
  target.replaceChildren(...cards);
}

async function tagChanged() {
  if (!state.active) return;
  const [view, phase] = ($("view").value || " ").split(" ");
  try {
    const summary = await api("PATCH", sessionUrl(), { patient: $("patient").value || null, view: view || null, phase: phase || null });
    state.sessions.set(summary.id, summary);
    renderSessionList();
    refreshEf();
  } catch (error) {
    showError(error);
  }
}

function describeModel(info) {
  const arch = info.encoder ? `${info.architecture} (${info.encoder})` : info.architecture;
  const classes = info.classes.map((c) => c.name).join(", ");
  return `model: ${info.model} · ${arch} · ${info.classes.length === 1 ? "class" : "classes"}: ${classes}`;
}

function showLegend(classes) {
  const items = classes.map((c) => {
    const item = document.createElement("span");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${colourOf(c.label).join(",")})`;
    item.append(swatch, c.name);
    return item;
  });
  $("legend").replaceChildren(...items);
}

// ---------- wiring ----------

async function init() {
  state.info = await api("GET", "/api/info");
  $("model-info").textContent = describeModel(state.info);
  $("threshold-field").hidden = !state.info.binary; // a multi-class model takes the most likely class
  $("drop-hint").textContent = `PNG · JPEG · DICOM · NIfTI · ≤ ${state.info.max_upload_mb} MB`;
  showLegend(state.info.classes);
  showSettings(state.info.settings);
  if (!state.info.binary) {
    $("class-field").hidden = false;
    for (const c of state.info.classes) $("brush-class").append(new Option(c.name, c.label));
  }
  state.label = state.info.classes[0].label;

  const input = $("file-input");
  input.addEventListener("change", () => { uploadFiles([...input.files]); input.value = ""; });
  const dropzone = $("dropzone");
  for (const target of [dropzone, $("viewer")]) {
    target.addEventListener("dragover", (event) => { event.preventDefault(); dropzone.classList.add("over"); });
    target.addEventListener("dragleave", () => dropzone.classList.remove("over"));
    target.addEventListener("drop", (event) => {
      event.preventDefault();
      dropzone.classList.remove("over");
      uploadFiles([...event.dataTransfer.files]);
    });
  }

  for (const id of ["threshold", "closing-radius"]) $(id).addEventListener("input", settingsChanged);
  for (const id of ["largest-component", "fill-holes"]) $(id).addEventListener("change", settingsChanged);

  $("tool-brush").addEventListener("click", () => setTool("brush"));
  $("tool-eraser").addEventListener("click", () => setTool("eraser"));
  $("brush-size").addEventListener("input", (event) => setRadius(Number(event.target.value)));
  $("brush-class").addEventListener("change", (event) => (state.label = Number(event.target.value)));
  $("undo").addEventListener("click", () => sendAndShow("POST", `/undo?slice=${state.slice}`));
  $("reset-edits").addEventListener("click", () => state.active && sendAndShow("DELETE", `/edits?slice=${state.slice}`));
  $("show-fill").addEventListener("change", () => state.mask && render());

  const cursor = $("cursor-canvas");
  cursor.addEventListener("pointerdown", startStroke);
  cursor.addEventListener("pointermove", moveStroke);
  cursor.addEventListener("pointerup", endStroke);
  cursor.addEventListener("pointercancel", endStroke);
  cursor.addEventListener("pointerleave", () => drawCursor(null));

  $("slice").addEventListener("input", (event) => {
    stopPlaying();
    state.slice = Number(event.target.value);
    loadSlice().catch(showError);
  });
  $("play").addEventListener("click", () => (state.playing ? stopPlaying() : play()));
  $("set-ed").addEventListener("click", () => movePhase("ed"));
  $("set-es").addEventListener("click", () => movePhase("es"));
  $("cine-curve").addEventListener("click", (event) => {
    if (!state.cine || !state.cine.available) return;
    const box = event.currentTarget.getBoundingClientRect();
    const share = (event.clientX - box.left - (16 / 600) * box.width) / (box.width * (1 - 32 / 600));
    stopPlaying();
    state.slice = Math.max(0, Math.min(state.cine.frames - 1, Math.round(share * (state.cine.frames - 1))));
    $("slice").value = state.slice;
    loadSlice().catch(showError);
  });
  $("patient").addEventListener("change", tagChanged);
  $("view").addEventListener("change", tagChanged);

  window.addEventListener("resize", layout);
  window.addEventListener("keydown", (event) => {
    if (event.target.matches("input[type=text], select")) return;
    if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); $("undo").click(); }
    else if (event.key === "b") setTool("brush");
    else if (event.key === "e") setTool("eraser");
    else if (event.key === "[") setRadius(state.radius - 1);
    else if (event.key === "]") setRadius(state.radius + 1);
    else if (event.key === " " && state.cine && !event.target.matches("button")) {
      event.preventDefault();
      $("play").click();
    }
  });
  setRadius(state.radius);
  clearViewer();
}

init().catch(showError);
