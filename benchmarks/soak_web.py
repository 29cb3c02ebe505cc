"""Soak the web app as `tmath web` runs it: a subprocess server, C keep-alive clients, N requests over a mix of
endpoints (valid, invalid and hostile bodies), then schemathesis against the same live server.

Prints requests/s, p50/p99/max latency per endpoint, status counts and the server's RSS (VmRSS of its process)
before and after; exits 1 on any 5xx or conformance failure.

    python benchmarks/soak_web.py                          # 20,000 requests + 2,000 fuzzed: ≈ 2-3 min on 2 cores
    python benchmarks/soak_web.py --fuzz-requests 10000    # the ≥ 10^4 schemathesis run (≈ +1 min)
    python benchmarks/soak_web.py --requests 0 --fuzz-requests 10000   # that run alone
    python benchmarks/soak_web.py --requests 2000 --fuzz-requests 0   # a quick look
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

CONFIG = {"model_type": "llama", "vocab_size": 99, "hidden_size": 64, "intermediate_size": 37, "num_hidden_layers": 2,
          "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 24}
# (times per cycle, label, method, path, body): what the page asks for (mostly cheap reads and analyses, a few plans),
# its users' mistakes, and what an attacker sends. One cycle is 40 requests.
WEIGHTED: list[tuple[int, str, str, str, bytes | None]] = [
    (4, "presets", "GET", "/api/presets", None),
    (2, "hardware", "GET", "/api/hardware", None),
    *[(3, "analyze", "POST", "/api/analyze", json.dumps({"model": m, "batch": b, "context": 4096}).encode())
      for m, b in (("llama-3.1-8b", 1), ("qwen3-8b", 8), ("gemma-3-4b", 2), ("gpt-oss-20b", 4))],
    (3, "analyze config", "POST", "/api/analyze", json.dumps({"config": CONFIG}).encode()),
    (3, "serve", "POST", "/api/serve", json.dumps({"model": "llama-3.1-70b", "gpu": "h100-sxm", "tp": 4,
                                                   "batch": 32}).encode()),
    (1, "serve no-fit", "POST", "/api/serve", json.dumps({"model": "llama-3.1-70b", "gpu": "l4"}).encode()),
    (1, "curve", "POST", "/api/curve", json.dumps({"model": "qwen3-8b", "gpu": "l4"}).encode()),
    (2, "train", "POST", "/api/train", json.dumps({"model": "llama-3.1-70b", "gpus": 256, "tp": 8, "pp": 4,
                                                   "global_batch": 256, "seq": 8192}).encode()),
    (1, "train search", "POST", "/api/train", json.dumps({"model": "llama-3.1-70b", "gpus": 4096,
                                                          "search": True}).encode()),
    (2, "compare", "POST", "/api/compare", json.dumps({"models": ["llama-3.1-8b", "qwen3-8b", "gemma-3-4b"]}).encode()),
    (3, "invalid", "POST", "/api/analyze", json.dumps({"model": "gpt2", "batch": 0}).encode()),
    (2, "hostile", "POST", "/api/analyze", b'{"config": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    (1, "hostile", "POST", "/api/serve", b'{"model": "gpt2", "acceptance": NaN}'),
    (1, "hostile", "POST", "/api/analyze", b'{"config": {"model_type": "\\ud800"}}'),
    (1, "hostile", "POST", "/api/train", b'{"model": "gpt2", "gpus": ' + b"9" * 5000 + b"}"),
    (2, "not found", "GET", "/api/nothing", None),
]
MIX = [job for n, *job in WEIGHTED for _ in range(n)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    """VmRSS of a process (Linux /proc), MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_server(port: int) -> subprocess.Popen:
    """`tmath web` itself, in a subprocess (its own RSS, its own GIL)."""
    proc = subprocess.Popen([sys.executable, "-m", "transformer_math", "web", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server did not start: {proc.stderr.read().decode()[-2000:]}")


def client(port: int, jobs: list[tuple], results: list, lock: threading.Lock) -> None:
    """One keep-alive connection working through its share of the requests."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    for label, method, path, body in jobs:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        t0 = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            status = r.status
            if r.getheader("connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException) as e:
            status = f"error {type(e).__name__}"
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        out.append((label, status, time.perf_counter() - t0))
    conn.close()
    with lock:
        results.extend(out)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def soak(port: int, n: int, c: int) -> tuple[list, float]:
    jobs = list(itertools.islice(itertools.cycle(MIX), n))  # client i takes every c-th: each sees the whole mix
    results: list = []
    lock = threading.Lock()
    threads = [threading.Thread(target=client, args=(port, jobs[i::c], results, lock)) for i in range(c)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - t0


def report_soak(results: list, seconds: float) -> Counter:
    by: dict[str, list] = defaultdict(list)
    for label, status, dt in results:
        by[label].append((status, dt))
    print(f"\n{len(results):,} requests in {seconds:.1f} s: {len(results) / seconds:,.0f} requests/s\n")
    print(f"{'endpoint':16s} {'requests':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}  statuses")
    total: Counter = Counter()
    for label, rows in by.items():
        dts = [dt * 1e3 for _, dt in rows]
        codes = Counter(s for s, _ in rows)
        total.update(codes)
        shown = " ".join(f"{k}×{v}" for k, v in sorted(codes.items(), key=str))
        print(f"{label:16s} {len(rows):9,d} {pct(dts, .5):8.1f} {pct(dts, .99):8.1f} {max(dts):8.1f}  {shown}")
    dts = [dt * 1e3 for *_, dt in results]
    print(f"{'all':16s} {len(results):9,d} {pct(dts, .5):8.1f} {pct(dts, .99):8.1f} {max(dts):8.1f}  "
          + " ".join(f"{k}×{v}" for k, v in sorted(total.items(), key=str)))
    return total


def fuzz_operation(op, examples: int, base: str, session, checks: list) -> dict:
    """`examples` schemathesis cases of one operation against the live server; failures counted, not raised."""
    from hypothesis import HealthCheck, given, settings

    stats: dict = {"tried": 0, "failed": 0, "worst": 0.0, "codes": Counter(), "first": None, "slowest": None}

    @given(case=op.as_strategy())
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        t0 = time.perf_counter()
        response = case.call(base_url=base, session=session)
        dt = time.perf_counter() - t0
        if dt > stats["worst"]:
            stats["worst"], stats["slowest"] = dt, json.dumps(case.body, default=str)[:300]
        stats["tried"] += 1
        stats["codes"][response.status_code] += 1
        try:
            case.validate_response(response, checks=checks)
            assert response.status_code < 500, response.text
        except Exception as e:  # the run goes on, and reports every failure
            stats["failed"] += 1
            stats["first"] = stats["first"] or f"{type(e).__name__}: {str(e)[:300]}"

    run()
    return stats


def fuzz(port: int, total: int) -> int:
    """schemathesis over every operation of the live server, ≈ `total` requests; prints tried / failed / worst."""
    import requests
    import schemathesis
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    base = f"http://127.0.0.1:{port}"
    ops = [r.ok() for r in schemathesis.openapi.from_url(f"{base}/openapi.json").get_all_operations()]
    with_body = [op for op in ops if op.method.upper() == "POST"]
    per_op = max(1, -(-total // max(1, len(with_body))))
    session = requests.Session()
    print(f"\nschemathesis against the live server: {per_op:,} cases per operation with a body (positive and "
          f"negative); checks: {', '.join(c.__name__ for c in checks)}\n")
    print(f"{'operation':22s} {'tried':>7s} {'failed':>7s} {'worst ms':>9s}  statuses")
    tried = failed = 0
    worst = 0.0
    for op in ops:
        st = fuzz_operation(op, per_op if op in with_body else 1, base, session, checks)
        codes = " ".join(f"{k}×{v}" for k, v in sorted(st["codes"].items()))
        print(f"{op.method.upper() + ' ' + op.path:22s} {st['tried']:7,d} {st['failed']:7,d} "
              f"{st['worst'] * 1e3:9.1f}  {codes}")
        if st["first"]:
            print(f"    first failure: {st['first']}")
        if st["worst"] > 1:
            print(f"    slowest: {st['slowest']}")
        tried, failed, worst = tried + st["tried"], failed + st["failed"], max(worst, st["worst"])
    print(f"{'all':22s} {tried:7,d} {failed:7,d} {worst * 1e3:9.1f}")
    return failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=20_000, help="soak requests (default 20,000)")
    ap.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients (default 8)")
    ap.add_argument("--fuzz-requests", type=int, default=2_000,
                    help="schemathesis requests after the soak (default 2,000; 10000 for the full run; 0: none)")
    args = ap.parse_args()
    port = free_port()
    server = start_server(port)
    try:
        before = rss_mib(server.pid)
        print(f"server: `tmath web --port {port}` (pid {server.pid}), {os.cpu_count()} CPUs; "
              f"{args.requests:,} requests, {args.clients} clients, a mix of {len(WEIGHTED)} kinds")
        bad = 0
        if args.requests:
            results, seconds = soak(port, args.requests, args.clients)
            after = rss_mib(server.pid)
            codes = report_soak(results, seconds)
            print(f"\nserver RSS: {before:.1f} MiB before, {after:.1f} MiB after the soak")
            bad = sum(v for k, v in codes.items() if not isinstance(k, int) or k >= 500)
        failed = fuzz(port, args.fuzz_requests) if args.fuzz_requests else 0
        if args.fuzz_requests:
            print(f"\nserver RSS: {rss_mib(server.pid):.1f} MiB after the fuzzing")
    finally:
        server.terminate()
        server.wait(10)
    print(f"\n5xx or connection errors: {bad}; schema-conformance failures: {failed}")
    return 1 if bad or failed else 0


if __name__ == "__main__":
    sys.exit(main())
