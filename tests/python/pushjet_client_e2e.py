"""Drives the real Python Pushjet client (PyPI `pushjet` 1.0.0) against the embedded server.

Usage: python pushjet_client_e2e.py http://127.0.0.1:PORT/pushjet/
Every step asserts what came back; the script exits non-zero on the first surprise.
"""

import sys
import uuid

import pushjet


def expect_error(error_type, action, what):
    try:
        action()
    except error_type:
        print(f"ok: {what} raised {error_type.__name__}")
        return
    raise AssertionError(f"{what} should have raised {error_type.__name__}")


def main(url):
    api = pushjet.Api(url)

    service = api.Service.create("Python test", "http://example.com/icon.png")
    assert len(service.secret_key) == 32, service.secret_key
    assert len(service.public_key) == 40, service.public_key
    assert service.name == "Python test", service.name
    assert service.icon_url == "http://example.com/icon.png", service.icon_url
    assert isinstance(service.created, int) and service.created > 1_700_000_000, service.created
    print("ok: create with icon")

    by_secret = api.Service(service.secret_key)
    assert by_secret.public_key == service.public_key
    assert by_secret.secret_key == service.secret_key
    assert by_secret.name == "Python test"
    print("ok: open by secret")

    by_public = api.Service(public_key=service.public_key)
    assert by_public.secret_key is None
    assert by_public.name == "Python test"
    assert by_public.created == service.created
    print("ok: open by public_key=")

    first = api.Device(str(uuid.uuid4()))
    second = api.Device(str(uuid.uuid4()))
    subscribed = first.subscribe(service)
    assert subscribed.public_key == service.public_key and subscribed.name == "Python test"
    subscribed = second.subscribe(service.public_key)
    assert subscribed.public_key == service.public_key
    print("ok: subscribe by object and by key")

    subscriptions = first.get_subscriptions()
    assert len(subscriptions) == 1, subscriptions
    assert subscriptions[0].service.public_key == service.public_key
    assert subscriptions[0].device_uuid == first.uuid
    assert subscriptions[0].time_subscribed > 1_700_000_000
    assert isinstance(subscriptions[0].last_checked, int)
    print("ok: get_subscriptions")

    service.send("Disk almost full on db-1", title="Disk space", link="https://grafana.example/d/1", importance=5)
    messages = first.get_messages()
    assert len(messages) == 1, messages
    message = messages[0]
    assert message.message == "Disk almost full on db-1", message.message
    assert message.title == "Disk space", message.title
    assert message.link == "https://grafana.example/d/1", message.link
    assert message.importance == 5, message.importance
    assert message.time_sent > 1_700_000_000
    assert message.service.public_key == service.public_key
    assert first.get_messages() == [], "a second read must be empty"
    print("ok: send, get_messages, then empty")

    plain = second.get_messages()
    assert [m.message for m in plain] == ["Disk almost full on db-1"]
    assert plain[0].importance == 5

    service.send("no title")
    untitled = first.get_messages()
    assert untitled[0].title is None and untitled[0].link is None and untitled[0].importance == 3
    print("ok: defaults for title, link, importance")

    expect_error(pushjet.SubscriptionError, lambda: first.subscribe(service), "double subscribe")
    first.unsubscribe(service)
    expect_error(pushjet.SubscriptionError, lambda: first.unsubscribe(service), "second unsubscribe")
    assert first.get_subscriptions() == []

    service.edit(name="Renamed", icon_url="http://example.com/new.png")
    reader = api.Service(public_key=service.public_key)
    reader.refresh()
    assert reader.name == "Renamed", reader.name
    assert reader.icon_url == "http://example.com/new.png", reader.icon_url
    print("ok: edit + refresh")

    service.delete()
    expect_error(pushjet.NonexistentError, lambda: api.Service(service.secret_key), "open a deleted service by secret")
    assert second.get_subscriptions() == []
    print("all steps passed")


if __name__ == "__main__":
    main(sys.argv[1])
