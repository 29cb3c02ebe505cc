// The numbers: cards, the serving and training plans, the comparison, FLOPs per operation. Each box is rewritten only
// when its HTML changed, and the cards are made once and then only their values change.
"use strict";
const CARDS = [["params.total", "Parameters"], ["params.active", "Active parameters"],
               ["memory.weights_bytes", "Weights"], ["memory.kv_cache_bytes", "KV cache"],
               ["memory.activations_bytes", "Activations (train)"], ["flops.prefill", "Prefill FLOPs"],
               ["flops.decode_token", "Decode-step FLOPs"], ["flops.train_step", "Training-step FLOPs"]];

// Set a box's HTML unless it is already that (no DOM work, no layout, for the parts an edit did not change).
function setHtml(id, html) {
  const el = $(id);
  if (el.tmathHtml === html) return false;
  el.innerHTML = html;
  el.tmathHtml = html;
  return true;
}

function setText(el, text) { if (el.textContent !== text) el.textContent = text; }

function renderCards(a) {
  const box = $("cards");
  if (!box.children.length) {
    box.innerHTML = CARDS.map(([k, l]) => `<button type="button" class="q" data-key="${esc(k)}" data-explain="a|${esc(k)}">` +
      `<span class="label">${esc(l)} <span class="sym"></span></span><span class="value"></span></button>`).join("");
  }
  for (const b of box.children) {
    const q = a.quantities[b.dataset.key];  // none for an encoder-only model's cache and decode step
    b.hidden = !q;
    if (!q) continue;
    setText(b.querySelector(".sym"), q.symbol);
    setText(b.querySelector(".value"), fmt(q.value, q.unit));
  }
}

function table(rows, head, cls = "") {
  return `<table class="table ${cls}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join("")}</tr></thead><tbody>` +
    rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("") + "</tbody></table>";
}
const withTitle = (text, title) => `<span class="num" title="${esc(title || "")}">${esc(text)}</span>`;

// A plan's number: its value, explained on hover and click like the cards ("s": serving plan, "t": training plan).
function planCell(plan, part, key, text) {
  if (!plan.quantities[key]) return esc(text);
  return `<button type="button" class="q-inline" data-plan="${esc(key)}" data-explain="${part}|${esc(key)}">${esc(text)}</button>`;
}

function suggestionText(s) {
  const vals = Object.entries(s).filter(([k]) => !["change", "command", "memory_per_gpu_bytes"].includes(k))
    .map(([k, v]) => `${k} ${k.endsWith("_s") && !k.includes("per_s") ? fmt(v, "s") : k === "mfu" ? (100 * v).toFixed(1) + " %" : Math.round(v).toLocaleString()}`);
  return `${fmtBytes(s.memory_per_gpu_bytes)} per GPU · ${vals.join(" · ")}`;
}

function notFit(plan, part) {
  const rows = [["fits", planCell(plan, part, "memory.over", `no — over by ${fmtBytes(plan.over_bytes)}`)],
                ["memory per GPU", planCell(plan, part, "memory.per_gpu", `${fmtBytes(plan.memory_per_gpu_bytes)} of ${fmtBytes(plan.memory_bytes)}`)]];
  for (const s of plan.suggestions) rows.push([`fits with ${esc(s.change)}`, withTitle(suggestionText(s), s.command)]);
  return rows;
}

function renderServe(s) {
  const band = (k) => s.band ? ` (${fmt(s.band[k][2], "s")} – ${fmt(s.band[k][0], "s")})` : "";
  const cell = (key, text) => planCell(s, "s", key, text);
  const rows = s.fits ? [
    ["fits", cell("memory.per_gpu", "yes")],
    ["memory per GPU", cell("memory.per_gpu", fmtBytes(s.memory_per_gpu_bytes))],
    ["KV cache per GPU", cell("memory.kv_cache", fmtBytes(s.memory.kv_cache))],
    ["TTFT (prefill of all B prompts, band)", cell("serve.ttft", fmt(s.ttft_s, "s") + band("ttft_s"))],
    ["TPOT (band)", cell("serve.tpot", fmt(s.tpot_s, "s") + band("tpot_s"))],
    ["tokens/s", cell("serve.tokens_per_s", Math.round(s.tokens_per_s).toLocaleString())]] : notFit(s, "s");
  rows.push(["max batch at this context", cell("serve.max_batch", String(s.max_batch))],
            ["max context at this batch", cell("serve.max_context", s.max_context.toLocaleString())],
            ["φ_cache", cell("serve.phi_cache", s.phi_cache.toFixed(3))],
            ["weights", esc(s.weight_dtype_meaning)],
            ["decode turns compute bound at B ≈", withTitle(String(s.compute_bound_batch), "smallest batch whose MLP GEMMs are compute bound")]);
  setHtml("serve", table(rows, ["quantity", "value"], "kv"));
}

function renderTrain(t) {
  const L = t.layout, cell = (key, text) => planCell(t, "t", key, text);
  const rows = t.fits ? [
    ["fits", cell("memory.per_gpu", "yes")],
    ["memory per GPU", cell("memory.per_gpu", fmtBytes(t.memory_per_gpu_bytes))],
    ["step time", cell("train.step_time", t.step_time_s.toFixed(3) + " s")],
    ["TFLOP/s per GPU", cell("train.model_flops", t.tflops_per_gpu.toFixed(1))],
    ["MFU", cell("train.mfu", (100 * t.mfu).toFixed(1) + " %")],
    ["HFU", cell("train.hfu", (100 * t.hfu).toFixed(1) + " %")],
    ["tokens/s", cell("train.tokens_per_s", Math.round(t.tokens_per_s).toLocaleString())]] : notFit(t, "t");
  rows.push(["activations per GPU", cell("memory.activations", fmtBytes(t.memory.activations))],
            ["optimizer states per GPU", cell("memory.optimizer", fmtBytes(t.memory.optimizer))],
            ["layout", esc(`TP ${L.tp} · PP ${L.pp} · DP ${L.dp} · CP ${L.cp} · b ${L.micro_batch} · ZeRO-${L.zero}`)],
            ["command", withTitle("tmath train …", t.command)]);
  setHtml("train", table(rows, ["quantity", "value"], "kv"));
}

function renderOps(a) {
  let html = "";
  for (const [title, rows] of Object.entries(a["flops.per_op"])) {
    html += `<h3>${esc(title)}</h3><div class="scroll">` + table(rows.map((r) => [esc(r.op), esc("(" + r.shape.join(", ") + ")"),
      withTitle(r.flops.toLocaleString(), r.formula)]), ["operation", "output shape", "FLOPs"]) + "</div>";
  }
  setHtml("ops", html);
}

function renderCompare(rows) {
  if (!rows) { setHtml("comparison", '<p class="muted">Pick presets or add a config.json under “Compare with”.</p>'); return; }
  setHtml("comparison", table(rows.map((r) => [esc(r.model), fmtCount(r["params.total"]), fmtCount(r["params.active"]),
    fmtBytes(r["memory.weights_bytes"]), r["memory.kv_cache_bytes"] == null ? "—" : fmtBytes(r["memory.kv_cache_bytes"]),
    fmtCount(r["flops.prefill"]), r["flops.decode_token"] == null ? "—" : fmtCount(r["flops.decode_token"])]), ["model", "params", "active", "weights", "KV cache", "prefill FLOPs", "decode FLOPs"]));
}
