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


def test_load_pick_preset_and_explain(url, page):
    page.goto(url)
    wait_status(page, "llama-3.1-8b")
    assert card(page, "params.total").inner_text() == "8.03 G"
    page.select_option("#model", "qwen3-8b")
    wait_status(page, "qwen3-8b")
    assert card(page, "params.total").inner_text() == "8.19 G"
    title = page.locator('#cards .q[data-key="memory.kv_cache_bytes"]').get_attribute("title")
    assert "B·L_kv·n_layers·2·h_kv·d_h·b_kv" in title and "1·2048·36·2·8·128·2" in title
    page.click('#cards .q[data-key="memory.kv_cache_bytes"]')
    assert page.locator("#explain").is_visible()
    assert page.locator("#explain a").get_attribute("href") == "/symbols#M_KV"
    assert page.locator("#chart-params .main-svg").count() > 0 and page.locator("#chart-roofline .main-svg").count() > 0
    # the plans' numbers explain themselves too: the derivation on hover, and on click
    tpot = page.locator('#serve button[data-plan="serve.tpot"]')
    assert "TPOT = (k_draft·t_draft + t_step) / E_tokens" in tpot.get_attribute("title")
    assert "MFU = F / (t_step·n_GPU·F_peak)" in page.locator('#train button[data-plan="train.mfu"]').get_attribute("title")
    page.click('#train button[data-plan="train.step_time"]')
    assert "t_step = m·t_mb + t_bubble + t_DP + t_opt" in page.locator("#explain").inner_text()
    shot(page, "desktop-qwen3-8b")


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
    page.wait_for_function(f"() => document.querySelector('#cards .q[data-key=\"memory.kv_cache_bytes\"]').title.includes('{expected:,}'.replace(/,/g, ','))",
                           timeout=20000)
    assert card(page, "memory.kv_cache_bytes").inner_text() == f"{expected / 2**30:.2f} GiB"
    assert before > 0 and page.locator("#serve table").inner_text().count("ms") >= 2
    shared = page.url
    page.goto(shared)  # the URL alone restores the view
    wait_status(page, "qwen3-8b")
    assert page.input_value("#batch") == "8" and card(page, "memory.kv_cache_bytes").inner_text() == f"{expected / 2**30:.2f} GiB"


def test_custom_config_and_comparison(url, page):
    page.goto(url)
    wait_status(page, "llama-3.1-8b")
    cfg = {"model_type": "llama", "vocab_size": 99, "hidden_size": 64, "intermediate_size": 37, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24}
    page.click("#custom summary")
    page.fill("#config", json.dumps(cfg))
    page.click("#use-config")
    page.wait_for_function("() => document.querySelector('#cards .q[data-key=\"params.total\"] .value').textContent === '64.06 k'",
                           timeout=20000)
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
    page.fill("#config", json.dumps({"model_type": "bert", "hidden_size": 8}))
    page.click("#use-config")
    page.wait_for_function("() => document.getElementById('error').textContent.includes('model_type')", timeout=20000)
    assert page.locator("#error").is_visible()
    shot(page, "desktop-error")


def test_phone_width(url, browser):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = ctx.new_page()
    page.goto(url + "/?model=gemma-3-4b&batch=2")
    wait_status(page, "gemma-3-4b")
    assert page.evaluate("document.documentElement.scrollWidth") <= 391  # no sideways scrolling of the page
    shot(page, "phone-gemma-3-4b")
    ctx.close()


def test_symbols_page_links(url, page):
    page.goto(url + "/symbols#d_h")
    assert page.locator("tr#d_h").inner_text().startswith("d_h")
