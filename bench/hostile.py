#!/usr/bin/env python3
"""Hostile load against a running pushjet-bridge on 127.0.0.1, bounded in count and time.

Opens N connections (default 2,000) that each declare a 5 MiB webhook body for a route that
requires a token, send a wrong token (or, with --attack-token, the right one, so that the body
is read) and trickle the body 64 bytes every 200 ms; while
they are open, sends a normal webhook once a second and records how long its answer takes; samples
the service's resident memory from /proc. Prints one JSON object: peak RSS, and the normal
requests' answer times.

    bench/hostile.py --port 8080 --pid 1234 --route alerts --token T [--connections 2000]
                     [--attack-token T]

Only for 127.0.0.1; stops by itself after --seconds (default 30).
"""

import argparse
import asyncio
import json
import time


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def trickle(port, route, token, until):
    """One hostile connection: headers for a 5 MiB body, then a byte every 200 ms."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return "refused"
    head = (
        f"POST /hooks/{route} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Length: {5 * 1024 * 1024}\r\n\r\n"
    )
    try:
        writer.write(head.encode())
        while time.monotonic() < until:
            writer.write(b"{" * 64)
            await writer.drain()
            await asyncio.sleep(0.2)
    except (ConnectionError, OSError):
        return "closed"
    finally:
        writer.close()
    return "held"


async def normal_request(port, route, token):
    """A normal webhook; its answer time in seconds, or None when it got none within 10 s."""
    body = b'{"title": "probe", "message": "still answering"}'
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), 10
        )
        writer.write(
            (
                f"POST /hooks/{route} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            + body
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        return time.monotonic() - started, status.decode().strip()
    except (asyncio.TimeoutError, OSError) as error:
        return None, str(error)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--route", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--attack-token", default="wrong")
    args = parser.parse_args()

    until = time.monotonic() + args.seconds
    idle_rss = rss_bytes(args.pid)
    attackers = [
        asyncio.create_task(trickle(args.port, args.route, args.attack_token, until))
        for _ in range(args.connections)
    ]
    peak, answers = idle_rss, []
    while time.monotonic() < until - 1:
        await asyncio.sleep(1)
        peak = max(peak, rss_bytes(args.pid))
        answers.append(await normal_request(args.port, args.route, args.token))
        peak = max(peak, rss_bytes(args.pid))
    outcomes = await asyncio.gather(*attackers)
    times = sorted(t for t, _ in answers if t is not None)
    print(
        json.dumps(
            {
                "connections": args.connections,
                "seconds": args.seconds,
                "idle_rss_mib": round(idle_rss / 2**20, 1),
                "peak_rss_mib": round(peak / 2**20, 1),
                "normal_requests": len(answers),
                "answered": len(times),
                "statuses": sorted({status for _, status in answers}),
                "answer_seconds_max": round(times[-1], 3) if times else None,
                "answer_seconds_median": round(times[len(times) // 2], 3) if times else None,
                "hostile_outcomes": {o: outcomes.count(o) for o in set(outcomes)},
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
