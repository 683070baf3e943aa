#!/usr/bin/env python3
"""Builds the request bodies of bench/run.sh from the captured fixtures in tests/fixtures.

Writes into OUT_DIR:
  alertmanager-5.json  an Alertmanager group of 5 firing alerts, in Alertmanager's own encoding
                       (Go's json.Encoder: compact, <>& escaped, one trailing newline). Its
                       groupKey carries the placeholder @ID@, which the wrk script replaces with a
                       unique id per request, so each request is a new group state (the bridge
                       deduplicates identical group states).
  github-push.json     GitHub's push fixture, byte for byte.
  github-push.sig      its X-Hub-Signature-256 value under WEBHOOK_SECRET.
  small.json           the small JSON body posted to the reference servers.

usage: payloads.py FIXTURES_DIR OUT_DIR WEBHOOK_SECRET
"""

import copy
import hashlib
import hmac
import json
import pathlib
import sys


def go_json(value):
    """Alertmanager's encoding: Go's json.Encoder with its default HTML escaping."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, escaped)
    return text + "\n"


def alert_group(fixtures):
    """The captured 3-alert HighRequestLatency group, grown to 5 alerts (api-4 and api-5 are
    copies of api-1 and api-2 with their own instance and fingerprint)."""
    group = json.loads((fixtures / "alertmanager" / "captured-firing-multi-severity.json").read_text())
    alerts = group["alerts"]
    assert len(alerts) == 3, "the captured group changed"
    for number, template in ((4, alerts[0]), (5, alerts[1])):
        alert = copy.deepcopy(template)
        alert["labels"]["instance"] = f"api-{number}.example.internal:8080"
        alert["annotations"]["summary"] = f"p99 latency above 1s on api-{number}"
        alert["fingerprint"] = hashlib.sha256(alert["labels"]["instance"].encode()).hexdigest()[:16]
        alerts.append(alert)
    group["groupKey"] = '{}:{alertname="HighRequestLatency", bench="@ID@"}'
    return go_json(group)


def main():
    fixtures, out, secret = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
    out.mkdir(parents=True, exist_ok=True)
    (out / "alertmanager-5.json").write_text(alert_group(fixtures))
    push = (fixtures / "github" / "push.json").read_bytes()
    (out / "github-push.json").write_bytes(push)
    signature = hmac.new(secret.encode(), push, hashlib.sha256).hexdigest()
    (out / "github-push.sig").write_text(f"sha256={signature}")
    (out / "small.json").write_text('{"title":"Deploy","message":"v1.2 is live","priority":4}')


if __name__ == "__main__":
    main()
