#!/usr/bin/env python3
"""Load test of `siamese serve` with wrk (a real HTTP load generator).

For each model: fill a gallery with N identities x K samples (app/examples/gallery_fill.rs),
start the server on it, then run wrk against POST /v1/verify and POST /v1/identify at
increasing concurrency; report throughput, p50/p99 latency, errors and the server's resident
memory. Optionally a long overload run (--soak SECONDS) samples the RSS every 10 s.

    python3 bench/serve_load.py --name mlp --model DIR --verify-body a.json --identify-body p.json
    python3 bench/serve_load.py --name faces --model runs/att_conv --images A.pgm B.pgm

Needs wrk (`apt-get install wrk`) and a release build:
    cargo build --release --bin siamese --example gallery_fill
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "siamese")
FILL = os.path.join(ROOT, "target", "release", "examples", "gallery_fill")

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("SIAMESE_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
"""


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def to_ms(value, unit):
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(url, body_file, conns, seconds, threads):
    env = dict(os.environ, SIAMESE_BODY=body_file)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA)
        script = f.name
    out = subprocess.run(
        ["wrk", f"-t{min(threads, conns)}", f"-c{conns}", f"-d{seconds}s", "--latency",
         "--timeout", "10s", "-s", script, url],
        env=env, capture_output=True, text=True, check=True).stdout
    os.unlink(script)
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    def ms(s):
        m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
        return to_ms(m.group(1), m.group(2))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"rps": rps, "p50": ms(lat["50"]), "p99": ms(lat["99"]), "errors": errors,
            "requests": total}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--identities", type=int, default=10000)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--sentences", help="sentence file: text model inputs")
    p.add_argument("--images", nargs=2, help="two image files: image model inputs")
    p.add_argument("--vector-dim", type=int, help="vector model: input width")
    p.add_argument("--concurrency", default="1,4,16,64")
    p.add_argument("--seconds", type=int, default=15)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--soak", type=int, default=0, help="seconds of overload at the top concurrency x2")
    p.add_argument("--port", type=int, default=18080)
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args()

    work = tempfile.mkdtemp(prefix="serve-load-")
    gallery = os.path.join(work, "g.sqlite")
    fill = [FILL, "--model", a.model, "--gallery", gallery, "--identities", str(a.identities),
            "--samples", str(a.samples)]
    if a.sentences:
        fill += ["--sentences", a.sentences]
    t0 = time.time()
    subprocess.run(fill, check=True)
    fill_s = time.time() - t0

    if a.images:
        inputs = [{"image": base64.b64encode(open(f, "rb").read()).decode()} for f in a.images]
    elif a.sentences:
        lines = [l.strip() for l in open(a.sentences) if l.strip()]
        inputs = [{"text": lines[0]}, {"text": lines[1]}]
    else:
        inputs = [{"vector": [((i * 7) % 11) / 11 for i in range(a.vector_dim)]},
                  {"vector": [((i * 5) % 13) / 13 for i in range(a.vector_dim)]}]
    verify = os.path.join(work, "verify.json")
    identify = os.path.join(work, "identify.json")
    json.dump({"a": inputs[0], "b": inputs[1]}, open(verify, "w"))
    json.dump({"probe": inputs[0], "k": 5, "threshold": 0.5}, open(identify, "w"))

    server = subprocess.Popen([BIN, "serve", "--model", a.model, "--gallery", gallery,
                               "--bind", f"127.0.0.1:{a.port}"], stdout=subprocess.PIPE)
    line = server.stdout.readline().decode().strip()
    base = line.replace("listening on ", "")
    rows = []
    try:
        rss0 = rss_mb(server.pid)
        for route, body in [("verify", verify), ("identify", identify)]:
            wrk(f"{base}/v1/{route}", body, 1, 2, 1)  # warm up
            for c in map(int, a.concurrency.split(",")):
                r = wrk(f"{base}/v1/{route}", body, c, a.seconds, a.threads)
                r.update(route=route, conns=c, rss=rss_mb(server.pid))
                rows.append(r)
                print(f"{a.name} {route} c={c}: {r['rps']:.0f} req/s, p50 {r['p50']:.2f} ms, "
                      f"p99 {r['p99']:.2f} ms, errors {r['errors']}, RSS {r['rss']:.0f} MB",
                      flush=True)
        soak = []
        if a.soak:
            c = 2 * max(map(int, a.concurrency.split(",")))
            env = dict(os.environ, SIAMESE_BODY=verify)
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
                f.write(LUA)
            proc = subprocess.Popen(["wrk", f"-t{a.threads}", f"-c{c}", f"-d{a.soak}s", "--latency",
                                     "--timeout", "10s", "-s", f.name, f"{base}/v1/verify"],
                                    env=env, stdout=subprocess.PIPE, text=True)
            start = time.time()
            while proc.poll() is None:
                soak.append((round(time.time() - start), rss_mb(server.pid)))
                time.sleep(10)
            out = proc.stdout.read()
            non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            sock = re.search(r"Socket errors: .*", out)
            rps = re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)
            print(f"{a.name} soak verify c={c} {a.soak}s: {rps} req/s, non-2xx "
                  f"{non2xx.group(1) if non2xx else 0}, {sock.group(0) if sock else 'no socket errors'}; "
                  f"RSS MB over time {soak}", flush=True)
    finally:
        server.terminate()
        server.wait()
    if a.json:
        json.dump({"name": a.name, "fill_seconds": fill_s, "rss_start_mb": rss0, "rows": rows,
                   "soak_rss": soak}, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    sys.exit(main())
