"""A browser page on another origin using the bridge as ntfy's web app does (tests/bridge/ntfy_apps.rs).

Usage: ntfy_browser_e2e.py BRIDGE_BASE_URL DEVICE_UUID

Serves a page of its own on 127.0.0.1 (another port, so another origin), opens it in Debian's
Chromium (Playwright drives /usr/bin/chromium; no browser is downloaded) and, in the page:

1. opens an ntfy WebSocket (`/<uuid>/ws`) and an EventSource (`/<uuid>/sse`) on the device's
   topic, publishes with `fetch` (`PUT /`, ntfy's JSON message with the topic inside: CORS
   preflight included) and waits for the message on both; prints one JSON line with what it saw;
2. reads the id of that message from standard input once the test restarted the bridge, notes
   whether the WebSocket's close was clean, reconnects with `since=<id>` and prints one JSON line
   with the messages it got and `was_clean`.
"""

import http.server
import json
import sys
import threading

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>ntfy client test</title></head>
<body><script>
window.seen = { ws: [], sse: [], resumed: [], closes: [] };
window.subscribe = (base, topic) => new Promise((resolve, reject) => {
  const wsBase = base.replace(/^http/, "ws");
  const socket = new WebSocket(`${wsBase}/${topic}/ws`);
  const source = new EventSource(`${base}/${topic}/sse`);
  let opened = 0;
  const ready = () => { opened += 1; if (opened === 2) resolve(); };
  socket.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.event === "open") ready();
    if (data.event === "message") window.seen.ws.push(data);
  };
  socket.onclose = (event) => window.seen.closes.push({ code: event.code, wasClean: event.wasClean });
  socket.onerror = () => {};
  source.addEventListener("open", () => ready());
  source.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.event === "message") window.seen.sse.push(data);
  };
  window.source = source;
  setTimeout(() => reject(new Error("the streams did not open")), 15000);
});
window.publish = async (base, topic, message) => {
  const response = await fetch(`${base}/`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ topic, message, title: "Test", priority: 3 }),
  });
  return { status: response.status, body: await response.json() };
};
window.resume = (base, topic, since) => {
  const wsBase = base.replace(/^http/, "ws");
  const socket = new WebSocket(`${wsBase}/${topic}/ws?since=${since}`);
  socket.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.event === "message") window.seen.resumed.push(data.message);
  };
};
</script></body></html>
"""


class PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the standard library's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


def report(value):
    print(json.dumps(value), flush=True)


def main():
    base, topic = sys.argv[1], sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{origin}/")
        page.evaluate("([base, topic]) => window.subscribe(base, topic)", [base, topic])
        published = page.evaluate(
            "([base, topic]) => window.publish(base, topic, 'from the browser')", [base, topic]
        )
        page.wait_for_function(
            "() => window.seen.ws.length > 0 && window.seen.sse.length > 0", timeout=WAIT_MS
        )
        seen = page.evaluate("() => window.seen")
        page.evaluate("() => window.source.close()")
        report(
            {
                "published_status": published["status"],
                "published": published["body"],
                "websocket": seen["ws"][0],
                "eventsource": seen["sse"][0],
            }
        )

        since = sys.stdin.readline().strip()
        page.wait_for_function("() => window.seen.closes.length > 0", timeout=WAIT_MS)
        page.evaluate("([base, topic, since]) => window.resume(base, topic, since)", [base, topic, since])
        try:
            page.wait_for_function("() => window.seen.resumed.length >= 2", timeout=WAIT_MS)
        except Exception:  # reported below: the test says what was missing
            pass
        seen = page.evaluate("() => window.seen")
        report({"resumed": seen["resumed"], "was_clean": seen["closes"][0]["wasClean"]})
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()
