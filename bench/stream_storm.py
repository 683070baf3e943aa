#!/usr/bin/env python3
"""Issue 19's stream storm against a running pushjet-bridge on 127.0.0.1, bounded in count.

Opens --streams (default 5,120) ntfy `/json` streams on 40 random device UUIDs, 64 at a time,
each read up to its `open` event and then closed normally (FIN); meanwhile asks `/healthz` and
posts a webhook to --route every 0.2 s and records how long each pair takes. Prints how many
streams opened, the slowest probe, the probes' statuses and `streams_open` two seconds after.

    bench/stream_storm.py --port 8080 [--route demo] [--streams 5120]

Only for 127.0.0.1.
"""

import argparse
import concurrent.futures
import socket
import threading
import time
import urllib.request
import uuid


def open_and_close(port, device):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as stream:
            stream.sendall(f"GET /{device}/json HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            answer = b""
            while b'"open"' not in answer:
                chunk = stream.recv(4096)
                if not chunk:
                    return False
                answer += chunk
            stream.shutdown(socket.SHUT_WR)
            return True
    except OSError:
        return False


def probe(port, route, results, stop):
    while not stop.is_set():
        started = time.time()
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read()
            hook = urllib.request.Request(
                f"http://127.0.0.1:{port}/hooks/{route}", data=b"during the storm", method="POST"
            )
            status = urllib.request.urlopen(hook, timeout=10).status
        except OSError as error:
            status = str(error)
        results.append((time.time() - started, status))
        time.sleep(0.2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--route", default="demo")
    parser.add_argument("--streams", type=int, default=5120)
    args = parser.parse_args()
    devices = [str(uuid.uuid4()) for _ in range(40)]
    results, stop = [], threading.Event()
    prober = threading.Thread(target=probe, args=(args.port, args.route, results, stop))
    prober.start()
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        opened = sum(
            pool.map(
                lambda n: open_and_close(args.port, devices[n % len(devices)]),
                range(args.streams),
            )
        )
    storm = time.time() - started
    time.sleep(2)
    stop.set()
    prober.join()
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{args.port}/metrics").read().decode()
    still_open = [line for line in metrics.splitlines() if line.startswith("pushjet_bridge_streams_open")]
    print(
        f"{opened} of {args.streams} streams opened and closed in {storm:.1f} s; "
        f"{len(results)} probes, slowest {max(r[0] for r in results):.2f} s, "
        f"statuses {sorted({str(r[1]) for r in results})}; two seconds later: {still_open}"
    )


if __name__ == "__main__":
    main()
