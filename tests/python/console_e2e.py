"""The console in a real browser: Debian's Chromium driven by Playwright (no browser download),
started by tests/bridge/console.rs against a running bridge whose route `r` has one dead letter
and whose delivery history keeps bodies.

Arguments: the bridge's base URL, the admin token, the device UUID route `r` delivers to, the
folder for screenshots, and axe-core's axe.min.js. The secrets of the test's configuration come
one per line in CONSOLE_TEST_SECRETS; none may appear in any page or answer.

Prints "all steps passed" at the end; any failed check raises.
"""

import json
import os
import sys
import time
import urllib.request

from playwright.sync_api import expect, sync_playwright

BASE, TOKEN, DEVICE, ARTIFACTS, AXE = sys.argv[1:6]
SECRETS = [line for line in os.environ["CONSOLE_TEST_SECRETS"].splitlines() if line]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = {
    "overview": "/console/",
    "history": "/console/history",
    "dead-letters": "/console/dead-letters",
    "playground": "/console/playground",
    "inbox": "/console/inbox",
}


def step(name):
    print(f"step: {name}", flush=True)


def assert_no_secret(text, where):
    for secret in SECRETS:
        assert secret not in text, f"a configured secret appears in {where}"


def post_webhook(title, message):
    body = json.dumps({"title": title, "message": message}).encode()
    request = urllib.request.Request(
        f"{BASE}/hooks/r", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 202, answer.status


def check_accessibility(page, name):
    page.add_script_tag(path=AXE)
    found = page.evaluate(
        """async () => {
            const results = await axe.run(document, { resultTypes: ["violations"] });
            return results.violations
                .filter(v => v.impact === "serious" || v.impact === "critical")
                .map(v => v.id + " (" + v.impact + "): " + v.help + " at " +
                     v.nodes.map(n => n.target.join(" ")).join(", "));
        }"""
    )
    assert not found, f"{name}: accessibility violations: {found}"


def check_page(page, name, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.wait_for_load_state("networkidle")
    page.screenshot(path=os.path.join(ARTIFACTS, f"{name}-{width}.png"), full_page=True)
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
    check_accessibility(page, f"{name} at {width} px")
    assert_no_secret(page.content(), f"the page {name}")


def session_cookie(context):
    cookies = [c for c in context.cookies() if c["name"] == "pushjet_console"]
    return cookies[0] if cookies else None


def sign_in(page, token):
    page.goto(f"{BASE}/console/")
    expect(page).to_have_url(f"{BASE}/console/sign-in")
    field = page.get_by_label("Admin token")
    expect(field).to_be_focused()
    # Keyboard only: the field has the focus; type and press Enter.
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    page.wait_for_load_state("domcontentloaded")


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        # The console's Content-Security-Policy forbids inline scripts, axe's injection included:
        # the test's browser lets the test inject it (the header itself is checked below).
        context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(15_000)

        step("the sign-in page at both widths")
        answer = page.goto(f"{BASE}/console/sign-in")
        policy = answer.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, policy
        for width in (375, 1280):
            check_page(page, "sign-in", width)

        step("a wrong token is refused")
        sign_in(page, "not-the-admin-token-at-all")
        expect(page.get_by_role("alert")).to_have_text("That is not the admin token.")
        assert session_cookie(context) is None

        step("the right token signs in, with the cookie's attributes")
        sign_in(page, TOKEN)
        expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
        cookie = session_cookie(context)
        assert cookie, "no session cookie"
        assert cookie["httpOnly"] is True, cookie
        assert cookie["sameSite"] == "Strict", cookie
        assert cookie["secure"] is False, cookie  # plain HTTP from an untrusted-proxy view
        assert cookie["path"] == "/console", cookie
        lifetime = cookie["expires"] - time.time()
        assert 11 * 3600 < lifetime <= 12 * 3600 + 60, lifetime
        assert_no_secret(cookie["value"], "the session cookie")

        step("behind the trusted proxy with X-Forwarded-Proto: https the cookie is Secure")
        answer = context.request.post(
            f"{BASE}/console/sign-in",
            form={"token": TOKEN},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.20"},
            max_redirects=0,
        )
        assert answer.status == 303, answer.status
        set_cookie = answer.headers["set-cookie"]
        assert "Secure" in set_cookie and "HttpOnly" in set_cookie, set_cookie
        assert "SameSite=Strict" in set_cookie, set_cookie
        # That answer's Secure cookie must not replace the browser's own for the HTTP pages.
        context.clear_cookies()
        context.add_cookies([cookie])

        step("state-changing requests without the CSRF token are refused")
        refused = context.request.post(f"{BASE}/console/dead-letters/retry", form={})
        assert refused.status == 403, refused.status
        refused = context.request.post(
            f"{BASE}/console/dead-letters/retry", form={"csrf": "0" * 64}
        )
        assert refused.status == 403, refused.status
        refused = context.request.post(
            f"{BASE}/console/api/preview",
            data=json.dumps({"payload": "{}"}),
            headers={"Content-Type": "application/json"},
        )
        assert refused.status == 403, refused.status

        step("the overview lists the routes without their secrets")
        page.goto(f"{BASE}/console/")
        expect(page.get_by_role("heading", name="r", exact=True)).to_be_visible()
        expect(page.get_by_role("heading", name="gh", exact=True)).to_be_visible()
        expect(page.get_by_text("webhook secret: set, token: set, basic auth: set")).to_be_visible()
        expect(page.locator("#history-note")).to_have_count(0)
        route_r = page.locator("article", has=page.get_by_role("heading", name="r", exact=True))
        expect(route_r.get_by_text("1 accepted, 0 sent, 0 retrying, 1 dead, 0 refused")).to_be_visible()
        expect(page.locator("article", has_text="gh").get_by_text("0 waiting")).to_be_visible()

        step("dead letters: retry from the page (the upstream was fixed)")
        page.goto(f"{BASE}/console/dead-letters")
        card = page.locator("article.card", has_text="dead then fixed")
        expect(card).to_be_visible()
        check_page(page, "dead-letters-full", 375)
        page.set_viewport_size({"width": 1280, "height": 900})
        card.get_by_text("Retry…").click()
        card.get_by_role("button", name="Yes, retry").click()
        expect(page.get_by_role("status")).to_contain_text("is queued again")
        expect(page.locator("article.card", has_text="dead then fixed")).to_have_count(0)

        step("history: a webhook posted now appears within 2 s without a reload")
        page.goto(f"{BASE}/console/history")
        expect(page.locator("#history-live")).to_contain_text("Live:")
        page.evaluate("window.notReloaded = true")
        post_webhook("History live", "seen in the history")
        started = time.monotonic()
        line = page.locator("#history-records li", has_text="History live")
        expect(line).to_be_visible(timeout=2_000)
        print(f"measured: webhook to history line {time.monotonic() - started:.3f} s")
        assert page.evaluate("window.notReloaded === true"), "the history page reloaded"

        step("one webhook: the rendered notification and the attempt's outcome")
        line.get_by_role("link").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Webhook #")
        webhook_path = page.url[len(BASE):]
        PAGES["webhook"] = webhook_path
        phone = page.locator(".phone").first
        expect(phone.locator(".phone-title")).to_have_text("History live")
        expect(phone.locator(".phone-message")).to_have_text("seen in the history")
        deadline = time.monotonic() + 10
        while "sent" not in (page.locator(".timeline").first.text_content()
                                         if page.locator(".timeline").count() else ""):
            assert time.monotonic() < deadline, "no attempt shown within 10 s"
            time.sleep(0.2)
            page.reload()
        expect(page.locator("pre code").first).to_contain_text('"title": "History live"')
        curl = page.locator("#curl").text_content()
        assert curl.startswith("curl -X POST ") and "/hooks/r" in curl, curl
        assert "seen in the history" in curl, curl
        assert_no_secret(curl, "the curl command")

        step("one webhook: Replay delivers once more (CSRF-checked)")
        refused = context.request.post(f"{BASE}{webhook_path}/replay", form={})
        assert refused.status == 403, refused.status
        page.get_by_role("button", name="Replay").click()
        expect(page.get_by_role("status").first).to_contain_text("queued again: webhook #")
        replay_id = page.get_by_role("status").first.text_content().split("#")[-1].rstrip(".")
        deadline = time.monotonic() + 10
        while True:
            page.goto(f"{BASE}/console/history/{replay_id}")
            timeline = page.locator(".timeline")
            if timeline.count() and "sent" in timeline.first.text_content():
                break
            assert time.monotonic() < deadline, "the replay was not sent within 10 s"
            time.sleep(0.2)
        expect(page.locator(".phone-message").first).to_have_text("seen in the history")

        step("one webhook: Re-render renders the kept body again and queues it")
        page.goto(f"{BASE}{webhook_path}")
        page.get_by_role("button", name="Re-render").click()
        expect(page.get_by_role("status").first).to_contain_text(
            "rendered again with today's templates: webhook #")

        step("playground: a kept body is offered as a payload")
        page.goto(f"{BASE}/console/playground")
        kept = page.locator('#pg-example option[value^="history:"]')
        assert kept.count() >= 1, "no kept body offered"
        page.get_by_label("Example payload").select_option(kept.first.get_attribute("value"))
        expect(page.locator("#pg-payload")).to_have_value(
            lambda_free_contains("seen in the history"))

        step("playground: the template in force renders, an edit changes the title within 1 s")
        page.goto(f"{BASE}/console/playground")
        template = page.get_by_label("Template (TOML)")
        expect(template).to_have_value(lambda_free_contains("repository.full_name"))
        title = page.locator("#pg-result .phone-title").first
        expect(title).not_to_be_empty()
        edited = template.input_value().replace(
            "{{~fit 40 repository.full_name}}", "Edited: {{fit 40 repository.full_name}}", 1
        )
        assert "Edited: " in edited, edited
        started = time.monotonic()
        template.fill(edited)
        try:
            expect(title).to_contain_text("Edited: ", timeout=1_000)
        except AssertionError:
            print("the page showed:", page.locator("#pg-error").text_content(),
                  page.locator("#pg-about").text_content())
            raise
        print(f"measured: edit to rendered title {time.monotonic() - started:.3f} s")

        step("playground: a syntax error shows its line")
        template.fill("# broken\ntitle = '{{#if repository}}'\nmessage = 'x'\n")
        expect(page.locator("#pg-error")).to_contain_text("Line 2:")
        template.fill("# broken toml\nmessage = 'x'\ntitle = 'no end\n")
        expect(page.locator("#pg-error")).to_contain_text("Line 3:")

        step("live inbox: a message sent after it opened appears")
        page.goto(f"{BASE}/console/inbox")
        page.get_by_label("Device UUID").fill(DEVICE)
        page.get_by_role("button", name="Watch").click()
        expect(page.locator("#inbox-status")).to_contain_text("Watching")
        post_webhook("Live one", "arrived live")
        expect(page.locator("#inbox-messages li", has_text="arrived live")).to_be_visible()

        step("every page at 375 px and 1280 px, each under 200 KB on a first load")
        for name, path in PAGES.items():
            fresh = context.new_page()
            fresh.goto(f"{BASE}{path}")
            fresh.wait_for_load_state("networkidle")
            weight = fresh.evaluate(
                """() => performance.getEntriesByType("navigation")
                    .concat(performance.getEntriesByType("resource"))
                    .reduce((sum, entry) => sum + Math.max(entry.transferSize, entry.encodedBodySize), 0)"""
            )
            fresh.close()
            print(f"measured: {name} first load {weight} bytes over the wire")
            assert weight < 200_000, f"{name} weighs {weight} bytes"
            page.goto(f"{BASE}{path}")
            for width in (375, 1280):
                check_page(page, name, width)
        preview = page.evaluate(
            """async () => {
                const token = document.querySelector('meta[name="csrf-token"]').content;
                const answer = await fetch("/console/api/preview", {
                    method: "POST",
                    headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
                    body: JSON.stringify({ route: "gh", source: "github", event: "push",
                                           payload: "{}" }),
                });
                return await answer.text();
            }"""
        )
        assert_no_secret(preview, "the preview answer")

        step("sign-out ends the session, also for a copy of its cookie")
        old = session_cookie(context)
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(f"{BASE}/console/sign-in")
        assert session_cookie(context) is None
        context.add_cookies([old])
        answer = context.request.get(f"{BASE}/console/", max_redirects=0)
        assert answer.status == 303, answer.status

        step("failed sign-ins are held back per address")
        statuses = []
        for _ in range(6):
            answer = context.request.post(
                f"{BASE}/console/sign-in",
                form={"token": "wrong-wrong-wrong"},
                headers={"X-Forwarded-For": "203.0.113.5"},
                max_redirects=0,
            )
            statuses.append(answer.status)
        assert statuses == [401] * 5 + [429], statuses
        answer = context.request.post(
            f"{BASE}/console/sign-in",
            form={"token": TOKEN},
            headers={"X-Forwarded-For": "203.0.113.5"},
            max_redirects=0,
        )
        assert answer.status == 429, answer.status

        browser.close()
    print("all steps passed")


def lambda_free_contains(text):
    """A pattern for expect(...).to_have_value: the value contains `text`."""
    import re

    return re.compile(".*" + re.escape(text) + ".*", re.S)


if __name__ == "__main__":
    main()
