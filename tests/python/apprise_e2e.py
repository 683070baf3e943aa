"""Sends one notification through each of the real Apprise library's (PyPI `apprise`) plugins
that can reach the bridge: ntfy:// (token and basic auth), gotify://, pjet://, json:// and form://.

Usage: python apprise_e2e.py HOST:PORT TOKEN USER:PASSWORD PUSHJET_SECRET
Each line printed is `<label> ok`; the script exits non-zero as soon as Apprise reports a failure.
tests/bridge/apprise.rs then reads what arrived from a subscribed device.
"""

import sys
from urllib.parse import quote

import apprise


def main(address, token, basic, secret):
    user, password = basic.split(":", 1)
    bearer = quote(f"Bearer {token}", safe="")
    sends = [
        ("ntfy token", f"ntfy://{address}/ops?token={token}", "ntfy with a token", apprise.NotifyType.WARNING),
        ("ntfy basic", f"ntfy://{quote(user)}:{quote(password, safe='')}@{address}/home?priority=max",
         "ntfy with basic auth", apprise.NotifyType.INFO),
        ("gotify", f"gotify://{address}/{token}?priority=high", "gotify", apprise.NotifyType.INFO),
        ("pjet", f"pjet://{address}/{secret}", "pushjet", apprise.NotifyType.INFO),
        ("json", f"json://{address}/hooks/ops?+Authorization={bearer}", "json", apprise.NotifyType.FAILURE),
        ("form", f"form://{address}/hooks/ops?+Authorization={bearer}", "form", apprise.NotifyType.SUCCESS),
    ]
    for label, url, body, kind in sends:
        notifier = apprise.Apprise()
        if not notifier.add(url):
            raise SystemExit(f"{label}: Apprise does not accept the URL {url}")
        if not notifier.notify(title=f"Apprise {label}", body=f"sent by {body}", notify_type=kind):
            raise SystemExit(f"{label}: Apprise reports a failure")
        print(f"{label} ok")


if __name__ == "__main__":
    main(*sys.argv[1:])
