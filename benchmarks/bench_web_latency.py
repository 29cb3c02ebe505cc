"""Edit → numbers-updated latency of the web page, in headless Chromium against `tmath web`.

Starts `tmath web` in a subprocess, opens the page in Debian's Chromium (Playwright), then edits batch and context
N times in turn (each edit one `input` event, as a keystroke gives). In the page, a MutationObserver on the results
timestamps every DOM change with performance.now(); an edit is settled once the results stayed unchanged for
--quiet ms. Per edit it reports
  numbers  edit → the last change to the numbers (cards, serving and training plans, comparison tables),
  all      edit → the last change anywhere in the results (charts included),
  requests the /api/ requests the page sent for that edit.
The page knows nothing of this: the same measurement works on any version of it (the before/after of the issue).

    python benchmarks/bench_web_latency.py                 # 40 edits, llama-3.1-8b, no comparison
    python benchmarks/bench_web_latency.py --edits 80 --compare qwen3-8b,gemma-3-4b
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from soak_web import start_server  # noqa: E402  (`tmath web` in a subprocess, waited for)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

OBSERVE = """() => {
  const b = window.__bench = {last: null, lastNum: null};
  new MutationObserver((list) => {
    const t = performance.now();
    for (const m of list) {
      const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      b.last = t;
      if (el && el.closest("#cards, #serve, #train, #comparison")) b.lastNum = t;
    }
  }).observe(document.getElementById("results"),
             {subtree: true, childList: true, characterData: true, attributes: true});
}"""

EDIT = """async ([id, value, quiet, max]) => {
  const b = window.__bench; b.last = null; b.lastNum = null;
  const el = document.getElementById(id);
  el.value = String(value);
  const t0 = performance.now();
  el.dispatchEvent(new Event("input", {bubbles: true}));
  await new Promise((done) => {
    const tick = () => {
      const now = performance.now();
      if ((b.last !== null && now - b.last > quiet) || now - t0 > max) done(); else setTimeout(tick, 10);
    };
    tick();
  });
  return {numbers: b.lastNum === null ? null : b.lastNum - t0, all: b.last === null ? null : b.last - t0};
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * len(xs) + 0.5) - 1))]


def edits(n: int) -> list[tuple[str, int]]:
    """Batch and context in turn, each edit a value not seen just before."""
    return [("batch", 2 + i) if i % 2 == 0 else ("context", 1024 + 96 * i) for i in range(n)]


def measure(url: str, n: int, quiet_ms: int, warmup: int) -> tuple[list[dict], list[int]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        sent: list[str] = []
        page.on("request", lambda r: sent.append(r.url) if "/api/" in r.url else None)
        page.goto(url)
        page.wait_for_function("() => document.querySelectorAll('#cards .q').length > 0 && "
                               "!/loading|computing/.test(document.getElementById('status').textContent)",
                               timeout=30000)
        page.wait_for_timeout(500)
        page.evaluate(OBSERVE)
        results, requests = [], []
        for i, (field, value) in enumerate(edits(n + warmup)):
            sent.clear()
            r = page.evaluate(EDIT, [field, value, quiet_ms, 10000])
            if i >= warmup:
                results.append(r)
                requests.append(len(sent))
        browser.close()
    return results, requests


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--edits", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=4, help="edits not counted (JIT, caches)")
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--compare", default="", help="presets to compare with, comma separated")
    ap.add_argument("--quiet", type=int, default=700, help="ms without a DOM change that end an edit")
    ap.add_argument("--url", help="measure a server already running here instead of starting one")
    args = ap.parse_args(argv)
    if not os.path.exists(CHROMIUM):
        raise SystemExit(f"needs Chromium at {CHROMIUM}")
    proc = None
    url = args.url
    if url is None:
        port = free_port()
        proc = start_server(port)
        url = f"http://127.0.0.1:{port}"
    query = f"/?model={args.model}" + (f"&compare={args.compare}" if args.compare else "")
    try:
        results, requests = measure(url.rstrip("/") + query, args.edits, args.quiet, args.warmup)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
    print(f"{args.edits} edits of batch/context, {args.model}"
          f"{' vs ' + args.compare if args.compare else ''}; Chromium headless, {os.cpu_count()} CPUs")
    print(f"{'edit → …':<22}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for key, label in (("numbers", "numbers updated"), ("all", "all redrawn")):
        xs = [r[key] for r in results if r[key] is not None]
        missing = len(results) - len(xs)
        if not xs:
            print(f"{label:<22}{'no change seen':>27}")
            continue
        print(f"{label:<22}{statistics.median(xs):>9.0f}{pct(xs, 95):>9.0f}{max(xs):>9.0f}"
              + (f"   ({missing} edits changed nothing)" if missing else ""))
    print(f"requests per change    mean {statistics.mean(requests):.2f}, max {max(requests)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
