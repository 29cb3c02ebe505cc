"""The page as a person uses it, in headless Chromium (Debian's chromium, driven by Playwright).

Screenshots go to artifacts/screenshots/ (looked at; one is docs/screenshot.png in the README).
"""

import json
import os
import socket
import threading
import time

import pytest

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "artifacts", "screenshots")


@pytest.fixture(scope="module")
def url():
    uvicorn = pytest.importorskip("uvicorn")
    from transformer_math.web.app import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
    sync = pytest.importorskip("playwright.sync_api")
    with sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    yield pg
    ctx.close()


def shot(page, name):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def card(page, key):
    return page.locator(f'#cards .q[data-key="{key}"] .value')


def wait_status(page, text):
    page.wait_for_function("t => document.getElementById('status').textContent.includes(t)", arg=text, timeout=20000)


def hover_tip(page, selector):
    """Hover a number; the tooltip's text (its derivation)."""
    page.hover(selector)
    page.wait_for_selector("#tip:not([hidden])", timeout=5000)
    return page.locator("#tip").inner_text()


def test_load_pick_preset_and_explain(url, page):
    page.goto(url)
    wait_status(page, "llama-3.1-8b")
    assert card(page, "params.total").inner_text() == "8.03 G"
    page.select_option("#model", "qwen3-8b")
    wait_status(page, "qwen3-8b")
    assert card(page, "params.total").inner_text() == "8.19 G"
    tip = hover_tip(page, '#cards .q[data-key="memory.kv_cache_bytes"]')
    assert "B·L_kv·n_layers·2·h_kv·d_h·b_kv" in tip and "1·2048·36·2·8·128·2" in tip and "bytes  [M_KV]" in tip
    page.mouse.move(1, 1)
    assert page.locator("#tip").is_hidden()
    page.click('#cards .q[data-key="memory.kv_cache_bytes"]')
    assert page.locator("#explain").is_visible()
    assert page.locator("#explain a").get_attribute("href") == "/symbols#M_KV"
    assert page.locator("#chart-params .main-svg").count() > 0 and page.locator("#chart-roofline .main-svg").count() > 0
    page.click('#train button[data-plan="train.step_time"]')
    assert "t_step = m·t_mb + t_bubble + t_DP + t_opt" in page.locator("#explain").inner_text()
    shot(page, "desktop-qwen3-8b")


def test_hovering_a_plan_number_shows_its_formula(url, page):
    """The plans' numbers explain themselves as the cards do: value, unit, symbol, formula, values substituted."""
    page.goto(url + "/?model=qwen3-8b")
    wait_status(page, "qwen3-8b")
    tip = hover_tip(page, '#serve button[data-plan="serve.tpot"]')
    assert "TPOT = (k_draft·t_draft + t_step) / E_tokens" in tip and " s  [TPOT]" in tip
    assert tip.count("=") >= 3  # the formula, then its values substituted
    tip = hover_tip(page, '#train button[data-plan="train.mfu"]')
    assert "MFU = F / (t_step·n_GPU·F_peak)" in tip
    tip = hover_tip(page, '#serve button[data-plan="memory.kv_cache"]')
    assert "bytes  [" in tip and "·" in tip
    box = page.locator("#tip").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1400
    page.focus('#train button[data-plan="memory.per_gpu"]')  # the keyboard gets it too
    assert "memory.per_gpu" in page.locator("#tip").inner_text()


def test_plan_that_does_not_fit_shows_what_would(url, page):
    page.goto(url + "/?model=llama-3.1-70b&gpu=l4&gpus=1&global_batch=1")
    wait_status(page, "llama-3.1-70b")
    serve = page.locator("#serve table").inner_text()
    assert "over by" in serve and "fits with --tp" in serve and "TPOT" not in serve
    assert "over by" in page.locator("#train table").inner_text()


