// transformer-math page: every input lives in the URL; every number explains itself on hover or click.
"use strict";
const $ = (id) => document.getElementById(id);
const FIELDS = ["model", "batch", "context", "weight_dtype", "kv_dtype", "gpu", "engine", "tp", "gen", "gpus", "ttp", "tpp",
                "global_batch", "recompute"];
let customConfig = null;
let timer = null;

const fmtCount = (x) => {
  if (x === null || x === undefined) return "–";
  const a = Math.abs(x);
  for (const [d, s] of [[1e15, " P"], [1e12, " T"], [1e9, " G"], [1e6, " M"], [1e3, " k"]]) if (a >= d) return (x / d).toFixed(2) + s;
  return String(Math.round(x * 100) / 100);
};
const fmtBytes = (x) => {
  if (x === null || x === undefined) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]; let i = 0;
  while (Math.abs(x) >= 1024 && i < u.length - 1) { x /= 1024; i++; }
  return x.toFixed(i ? 2 : 0) + " " + u[i];
};
const fmt = (x, unit) => unit === "bytes" ? fmtBytes(x) : unit === "s" ? (x * 1e3).toFixed(2) + " ms" : fmtCount(x);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

async function api(path, body) {
  const r = await fetch(path, body === undefined ? {} : {method: "POST", headers: {"content-type": "application/json"},
                                                          body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) throw new Error(data.detail || r.statusText);
  return data;
}

function readUrl() {
  const q = new URLSearchParams(location.search);
  for (const f of FIELDS) if (q.has(f) && $(f)) $(f).value = q.get(f);
  if (q.has("compare")) for (const o of $("compare").options) o.selected = q.get("compare").split(",").includes(o.value);
  if (q.has("config")) { try { customConfig = JSON.parse(q.get("config")); $("config").value = q.get("config"); $("custom").open = true; } catch (e) { customConfig = null; } }
}

function writeUrl() {
  const q = new URLSearchParams();
  for (const f of FIELDS) q.set(f, $(f).value);
  const cmp = [...$("compare").selectedOptions].map((o) => o.value);
  if (cmp.length) q.set("compare", cmp.join(","));
  if (customConfig) { const s = JSON.stringify(customConfig); if (s.length < 6000) q.set("config", s); }
  history.replaceState(null, "", "?" + q.toString());
}

const num = (id) => parseInt($(id).value, 10);
const modelInput = () => customConfig ? {config: customConfig} : {model: $("model").value};

// The derivation as `tmath explain` prints it: formula, values substituted, then each part's own derivation.
function explainText(q, name = "", depth = 0) {
  const pad = "  ".repeat(depth);
  let text = `${pad}${name ? name + " = " : ""}${q.value.toLocaleString()} ${q.unit}  [${q.symbol}]` +
             `\n${pad}  ${q.symbol} = ${q.formula}\n${pad}     = ${q.substituted}`;
  if (q.children && depth < 4) for (const [k, c] of Object.entries(q.children)) text += "\n" + explainText(c, k, depth + 1);
  else if (q.source && q.source !== "sum of the parts") text += `\n${pad}  source: ${q.source}`;
  return text;
}

function showExplain(title, text, symbol) {
  const box = $("explain");
  box.hidden = false;
  box.innerHTML = `<strong>${esc(title)}</strong>  <a href="/symbols#${encodeURIComponent(symbol || "")}">symbol ${esc(symbol || "")} in the dictionary</a>\n${esc(text)}`;
}

function card(key, label, q) {
  const b = document.createElement("button");
  b.type = "button"; b.className = "q"; b.dataset.key = key;
  b.title = explainText(q);
  b.innerHTML = `<span class="label">${esc(label)} <span class="sym">${esc(q.symbol)}</span></span>` +
                `<span class="value">${esc(fmt(q.value, q.unit))}</span>`;
  b.addEventListener("click", () => showExplain(key, explainText(q), q.symbol));
  return b;
}

function renderCards(a) {
  const box = $("cards"); box.innerHTML = "";
  const items = [["params.total", "Parameters"], ["params.active", "Active parameters"],
                 ["memory.weights_bytes", "Weights"], ["memory.kv_cache_bytes", "KV cache"],
                 ["memory.activations_bytes", "Activations (train)"], ["flops.prefill", "Prefill FLOPs"],
                 ["flops.decode_token", "Decode-step FLOPs"], ["flops.train_step", "Training-step FLOPs"]];
  for (const [k, l] of items) box.appendChild(card(k, l, a.quantities[k]));
}

const layoutBase = {margin: {l: 60, r: 10, t: 10, b: 40}, font: {size: 11}, legend: {orientation: "h"}};
const cfg = {displaylogo: false, responsive: true};

function renderParams(a) {
  const c = Object.entries(a["params.by_component"]).sort((x, y) => y[1] - x[1]);
  Plotly.react("chart-params", [{type: "bar", orientation: "h", x: c.map((e) => e[1]), y: c.map((e) => e[0]),
    hovertemplate: "%{y}: %{x:,} parameters<extra></extra>"}], {...layoutBase, margin: {l: 130, r: 10, t: 10, b: 40},
    yaxis: {autorange: "reversed"}, xaxis: {title: "parameters"}}, cfg);
}

function renderMemory(a, s) {
  const q = a.quantities, G = 2 ** 30;
  const cats = ["training (B×L micro-batch)", "serving (per GPU)"];
  const bar = (name, t, v) => ({type: "bar", name, x: cats, y: [t / G, v / G], hovertemplate: name + ": %{y:.2f} GiB<extra></extra>"});
  Plotly.react("chart-memory", [
    bar("weights", q["memory.weights_bytes"].value, s.memory.weights),
    bar("KV cache", 0, s.memory.kv_cache),
    bar("activations", q["memory.activations_bytes"].value, s.memory.workspace),
    bar("gradients + optimizer", q["memory.gradients_bytes"].value + q["memory.optimizer_bytes"].value, 0),
    bar("reserve", 0, s.memory.reserve)], {...layoutBase, barmode: "stack", yaxis: {title: "GiB"}}, cfg);
}

function renderRoofline(s) {
  const ops = s.decode_ops.filter((o) => o.flops > 0 && o.time_s > 0);
  const peak = s.hardware.peak_bf16, bw = s.hardware.bandwidth;
  const xs = []; for (let e = -1; e <= 4; e += 0.05) xs.push(10 ** e);
  Plotly.react("chart-roofline", [
    {x: xs, y: xs.map((x) => Math.min(peak, x * bw)), mode: "lines", name: s.hardware.name + " roof", line: {color: "#222"}},
    {x: ops.map((o) => o.intensity), y: ops.map((o) => o.flops / o.time_s), mode: "markers", name: "ops (decode)",
     text: ops.map((o) => `${o.layer} ${o.op}: ${o.bound} bound, I = ${o.intensity.toFixed(1)}`),
     marker: {size: 9, color: ops.map((o) => o.bound === "memory" ? "#c0392b" : "#2457c5")}, hoverinfo: "text"}],
    {...layoutBase, xaxis: {type: "log", title: "intensity I [FLOPs/byte]"}, yaxis: {type: "log", title: "FLOP/s"}}, cfg);
}

function renderContext(curve) {
  const x = curve.map((p) => p.context);
  Plotly.react("chart-context", [
    {x, y: curve.map((p) => p.memory_per_gpu_bytes / 1e9), name: "memory per GPU [GB]", mode: "lines+markers"},
    {x, y: curve.map((p) => p.tpot_s * 1e3), name: "TPOT [ms]", mode: "lines+markers", yaxis: "y2"}],
    {...layoutBase, xaxis: {type: "log", title: "context L [tokens]"}, yaxis: {title: "GB"},
     yaxis2: {title: "ms", overlaying: "y", side: "right"}}, cfg);
}

function table(rows, head, cls = "") {
  return `<table class="table ${cls}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("") + "</tbody></table>";
}
const withTitle = (text, title) => `<span class="num" title="${esc(title || "")}">${esc(text)}</span>`;

// A plan's number: its value with the quantity's derivation on hover and on click (as the cards do).
function planCell(plan, key, text) {
  const q = plan.quantities[key];
  if (!q) return esc(text);
  return `<button type="button" class="q-inline" data-plan="${esc(key)}" title="${esc(explainText(q))}">${esc(text)}</button>`;
}

function bindPlan(boxId, plan) {
  for (const b of $(boxId).querySelectorAll("button[data-plan]")) {
    const q = plan.quantities[b.dataset.plan];
    b.addEventListener("click", () => showExplain(b.dataset.plan, explainText(q), q.symbol));
  }
}

function notFit(plan) {
  const rows = [["fits", planCell(plan, "memory.over", `no — over by ${fmtBytes(plan.over_bytes)}`)],
                ["memory per GPU", planCell(plan, "memory.per_gpu", `${fmtBytes(plan.memory_per_gpu_bytes)} of ${fmtBytes(plan.memory_bytes)}`)]];
  for (const s of plan.suggestions) {
    const vals = Object.entries(s).filter(([k]) => !["change", "command", "memory_per_gpu_bytes"].includes(k))
      .map(([k, v]) => `${k} ${k.endsWith("_s") && !k.includes("per_s") ? fmt(v, "s") : k === "mfu" ? (100 * v).toFixed(1) + " %" : Math.round(v).toLocaleString()}`);
    rows.push([`fits with ${esc(s.change)}`, withTitle(`${fmtBytes(s.memory_per_gpu_bytes)} per GPU · ${vals.join(" · ")}`, s.command)]);
  }
  return rows;
}

function renderServe(s) {
  const band = (k) => s.band ? ` (${fmt(s.band[k][2], "s")} – ${fmt(s.band[k][0], "s")})` : "";
  const rows = s.fits ? [
    ["fits", planCell(s, "memory.per_gpu", "yes")],
    ["memory per GPU", planCell(s, "memory.per_gpu", fmtBytes(s.memory_per_gpu_bytes))],
    ["TTFT (prefill of all B prompts, band)", planCell(s, "serve.ttft", fmt(s.ttft_s, "s") + band("ttft_s"))],
    ["TPOT (band)", planCell(s, "serve.tpot", fmt(s.tpot_s, "s") + band("tpot_s"))],
    ["tokens/s", planCell(s, "serve.tokens_per_s", Math.round(s.tokens_per_s).toLocaleString())]] : notFit(s);
  rows.push(["max batch at this context", planCell(s, "serve.max_batch", String(s.max_batch))],
            ["max context at this batch", planCell(s, "serve.max_context", s.max_context.toLocaleString())],
            ["φ_cache", planCell(s, "serve.phi_cache", s.phi_cache.toFixed(3))],
            ["weights", esc(s.weight_dtype_meaning)],
            ["decode turns compute bound at B ≈", withTitle(String(s.compute_bound_batch), "smallest batch whose MLP GEMMs are compute bound")]);
  $("serve").innerHTML = table(rows, ["quantity", "value"], "kv");
  bindPlan("serve", s);
}

function renderTrain(t) {
  const L = t.layout;
  const rows = t.fits ? [
    ["fits", planCell(t, "memory.per_gpu", "yes")],
    ["memory per GPU", planCell(t, "memory.per_gpu", fmtBytes(t.memory_per_gpu_bytes))],
    ["step time", planCell(t, "train.step_time", t.step_time_s.toFixed(3) + " s")],
    ["TFLOP/s per GPU", planCell(t, "train.model_flops", t.tflops_per_gpu.toFixed(1))],
    ["MFU", planCell(t, "train.mfu", (100 * t.mfu).toFixed(1) + " %")],
    ["HFU", planCell(t, "train.hfu", (100 * t.hfu).toFixed(1) + " %")],
    ["tokens/s", planCell(t, "train.tokens_per_s", Math.round(t.tokens_per_s).toLocaleString())]] : notFit(t);
  rows.push(["activations per GPU", planCell(t, "memory.activations", fmtBytes(t.memory.activations))],
            ["layout", esc(`TP ${L.tp} · PP ${L.pp} · DP ${L.dp} · CP ${L.cp} · b ${L.micro_batch} · ZeRO-${L.zero}`)],
            ["command", withTitle("tmath train …", t.command)]);
  $("train").innerHTML = table(rows, ["quantity", "value"], "kv");
  bindPlan("train", t);
}

function renderOps(a) {
  let html = "";
  for (const [title, rows] of Object.entries(a["flops.per_op"])) {
    html += `<h3>${esc(title)}</h3>` + table(rows.map((r) => [esc(r.op), esc("(" + r.shape.join(", ") + ")"),
      withTitle(r.flops.toLocaleString(), r.formula)]), ["operation", "output shape", "FLOPs"]);
  }
  $("ops").innerHTML = html;
}

async function renderCompare(base) {
  const names = [...$("compare").selectedOptions].map((o) => o.value);
  if (!names.length) { $("comparison").innerHTML = '<p class="muted">Pick models under “Compare with”.</p>'; return; }
  const models = customConfig ? names : [base, ...names.filter((n) => n !== base)];
  const rows = await api("/api/compare", {models, batch: num("batch"), context: num("context"), kv_dtype: $("kv_dtype").value});
  $("comparison").innerHTML = table(rows.map((r) => [esc(r.model), fmtCount(r["params.total"]), fmtCount(r["params.active"]),
    fmtBytes(r["memory.weights_bytes"]), fmtBytes(r["memory.kv_cache_bytes"]), fmtCount(r["flops.prefill"]),
    fmtCount(r["flops.decode_token"])]), ["model", "params", "active", "weights", "KV cache", "prefill FLOPs", "decode FLOPs"]);
}

async function update() {
  writeUrl();
  $("status").textContent = "computing…";
  const m = modelInput();
  const common = {...m, batch: num("batch"), kv_dtype: $("kv_dtype").value, weight_dtype: $("weight_dtype").value};
  try {
    const serveReq = {...common, gpu: $("gpu").value, engine: $("engine").value, tp: num("tp"), prompt: num("context"),
                      gen: num("gen")};
    const [a, s, t, curve] = await Promise.all([
      api("/api/analyze", {...common, context: num("context"), recompute: $("recompute").value}),
      api("/api/serve", serveReq),
      api("/api/train", {...m, gpu: $("gpu").value, gpus: num("gpus"), tp: num("ttp"), pp: num("tpp"),
                         global_batch: num("global_batch"), seq: num("context"), recompute: $("recompute").value}),
      api("/api/curve", {...serveReq, contexts: [256, 1024, 4096, 16384, 65536].filter((c) => c <= 1e6)})]);
    $("error").hidden = true;
    $("results").classList.remove("stale");
    renderCards(a); renderParams(a); renderMemory(a, s); renderRoofline(s); renderContext(curve);
    renderServe(s); renderTrain(t); renderOps(a);
    await renderCompare($("model").value);
    $("status").textContent = `${a.model} (${a.family}) · ${a.conventions}`;
  } catch (err) {
    $("results").classList.add("stale");
    $("error").hidden = false;
    $("error").textContent = err.message;
    $("status").textContent = "error";
  }
}

function schedule() { clearTimeout(timer); timer = setTimeout(update, 250); }

async function init() {
  const [presets, hardware] = await Promise.all([api("/api/presets"), api("/api/hardware")]);
  for (const p of presets) { $("model").add(new Option(p, p)); $("compare").add(new Option(p, p)); }
  for (const [id, name] of Object.entries(hardware)) $("gpu").add(new Option(`${id} — ${name}`, id));
  $("model").value = "llama-3.1-8b"; $("gpu").value = "h100-sxm";
  readUrl();
  const onEdit = (e) => { if (e.target.id !== "config" && e.target.id !== "upload") schedule(); };
  $("inputs").addEventListener("input", onEdit);
  $("inputs").addEventListener("change", onEdit);
  $("use-config").addEventListener("click", () => {
    try { customConfig = JSON.parse($("config").value); }
    catch (e) { $("error").hidden = false; $("error").textContent = "config.json: malformed JSON (" + e.message + ")"; return; }
    update();
  });
  $("clear-config").addEventListener("click", () => { customConfig = null; update(); });
  $("upload").addEventListener("change", async (ev) => {
    const f = ev.target.files[0]; if (!f) return;
    if (f.size > 1 << 20) { $("error").hidden = false; $("error").textContent = "config.json: at most 1 MiB"; return; }
    $("config").value = await f.text();
    $("use-config").click();
  });
  update();
}
init();
