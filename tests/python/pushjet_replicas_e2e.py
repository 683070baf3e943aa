"""Drives the real Python Pushjet client (PyPI `pushjet` 1.0.0) against two replicas of the
embedded server that share one PostgreSQL database: what is done on one is seen on the other.

Usage: python pushjet_replicas_e2e.py http://127.0.0.1:PORT_A/pushjet/ http://127.0.0.1:PORT_B/pushjet/
Every step asserts what came back; the script exits non-zero on the first surprise.
"""

import sys
import uuid

import pushjet


def main(url_a, url_b):
    api_a = pushjet.Api(url_a)
    api_b = pushjet.Api(url_b)

    service = api_a.Service.create("Replicated", "http://example.com/icon.png")
    on_b = api_b.Service(service.secret_key)
    assert on_b.public_key == service.public_key, on_b.public_key
    assert on_b.name == "Replicated", on_b.name
    print("ok: a service created on A opens on B")

    device_a = api_a.Device(str(uuid.uuid4()))
    device_a.subscribe(service)
    device_b = api_b.Device(device_a.uuid)
    subscriptions = device_b.get_subscriptions()
    assert [s.service.public_key for s in subscriptions] == [service.public_key], subscriptions
    print("ok: a subscription made on A is listed on B")

    on_b.send("sent through B", title="Replicas", importance=4)
    messages = device_a.get_messages()
    assert [m.message for m in messages] == ["sent through B"], messages
    assert messages[0].title == "Replicas" and messages[0].importance == 4
    assert device_b.get_messages() == [], "read on A, so nothing left on B"
    print("ok: a message sent through B is fetched on A, once")

    on_b.edit(name="Renamed on B")
    assert api_a.Service(public_key=service.public_key).name == "Renamed on B"
    on_b.delete()
    try:
        api_a.Service(service.secret_key)
    except pushjet.NonexistentError:
        print("ok: a service deleted on B is gone on A")
    else:
        raise AssertionError("the service deleted on B still opens on A")

    print("all steps passed")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