def test_batch_and_context_update_numbers_charts_and_url(url, page):
    page.goto(url + "/?model=qwen3-8b")
    wait_status(page, "qwen3-8b")
    before = page.locator("#chart-context .scatterlayer .trace").count()
    page.fill("#batch", "8")
    page.fill("#context", "4096")
    page.wait_for_function("() => location.search.includes('batch=8') && location.search.includes('context=4096')")
    expected = 8 * 4096 * 36 * 2 * 8 * 128 * 2  # B·L·N_L·2·h_kv·d_h·b_kv
    page.wait_for_function("t => document.querySelector('#cards .q[data-key=\"memory.kv_cache_bytes\"] .value')"
                           ".textContent === t", arg=f"{expected / 2**30:.2f} GiB", timeout=20000)
    assert "8·4096·36·2·8·128·2" in hover_tip(page, '#cards .q[data-key="memory.kv_cache_bytes"]')
    assert before > 0 and page.locator("#serve table").inner_text().count("ms") >= 2
    shared = page.url
    page.goto(shared)  # the URL alone restores the view
    wait_status(page, "qwen3-8b")
    assert page.input_value("#batch") == "8"
    assert card(page, "memory.kv_cache_bytes").inner_text() == f"{expected / 2**30:.2f} GiB"


def test_custom_config_and_comparison(url, page):
    page.goto(url)
    wait_status(page, "llama-3.1-8b")
    cfg = {"model_type": "llama", "vocab_size": 99, "hidden_size": 64, "intermediate_size": 37, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24}
    page.click("#custom summary")
    page.fill("#config", json.dumps(cfg))
    page.click("#use-config")
    page.wait_for_function("() => document.querySelector('#cards .q[data-key=\"params.total\"] .value')"
                           ".textContent === '64.06 k'", timeout=20000)
    page.click("#clear-config")
    wait_status(page, "llama-3.1-8b")
    page.select_option("#compare", ["gemma-3-4b", "gpt-oss-20b"])
    page.wait_for_function("() => document.querySelectorAll('#comparison tbody tr').length === 3", timeout=20000)
    assert "gpt-oss-20b" in page.locator("#comparison").inner_text()
    shot(page, "desktop-compare")


def test_broken_configs_show_clear_errors(url, page):
    page.goto(url)
    wait_status(page, "llama-3.1-8b")
    page.click("#custom summary")
    page.fill("#config", "{broken")
    page.click("#use-config")
    assert "malformed JSON" in page.locator("#error").inner_text()
    page.fill("#config", json.dumps({"model_type": "roberta", "hidden_size": 8}))
    page.click("#use-config")
    page.wait_for_function("() => document.getElementById('error').textContent.includes('model_type')", timeout=20000)
    assert page.locator("#error").is_visible()
    shot(page, "desktop-error")


DRAWN = "() => document.body.dataset.renders && document.querySelectorAll('#chart-context .main-svg').length"
OVERFLOW = """() => {
  const vw = innerWidth, out = [];
  const outside = (r) => r.left < -0.5 || r.right > vw + 0.5;
  if (document.scrollingElement.scrollWidth > vw) out.push("page scrollWidth " + document.scrollingElement.scrollWidth);
  for (const c of document.querySelectorAll(".chart, .chart .main-svg")) {
    const r = c.getBoundingClientRect();
    if (!r.width || outside(r)) out.push(`chart ${c.id || c.parentElement.closest(".chart").id} ${r.left}–${r.right}`);
  }
  for (const t of document.querySelectorAll(".scroll, .card, .cards, #explain:not([hidden]), #tip:not([hidden])")) {
    const r = t.getBoundingClientRect();
    if (outside(r)) out.push(`${t.id || t.className} ${r.left}–${r.right}`);
  }
  return out;
}"""


