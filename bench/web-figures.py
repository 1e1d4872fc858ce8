#!/usr/bin/env python3
"""The web dashboard's figures (issue 20), in headless Chromium through chromedriver.

    bench/web-figures.py BIN DATA [--tenant default] [--loads 10] [--appends 200]

Starts `BIN serve --data DATA` on a free loopback port without tokens and chromedriver,
then measures:
  - first paint: the page's `backorder:dashboard` mark (the first figures on the page) and
    Chromium's first-contentful-paint, both from the navigation's start, over --loads loads
    (the first with an empty cache);
  - bytes transferred by the first load (document, script, style sheet, the dashboard's JSON);
  - an append's time to the page: the page itself POSTs one new request, then waits (a
    MutationObserver) until its dashboard counts it — from the 201 to the change on screen,
    one clock, --appends times in a row.
Both processes are stopped by PID. Standard library only.
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{method} {url}: {error.code} {error.read()[:400]!r}")


class Driver:
    def __init__(self, log):
        self.process = subprocess.Popen(["chromedriver", "--port=0"], stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "TZ": "UTC"})
        deadline = time.time() + 30
        while True:
            text = open(log.name).read()
            match = re.search(r"started successfully on port (\d+)", text)
            if match:
                self.base = f"http://127.0.0.1:{match.group(1)}"
                break
            if time.time() > deadline or self.process.poll() is not None:
                raise SystemExit(f"chromedriver did not start: {text}")
            time.sleep(0.02)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1700", "--lang=en-US"]}}}}
        self.session = http("POST", f"{self.base}/session", caps)["value"]["sessionId"]
        self.call("POST", "timeouts", {"script": 900_000, "pageLoad": 60_000})

    def call(self, method, command, body=None):
        return http(method, f"{self.base}/session/{self.session}/{command}", body)["value"]

    def run_async(self, script, *args):
        return self.call("POST", "execute/async", {"script": script, "args": list(args)})

    def quit(self):
        try:
            http("DELETE", f"{self.base}/session/{self.session}")
        finally:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


FIRST_PAINT = """
const done = arguments[arguments.length - 1];
const began = performance.now();
const look = () => {
  const mark = performance.getEntriesByName('backorder:dashboard')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  // Both entries, or the mark alone after a second (the paint entry comes a frame later).
  if (!mark || (!fcp && performance.now() - began < 1000)) return setTimeout(look, 5);
  const nav = performance.getEntriesByType('navigation')[0];
  const resources = performance.getEntriesByType('resource').filter(r => !r.name.includes('/live'));
  done({ mark: mark.startTime, fcp: fcp ? fcp.startTime : null,
         transferred: nav.transferSize + resources.reduce((s, r) => s + r.transferSize, 0),
         bodies: nav.encodedBodySize + resources.reduce((s, r) => s + r.encodedBodySize, 0),
         parts: [[nav.name, nav.transferSize]].concat(resources.map(r => [r.name, r.transferSize])) });
};
look();
"""

APPENDS = """
const [count, customer, product, size, runID, tenant] = arguments;
const done = arguments[arguments.length - 1];
(async () => {
  const out = [];
  const shown = () => Number(document.querySelector('[data-figure="requests"]')?.dataset.value);
  for (let i = 0; i < count; i++) {
    const before = shown();
    const n = String(i).padStart(6, '0');
    const line = JSON.stringify({ id: `${runID}-4000-8000-${String(i).padStart(12, '0')}`, type: 'OutOfStockReported', actor: 'bench',
      data: { recordId: `W-${runID.slice(0, 8)}-${n}`, customerId: customer, productId: product, size, quantity: 3 } }) + '\\n';
    const start = performance.now();
    const response = await fetch(`/v1/tenants/${tenant}/events`, { method: 'POST', body: line });
    const ack = performance.now();
    if (response.status !== 201) { done({ error: `${response.status} ${await response.text()}` }); return; }
    await new Promise((resolve) => {
      if (shown() >= before + 1) return resolve();
      const observer = new MutationObserver(() => { if (shown() >= before + 1) { observer.disconnect(); resolve(); } });
      observer.observe(document.querySelector('#view'), { subtree: true, childList: true, attributes: true });
    });
    out.push([ack - start, performance.now() - ack]);
  }
  done({ samples: out });
})();
"""


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("bin")
    parser.add_argument("data")
    parser.add_argument("--tenant", default="default")
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--appends", type=int, default=200)
    args = parser.parse_args()

    # A customer, a product and one of its sizes for the appended requests.
    customer = product = size = None
    with open(os.path.join(args.data, "events.ndjson")) as events:
        for line in events:
            event = json.loads(line)
            if event.get("tenant", "default") != args.tenant:
                continue
            if event["type"] == "CustomerRegistered" and not customer:
                customer = event["data"]["customerId"]
            if event["type"] == "ProductRegistered" and not product:
                product, size = event["data"]["productId"], event["data"]["sizes"][0]
            if customer and product:
                break

    port = free_port()
    serve_log = open("/tmp/web-figures-serve.log", "w")
    server = subprocess.Popen([args.bin, "serve", "--data", args.data, "--listen", f"127.0.0.1:{port}", "--insecure-no-auth"],
                              stdout=serve_log, stderr=subprocess.STDOUT)
    driver = None
    try:
        deadline = time.time() + 600
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit("the server did not become ready; /tmp/web-figures-serve.log")
            time.sleep(0.1)
        driver = Driver(open("/tmp/web-figures-chromedriver.log", "w"))
        page = f"http://127.0.0.1:{port}/t/{args.tenant}"
        loads = []
        for _ in range(args.loads):
            driver.call("POST", "url", {"url": "about:blank"})
            driver.call("POST", "url", {"url": page})
            loads.append(driver.run_async(FIRST_PAINT))
        first = loads[0]
        marks = [l["mark"] for l in loads]
        fcps = [l["fcp"] for l in loads if l["fcp"] is not None]
        fcp_text = f"{first['fcp']:.0f} ms" if first["fcp"] is not None else "not reported"
        print(f"first load (empty cache): dashboard on the page at {first['mark']:.0f} ms, first contentful paint {fcp_text}")
        print(f"  transferred {first['transferred']:,} bytes (bodies {first['bodies']:,}): " +
              ", ".join(f"{name.split('/', 3)[-1] or '/'} {size:,}" for name, size in first["parts"]))
        print("  each load (ms): " + ", ".join(f"{m:.0f}" for m in marks))
        print(f"{len(loads)} loads: dashboard mark min {min(marks):.0f} / median {statistics.median(marks):.0f} / max {max(marks):.0f} ms; "
              f"FCP median {statistics.median(fcps):.0f} ms")
        run_id = f"{int(time.time()) & 0xffffffff:08x}-{os.getpid() & 0xffff:04x}"
        result = driver.run_async(APPENDS, args.appends, customer, product, size, run_id, args.tenant)
        if "error" in result:
            raise SystemExit(f"append failed: {result['error']}")
        acks = [s[0] for s in result["samples"]]
        shown = [s[1] for s in result["samples"]]
        print(f"{len(shown)} appends, one at a time: 201 in median {statistics.median(acks):.1f} ms; "
              f"then on the page in p50 {percentile(shown, 50):.1f} / p99 {percentile(shown, 99):.1f} / max {max(shown):.1f} ms")
    finally:
        if driver:
            driver.quit()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
