// The charts: each drawn with Plotly.react (the plot is updated, never re-created) and only when what it shows
// changed; each follows its box's width (a ResizeObserver), so a phone's narrow column gets a narrow chart.
"use strict";
const drawn = {};  // chart id → the JSON of what it shows now
const plotCfg = {displaylogo: false, responsive: true, displayModeBar: false};
const axisTitle = (text) => ({text, standoff: 4});

function narrow(id) { return $(id).clientWidth < 520; }

function baseLayout(id, extra) {
  const n = narrow(id);
  return {margin: {l: n ? 44 : 60, r: n ? 8 : 12, t: 8, b: 36}, font: {size: n ? 10 : 11},
          legend: {orientation: "h", x: 0, y: -0.22, yanchor: "top"}, autosize: true, ...extra};
}

// Plotly.react(id, …) when `inputs` differ from what the chart shows (the string compare is cheaper than a redraw).
function draw(id, inputs, build) {
  const key = JSON.stringify(inputs) + (narrow(id) ? "n" : "w");
  if (drawn[id] === key) return;
  drawn[id] = key;
  const [traces, layout] = build(inputs);
  Plotly.react(id, traces, layout, plotCfg);
}

function renderParams(a) {
  draw("chart-params", a["params.by_component"], (byc) => {
    const c = Object.entries(byc).sort((x, y) => y[1] - x[1]);
    return [[{type: "bar", orientation: "h", x: c.map((e) => e[1]), y: c.map((e) => e[0]),
              hovertemplate: "%{y}: %{x:,} parameters<extra></extra>"}],
            baseLayout("chart-params", {yaxis: {autorange: "reversed", automargin: true},
                                        xaxis: {title: axisTitle("parameters")}})];
  });
}

function renderMemory(a, s) {
  const q = a.quantities;
  const inputs = {w: q["memory.weights_bytes"].value, act: q["memory.activations_bytes"].value,
                  go: q["memory.gradients_bytes"].value + q["memory.optimizer_bytes"].value, s: s.memory};
  draw("chart-memory", inputs, (m) => {
    const G = 2 ** 30, cats = ["training (B×L micro-batch)", "serving (per GPU)"];
    const bar = (name, t, v) => ({type: "bar", name, x: cats, y: [t / G, v / G], hovertemplate: name + ": %{y:.2f} GiB<extra></extra>"});
    return [[bar("weights", m.w, m.s.weights), bar("KV cache", 0, m.s.kv_cache), bar("activations", m.act, m.s.workspace),
             bar("gradients + optimizer", m.go, 0), bar("reserve", 0, m.s.reserve)],
            baseLayout("chart-memory", {barmode: "stack", yaxis: {title: axisTitle("GiB"), automargin: true}})];
  });
}

function renderRoofline(s) {
  const ops = s.decode_ops.filter((o) => o.flops > 0 && o.time_s > 0)
    .map((o) => ({layer: o.layer, op: o.op, bound: o.bound, intensity: o.intensity, flops: o.flops, time_s: o.time_s}));
  draw("chart-roofline", {ops, hw: s.hardware}, ({ops, hw}) => {
    const xs = []; for (let e = -1; e <= 4; e += 0.05) xs.push(10 ** e);
    return [[{x: xs, y: xs.map((x) => Math.min(hw.peak_bf16, x * hw.bandwidth)), mode: "lines", name: hw.name + " roof", line: {color: "#222"}},
             {x: ops.map((o) => o.intensity), y: ops.map((o) => o.flops / o.time_s), mode: "markers", name: "ops (decode)",
              text: ops.map((o) => `${o.layer} ${o.op}: ${o.bound} bound, I = ${o.intensity.toFixed(1)}`),
              marker: {size: 9, color: ops.map((o) => o.bound === "memory" ? "#c0392b" : "#2457c5")}, hoverinfo: "text"}],
            baseLayout("chart-roofline", {xaxis: {type: "log", title: axisTitle("intensity I [FLOPs/byte]")},
                                          yaxis: {type: "log", title: axisTitle("FLOP/s"), automargin: true}})];
  });
}

function renderContext(curve) {
  draw("chart-context", curve, (curve) => {
    const x = curve.map((p) => p.context);
    return [[{x, y: curve.map((p) => p.memory_per_gpu_bytes / 1e9), name: "memory per GPU [GB]", mode: "lines+markers"},
             {x, y: curve.map((p) => p.tpot_s * 1e3), name: "TPOT [ms]", mode: "lines+markers", yaxis: "y2"}],
            baseLayout("chart-context", {xaxis: {type: "log", title: axisTitle("context L [tokens]")},
                                         yaxis: {title: axisTitle("GB"), automargin: true},
                                         yaxis2: {title: axisTitle("ms"), overlaying: "y", side: "right", automargin: true}})];
  });
}

function renderCharts(v) {
  renderParams(v.analysis); renderMemory(v.analysis, v.serve); renderRoofline(v.serve); renderContext(v.curve);
}

// A chart whose box changed width is fitted to it (and re-laid out when it crosses the narrow/wide line).
function watchChartSizes(redraw) {
  if (!window.ResizeObserver) return;
  const widths = new Map();
  const ro = new ResizeObserver((entries) => {
    let crossed = false;
    for (const e of entries) {
      const w = Math.round(e.contentRect.width), before = widths.get(e.target.id);
      widths.set(e.target.id, w);
      if (before === undefined || before === w || !e.target.data) continue;
      if ((before < 520) !== (w < 520)) crossed = true; else Plotly.Plots.resize(e.target);
    }
    if (crossed) redraw();
  });
  for (const el of document.querySelectorAll(".chart")) ro.observe(el);
}