def test_phone_width_nothing_overflows(url, browser):
    """At 390×844 the page never scrolls sideways: every chart fits the width, tables scroll in their own box."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = ctx.new_page()
    page.goto(url + "/?model=gemma-3-4b&batch=2&compare=qwen3-8b,gpt-oss-20b,llama-3.1-70b")
    wait_status(page, "gemma-3-4b")
    page.wait_for_function(DRAWN)
    assert page.evaluate(OVERFLOW) == []
    wide = page.evaluate("() => [...document.querySelectorAll('.scroll')]"
                         ".filter((b) => b.scrollWidth > b.clientWidth).length")
    assert wide >= 1  # the comparison (7 columns) is wider than a phone: it scrolls inside its box
    page.click('#cards .q[data-key="flops.prefill"]')  # the derivation box, long formulas and all
    page.hover('#serve button[data-plan="serve.tpot"]')
    assert page.locator("#tip").is_visible() and page.evaluate(OVERFLOW) == []
    shot(page, "phone-gemma-3-4b")
    ctx.close()


def test_charts_follow_the_window_from_desktop_to_phone(url, page):
    page.goto(url + "/?model=qwen3-8b")
    page.wait_for_function(DRAWN)
    wide = page.locator("#chart-roofline").bounding_box()["width"]
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_function("() => document.querySelector('#chart-roofline .main-svg')"
                           ".getBoundingClientRect().right <= innerWidth")
    assert page.evaluate(OVERFLOW) == [] and page.locator("#chart-roofline").bounding_box()["width"] < wide


def test_symbols_page_links(url, page):
    page.goto(url + "/symbols#d_h")
    assert page.locator("tr#d_h").inner_text().startswith("d_h")


EDIT = """async ([id, value]) => {
  const when = (name) => new Promise((done) =>
    document.addEventListener(name, () => done(performance.now()), {once: true}));
  const numbers = when("tmath:numbers"), drawn = when("tmath:rendered");
  const timeout = new Promise((done) => setTimeout(() => done(null), 10000));
  const el = document.getElementById(id);
  el.value = String(value);
  const t0 = performance.now();
  el.dispatchEvent(new Event("input", {bubbles: true}));
  const [n, d] = await Promise.race([Promise.all([numbers, drawn]), timeout.then(() => [null, null])]);
  return n === null ? null : [n - t0, d - t0];
}"""


def test_an_edit_is_one_request_and_quick(url, page):
    """Each change of batch or context is one request and its numbers show promptly (a bound for a slow 2-core CI
    machine; benchmarks/bench_web_latency.py measures the real figure)."""
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/api/" in r.url else None)
    page.goto(url + "/?model=qwen3-8b&compare=gemma-3-4b")
    page.wait_for_function("() => document.body.dataset.renders")
    numbers, drawn, per_edit = [], [], []
    for i in range(16):
        sent.clear()
        t = page.evaluate(EDIT, ["batch", 2 + i] if i % 2 == 0 else ["context", 1000 + 100 * i])
        assert t is not None, "no render within 10 s"
        page.wait_for_timeout(50)
        numbers.append(t[0])
        drawn.append(t[1])
        per_edit.append(list(sent))
    assert all(len(s) == 1 and s[0].endswith("/api/view") for s in per_edit), per_edit
    p95 = sorted(numbers)[int(0.95 * len(numbers))]
    assert p95 < 400, numbers
    assert max(drawn) < 2000, drawn
    expected = 16 * 2500 * 36 * 2 * 8 * 128 * 2  # the last edits: B = 16, L = 2500
    assert card(page, "memory.kv_cache_bytes").inner_text() == f"{expected / 2**30:.2f} GiB"
    assert page.locator("#comparison tbody tr").count() == 2


def test_typing_is_coalesced_and_the_latest_answer_wins(url, page):
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/api/view" in r.url else None)
    page.goto(url + "/?model=qwen3-8b&batch=8")
    page.wait_for_function("() => document.body.dataset.renders")
    sent.clear()
    page.evaluate("""() => { const el = document.getElementById("context");
        for (const v of ["4", "40", "409", "4096"]) {
          el.value = v; el.dispatchEvent(new Event("input", {bubbles: true}));
        } }""")
    expected = 8 * 4096 * 36 * 2 * 8 * 128 * 2
    page.wait_for_function("t => document.querySelector('#cards .q[data-key=\"memory.kv_cache_bytes\"] .value')"
                           ".textContent === t", arg=f"{expected / 2**30:.2f} GiB", timeout=20000)
    assert len(sent) == 1
    sent.clear()
    page.fill("#batch", "3")  # typed while an answer is in flight: one more request, and its answer is shown
    page.fill("#batch", "5")
    expected = 5 * 4096 * 36 * 2 * 8 * 128 * 2
    page.wait_for_function("t => document.querySelector('#cards .q[data-key=\"memory.kv_cache_bytes\"] .value')"
                           ".textContent === t", arg=f"{expected / 2**30:.2f} GiB", timeout=20000)
    assert 1 <= len(sent) <= 2


def test_compare_with_custom_configs(url, page, tmp_path):
    """A pasted or uploaded config.json joins the comparison, as the analysis takes one; the URL keeps it."""
    tiny = {"model_type": "llama", "vocab_size": 99, "hidden_size": 64, "intermediate_size": 37, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24}
    page.goto(url + "/?model=qwen3-8b&compare=gemma-3-4b")
    page.wait_for_function("() => document.querySelectorAll('#comparison tbody tr').length === 2", timeout=20000)
    page.click("#compare-custom summary")
    page.fill("#compare-config", json.dumps(tiny))
    page.fill("#compare-name", "tiny llama")
    page.click("#add-compare")
    page.wait_for_function("() => document.querySelectorAll('#comparison tbody tr').length === 3", timeout=20000)
    rows = page.locator("#comparison tbody tr")
    assert rows.nth(2).inner_text().split("\t")[:2] == ["tiny llama", "64.06 k"]
    upload = tmp_path / "wide-llama.json"
    upload.write_text(json.dumps({**tiny, "hidden_size": 128, "head_dim": 32}))
    page.set_input_files("#compare-upload", str(upload))
    page.wait_for_function("() => document.getElementById('compare-name').value === 'wide-llama'")
    page.click("#add-compare")
    page.wait_for_function("() => document.querySelectorAll('#comparison tbody tr').length === 4", timeout=20000)
    assert "wide-llama" in rows.nth(3).inner_text()
    assert "compare_configs=" in page.url
    page.goto(page.url)  # the URL alone restores the comparison
    page.wait_for_function("() => document.querySelectorAll('#comparison tbody tr').length === 4", timeout=20000)
    page.click('#compare-list button[data-remove="0"]')
    page.wait_for_function("() => document.querySelectorAll('#comparison tbody tr').length === 3", timeout=20000)
    assert "tiny llama" not in page.locator("#comparison").inner_text()
    page.click("#compare-custom summary")
    page.fill("#compare-config", "{broken")
    page.click("#add-compare")
    assert "malformed JSON" in page.locator("#error").inner_text()
    shot(page, "desktop-compare-configs")


def test_a_custom_model_is_the_first_row_of_its_comparison(url, page):
    page.goto(url + "/?model=qwen3-8b&compare=gemma-3-4b")
    wait_status(page, "qwen3-8b")
    cfg = {"_name_or_path": "me/tiny", "model_type": "llama", "vocab_size": 99, "hidden_size": 64,
           "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
           "head_dim": 24}
    page.click("#custom summary")
    page.fill("#config", json.dumps(cfg))
    page.click("#use-config")
    wait_status(page, "me/tiny")
    first = page.locator("#comparison tbody tr").first.inner_text().split("\t")
    assert first[:2] == ["me/tiny", "64.06 k"] and "gemma-3-4b" in page.locator("#comparison").inner_text()
