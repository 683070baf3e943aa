"""Pushjet's connector protocol (GET /pushjet/ws) spoken by a WebSocket client that is not ours,
the `websockets` package, byte for byte. Run by tests/pushjet/streams.rs with the service's base
URL; the service runs with a short keepalive and a small stream buffer. Prints "all steps passed".
"""

import asyncio
import json
import sys
import time
import urllib.parse
import urllib.request
import uuid

import websockets

BASE = sys.argv[1].rstrip("/")
WS = "ws" + BASE[len("http"):] + "/pushjet/ws"
STATUS_OK = "{'status': 'ok'}"
INVALID_UUID = '{"error":{"id":1,"message":"Invalid client uuid"}}'
BINARY = '{"error":{"id":-1,"message":"Expected text got binary data"}}'


def call(method, path, **form):
    data = urllib.parse.urlencode(form).encode() if form else None
    request = urllib.request.Request(BASE + "/pushjet" + path, data=data, method=method)
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read().decode())


def create_service(name):
    return call("POST", "/service", name=name, icon="https://example.com/i.png")["service"]


def public_view(service):
    return call("GET", "/service?service=" + service["public"])["service"]


def subscribe(device, service):
    call("POST", "/subscription", uuid=device, service=service["public"])


def send(service, text, **fields):
    call("POST", "/message", secret=service["secret"], message=text, **fields)


def unread(device):
    return call("GET", "/message?uuid=" + device)["messages"]


def expect_message_frame(frame, service, text, title="", link="", level=3):
    """The frame is {"message": M} exactly as Python's json.dumps writes it (sorted keys)."""
    decoded = json.loads(frame)
    assert frame == json.dumps(decoded, sort_keys=True), frame
    message = decoded["message"]
    assert message["message"] == text, (message, text)
    assert message["title"] == title, message
    assert message["link"] == link, message
    assert message["level"] == level, message
    assert message["service"] == public_view(service), message
    assert abs(message["timestamp"] - time.time()) < 30, message
    return message


async def recv(ws, timeout=5):
    return await asyncio.wait_for(ws.recv(), timeout)


async def nothing_arrives(ws, seconds=0.5):
    try:
        frame = await asyncio.wait_for(ws.recv(), seconds)
    except asyncio.TimeoutError:
        return
    raise AssertionError("unexpected frame: " + repr(frame))


async def closed_after(ws, expected):
    assert await recv(ws) == expected
    try:
        frame = await recv(ws)
    except websockets.ConnectionClosed:
        return
    raise AssertionError("the connection stayed open and sent " + repr(frame))


async def hello_unread_then_live():
    device = str(uuid.uuid4())
    first = create_service("Connector one")
    subscribe(device, first)
    send(first, "waiting \u00e9\U0001F600", title="Unread", link="https://example.com/a", level="5")
    async with websockets.connect(WS) as ws:
        await ws.send(device)
        assert await recv(ws) == STATUS_OK
        expect_message_frame(await recv(ws), first, "waiting \u00e9\U0001F600", "Unread", "https://example.com/a", 5)
        assert unread(device) == [], "the unread message was consumed"

        send(first, "live one")
        expect_message_frame(await recv(ws), first, "live one")

        await ws.send("ignored after the uuid")
        await nothing_arrives(ws)

        second = create_service("Connector two")
        subscribe(device, second)
        change = json.loads(await recv(ws))
        assert list(change) == ["subscription"], change
        assert change["subscription"]["uuid"] == device, change
        assert change["subscription"]["service"] == public_view(second), change
        send(second, "from the new subscription")
        expect_message_frame(await recv(ws), second, "from the new subscription")

        call("DELETE", "/subscription", uuid=device, service=second["public"])
        send(second, "after unsubscribing")
        send(first, "still subscribed")
        expect_message_frame(await recv(ws), first, "still subscribed")

        await asyncio.sleep(0.5)  # read marks are written in the background
        assert unread(device) == [], "live messages were marked read"

        call("DELETE", "/service?secret=" + first["secret"])
        removed = json.loads(await recv(ws))
        assert removed["subscription"]["service"]["public"] == first["public"], removed
    print("hello, unread, live, subscription changes: ok")


async def bad_first_frames():
    async with websockets.connect(WS) as ws:
        await ws.send("not-a-uuid")
        await closed_after(ws, INVALID_UUID)
    async with websockets.connect(WS) as ws:
        await ws.send(b"\x00\x01")
        await closed_after(ws, BINARY)
    device = str(uuid.uuid4())
    async with websockets.connect(WS) as ws:
        await ws.send(device)
        assert await recv(ws) == STATUS_OK
        await ws.send(b"binary after the uuid")
        await closed_after(ws, BINARY)
    print("invalid uuid and binary frames: ok")


async def per_device_limit_closes_with_a_reason():
    """The service runs with PUSHJET_BRIDGE_MAX_STREAMS_PER_DEVICE=2."""
    device = str(uuid.uuid4())
    async with websockets.connect(WS) as first, websockets.connect(WS) as second:
        for ws in (first, second):
            await ws.send(device)
            assert await recv(ws) == STATUS_OK
        async with websockets.connect(WS) as third:
            await third.send(device)
            try:
                frame = await recv(third)
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd.code == 1013, closed.rcvd
                assert closed.rcvd.reason == "too many streams are open for this device (2)", closed.rcvd
            else:
                raise AssertionError("a third stream was accepted: " + repr(frame))
    print("per-device limit: ok")


async def slow_client_loses_nothing():
    """A client that does not read is disconnected; what it received and what stays unread add
    up to everything sent, each message once."""
    device = str(uuid.uuid4())
    service = create_service("Busy")
    subscribe(device, service)
    total = 500
    padding = "x" * 40000
    async with websockets.connect(WS, max_queue=2, max_size=None) as slow:
        await slow.send(device)
        assert await recv(slow) == STATUS_OK
        loop = asyncio.get_running_loop()
        for number in range(total):
            await loop.run_in_executor(None, lambda n=number: send(service, "%d %s" % (n, padding)))
        received = []
        try:
            while True:
                frame = await recv(slow, timeout=10)
                received.append(int(json.loads(frame)["message"]["message"].split()[0]))
        except websockets.ConnectionClosed as closed:
            reason = closed.rcvd.reason if closed.rcvd else ""
    assert "too slow" in reason, reason
    assert len(received) < total, "the slow client was dropped before the end"
    await asyncio.sleep(1.0)
    # One GET /message answers at most PUSHJET_BRIDGE_PUSHJET_MAX_FETCH_BYTES: read until empty.
    rest = []
    while True:
        page = [int(m["message"].split()[0]) for m in unread(device)]
        if not page:
            break
        rest.extend(page)
    assert sorted(received + rest) == list(range(total)), (len(received), len(rest))
    print("slow client dropped after %d of %d, the other %d stayed unread: ok" % (len(received), total, len(rest)))


async def main():
    await hello_unread_then_live()
    await bad_first_frames()
    await per_device_limit_closes_with_a_reason()
    await slow_client_loses_nothing()
    print("all steps passed")


asyncio.run(main())
