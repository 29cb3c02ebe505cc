// Numbers and their derivations: formatting, and the explanation every number shows on hover (a tooltip) and on
// click (the pinned box under the cards). Analysis cards and plan numbers alike carry data-explain="part|key": the
// quantity is looked up in the latest answer when it is shown, so rendering builds no derivation text.
"use strict";
const $ = (id) => document.getElementById(id);
const EXPLAINED = {a: null, s: null, t: null};  // quantities of the analysis, the serving plan, the training plan
let tipFor = null;  // the number whose tooltip is showing

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

// The derivation as `tmath explain` prints it: formula, values substituted, then each part's own derivation.
function explainText(q, name = "", depth = 0, maxDepth = 4) {
  const pad = "  ".repeat(depth);
  const value = q.value === null || q.value === undefined ? "–" : q.value.toLocaleString();
  let text = `${pad}${name ? name + " = " : ""}${value} ${q.unit}  [${q.symbol}]` +
             `\n${pad}  ${q.symbol} = ${q.formula}\n${pad}     = ${q.substituted}`;
  if (q.children && Object.keys(q.children).length && depth < maxDepth) {
    for (const [k, c] of Object.entries(q.children)) text += "\n" + explainText(c, k, depth + 1, maxDepth);
  } else if (q.source && q.source !== "sum of the parts") text += `\n${pad}  source: ${q.source}`;
  return text;
}

// data-explain="a|memory.kv_cache_bytes" → that quantity of the answer on screen (or undefined).
function explained(el) {
  const [part, key] = el.dataset.explain.split("|");
  return EXPLAINED[part] ? EXPLAINED[part][key] : undefined;
}

function showExplain(title, text, symbol) {
  const box = $("explain");
  box.hidden = false;
  box.innerHTML = `<strong>${esc(title)}</strong>  <a href="/symbols#${encodeURIComponent(symbol || "")}">symbol ${esc(symbol || "")} in the dictionary</a>\n${esc(text)}`;
}

function showTip(el) {
  const q = explained(el), tip = $("tip");
  if (!q) return;
  const key = el.dataset.explain.split("|")[1];
  tip.innerHTML = `<strong>${esc(key)}</strong>\n${esc(explainText(q, "", 0, 1))}`;
  tip.hidden = false;
  tipFor = el;
  el.setAttribute("aria-describedby", "tip");
  const r = el.getBoundingClientRect(), w = tip.offsetWidth, h = tip.offsetHeight;
  const left = Math.max(4, Math.min(r.left, document.documentElement.clientWidth - w - 4));
  const below = r.bottom + 6 + h <= innerHeight || r.top - 6 - h < 0;
  tip.style.left = left + scrollX + "px";  // in page coordinates: it scrolls with its number
  tip.style.top = (below ? r.bottom + 6 : r.top - 6 - h) + scrollY + "px";
}

function hideTip() {
  const tip = $("tip");
  if (tip.hidden) return;
  tip.hidden = true;
  tipFor = null;
  for (const el of document.querySelectorAll("[aria-describedby=tip]")) el.removeAttribute("aria-describedby");
}

// After new numbers: the tooltip shows its number's new derivation, or goes if its number was redrawn.
function refreshTip() { if (tipFor && tipFor.isConnected) showTip(tipFor); else hideTip(); }

// One set of listeners for every explained number, present and future (the tables are re-rendered).
function bindExplain(root) {
  const target = (e) => e.target.closest && e.target.closest("[data-explain]");
  root.addEventListener("mouseover", (e) => { const el = target(e); if (el) showTip(el); });
  root.addEventListener("mouseout", (e) => { const el = target(e); if (el && !el.contains(e.relatedTarget)) hideTip(); });
  root.addEventListener("focusin", (e) => { const el = target(e); if (el) showTip(el); });
  root.addEventListener("focusout", hideTip);
  root.addEventListener("click", (e) => {
    const el = target(e), q = el && explained(el);
    if (q) showExplain(el.dataset.explain.split("|")[1], explainText(q), q.symbol);
  });
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") hideTip(); });
}
