// transformer-math page: every input lives in the URL; every number explains itself on hover or click.
// An edit is answered by one request (/api/view: everything the page shows), sent on the next animation frame; while
// one is in flight, further edits wait for it and then send one more, so the answer shown is always the latest.
"use strict";
const FIELDS = ["model", "batch", "context", "weight_dtype", "kv_dtype", "gpu", "engine", "tp", "gen", "gpus", "ttp", "tpp",
                "global_batch", "recompute"];
const CONTEXTS = [256, 1024, 4096, 16384, 65536];
const OWN_BUTTONS = ["config", "upload", "compare-config", "compare-upload", "compare-name"];
let customConfig = null;
let compareConfigs = [];  // [{name, config}] added under "Compare with"
let frame = 0, chartFrame = 0, inFlight = false, again = false, lastBody = null, last = null, renders = 0;

async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} : {method: "POST", headers: {"content-type": "application/json"},
                                                          body: typeof body === "string" ? body : JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) throw new Error(data.detail || r.statusText);
  return data;
}

function parseJson(text) { try { return JSON.parse(text); } catch (e) { return null; } }

function readUrl() {
  const q = new URLSearchParams(location.search);
  for (const f of FIELDS) if (q.has(f) && $(f)) $(f).value = q.get(f);
  if (q.has("compare")) for (const o of $("compare").options) o.selected = q.get("compare").split(",").includes(o.value);
  const cfg = q.has("config") ? parseJson(q.get("config")) : null;
  if (cfg) { customConfig = cfg; $("config").value = q.get("config"); $("custom").open = true; }
  const cmp = q.has("compare_configs") ? parseJson(q.get("compare_configs")) : null;
  if (Array.isArray(cmp)) compareConfigs = cmp.filter((c) => c && typeof c.config === "object");
}

function writeUrl() {
  const q = new URLSearchParams();
  for (const f of FIELDS) q.set(f, $(f).value);
  const cmp = [...$("compare").selectedOptions].map((o) => o.value);
  if (cmp.length) q.set("compare", cmp.join(","));
  if (customConfig) { const s = JSON.stringify(customConfig); if (s.length < 6000) q.set("config", s); }
  if (compareConfigs.length) { const s = JSON.stringify(compareConfigs); if (s.length < 6000) q.set("compare_configs", s); }
  const search = "?" + q.toString();
  if (search !== location.search) history.replaceState(null, "", search);
}

const num = (id) => parseInt($(id).value, 10);

// The /api/view body for the inputs on screen.
function viewBody() {
  const dtypes = {kv_dtype: $("kv_dtype").value, weight_dtype: $("weight_dtype").value};
  const presets = [...$("compare").selectedOptions].map((o) => o.value);
  return {...(customConfig ? {config: customConfig} : {model: $("model").value}),
          analyze: {batch: num("batch"), context: num("context"), recompute: $("recompute").value, ...dtypes},
          serve: {gpu: $("gpu").value, engine: $("engine").value, tp: num("tp"), batch: num("batch"), prompt: num("context"),
                  gen: num("gen"), ...dtypes},
          train: {gpu: $("gpu").value, gpus: num("gpus"), tp: num("ttp"), pp: num("tpp"), global_batch: num("global_batch"),
                  seq: num("context"), recompute: $("recompute").value},
          curve: CONTEXTS,
          compare: presets.length || compareConfigs.length ? {models: presets, configs: compareConfigs} : null};
}

// The numbers at once; the charts after the numbers are painted (a frame later), so the numbers never wait on them.
function render(v) {
  EXPLAINED.a = v.analysis.quantities; EXPLAINED.s = v.serve.quantities; EXPLAINED.t = v.train.quantities;
  renderCards(v.analysis); renderServe(v.serve); renderTrain(v.train); renderCompare(v.compare); renderOps(v.analysis);
  refreshTip();
  const a = v.analysis;
  setText($("status"), `${a.model} (${a.family}) · ${a.conventions}`);
  document.dispatchEvent(new CustomEvent("tmath:numbers"));
  cancelAnimationFrame(chartFrame);
  chartFrame = requestAnimationFrame(() => setTimeout(() => {
    if (v !== last) return;  // a newer answer came meanwhile: it draws them
    renderCharts(v);
    document.body.dataset.renders = String(++renders);
    document.dispatchEvent(new CustomEvent("tmath:rendered", {detail: {renders}}));
  }));
}

// A mistake in a form (bad JSON, a file too big): said, while the results on screen stay as they are.
function showInputError(message) { $("error").hidden = false; $("error").textContent = message; }

// The server refused the inputs: said, and the results on screen greyed out (they are of the previous inputs).
function showError(message) {
  $("results").classList.add("stale");
  showInputError(message);
  setText($("status"), "error");
  document.dispatchEvent(new CustomEvent("tmath:rendered", {detail: {renders, error: message}}));
}

async function update() {
  if (inFlight) { again = true; return; }
  writeUrl();
  const body = JSON.stringify(viewBody());
  if (body === lastBody) return;
  inFlight = true; again = false;
  $("results").setAttribute("aria-busy", "true");
  try {
    const v = await api("/api/view", body);
    last = v;
    lastBody = again ? null : body;  // a later edit is pending: this answer is not shown, so never "already shown"
    if (!again) {
      $("error").hidden = true;
      $("results").classList.remove("stale");
      render(v);
    }
  } catch (err) {
    lastBody = null;
    if (!again) showError(err.message);
  } finally {
    inFlight = false;
    $("results").removeAttribute("aria-busy");
    if (again) update();
  }
}

// Edits within one animation frame are one change.
function schedule() { if (!frame) frame = requestAnimationFrame(() => { frame = 0; update(); }); }

function useConfig() {
  const cfg = parseJson($("config").value);
  if (!cfg || typeof cfg !== "object") { showInputError("config.json: malformed JSON (not a JSON object)"); return; }
  customConfig = cfg; lastBody = null; update();
}

async function readUpload(input, then) {
  const f = input.files[0]; if (!f) return;
  if (f.size > 1 << 20) { showInputError("config.json: at most 1 MiB"); return; }
  then(await f.text(), f.name);
}

function renderCompareList() {
  $("compare-list").innerHTML = compareConfigs.map((c, i) =>
    `<li>${esc(c.name || "config " + (i + 1))} <button type="button" class="link" data-remove="${i}" aria-label="remove ${esc(c.name || "config")}">×</button></li>`).join("");
}

function addCompareConfig() {
  const cfg = parseJson($("compare-config").value);
  if (!cfg || typeof cfg !== "object" || Array.isArray(cfg)) { showInputError("config.json to compare: malformed JSON (not a JSON object)"); return; }
  const name = $("compare-name").value.trim() || (typeof cfg._name_or_path === "string" ? cfg._name_or_path : `config ${compareConfigs.length + 1}`);
  compareConfigs.push({name: name.slice(0, 100), config: cfg});
  $("compare-config").value = ""; $("compare-name").value = "";
  renderCompareList(); update();
}

function bindInputs() {
  const onEdit = (e) => { if (!OWN_BUTTONS.includes(e.target.id)) schedule(); };
  $("inputs").addEventListener("input", onEdit);
  $("inputs").addEventListener("change", onEdit);
  $("use-config").addEventListener("click", useConfig);
  $("clear-config").addEventListener("click", () => { customConfig = null; update(); });
  $("upload").addEventListener("change", (ev) => readUpload(ev.target, (text) => { $("config").value = text; useConfig(); }));
  $("add-compare").addEventListener("click", addCompareConfig);
  $("compare-upload").addEventListener("change", (ev) => readUpload(ev.target, (text, fileName) => {
    $("compare-config").value = text;
    if (!$("compare-name").value) $("compare-name").value = fileName.replace(/\.json$/i, "");
  }));
  $("compare-list").addEventListener("click", (e) => {
    const i = e.target.dataset && e.target.dataset.remove;
    if (i !== undefined) { compareConfigs.splice(Number(i), 1); renderCompareList(); update(); }
  });
}

async function init() {
  const [presets, hardware] = await Promise.all([api("/api/presets"), api("/api/hardware")]);
  for (const p of presets) { $("model").add(new Option(p, p)); $("compare").add(new Option(p, p)); }
  for (const [id, name] of Object.entries(hardware)) $("gpu").add(new Option(`${id} — ${name}`, id));
  $("model").value = "llama-3.1-8b"; $("gpu").value = "h100-sxm";
  readUrl();
  renderCompareList();
  bindInputs();
  bindExplain($("results"));
  watchChartSizes(() => { if (last) renderCharts(last); });
  update();
}
init();
