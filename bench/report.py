#!/usr/bin/env python3
"""Prints the table of bench/run.sh from its results file (key=value lines).

usage: report.py RESULTS_FILE
"""

import sys


def load(path):
    results = {}
    for line in open(path):
        key, _, value = line.strip().partition("=")
        if key:
            results[key] = value
    return results


def print_table(headers, rows):
    """One row per line, the columns padded to their widest cell and separated by " | "."""
    widths = [max(len(str(line[i])) for line in rows + [headers]) for i in range(len(headers))]
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    print("-|-".join("-" * w for w in widths))
    for line in rows:
        print(" | ".join(str(cell).ljust(w) for cell, w in zip(line, widths)).rstrip())


def main():
    r = load(sys.argv[1])
    num = lambda key: float(r[key])
    rows = []

    def row(what, value, reference="", ratio="", target="", verdict=""):
        rows.append((what, value, reference, ratio, target, verdict))

    def rate(prefix):
        return f"{num(prefix + '_rps'):,.0f}/s"

    def latency(prefix):
        return f"p50 {num(prefix + '_p50_ms'):.2f} ms, p99 {num(prefix + '_p99_ms'):.2f} ms"

    def cpu(prefix, what="request"):
        per = num(prefix + "_cpu_s") / num(prefix + "_requests") * 1e6
        return f"; servers' CPU {num(prefix + '_cpu_s'):.1f} s = {per:.0f} us per {what}"

    def check(ok):
        return "met" if ok else "MISSED"

    bare, forwarder, durable = num("bare_rps"), num("forwarder_rps"), num("durable_rps")
    row("bare handler (reference), requests", rate("bare"), latency("bare") + cpu("bare"))
    row(
        "minimal forwarder + sink (reference), requests",
        rate("forwarder"),
        latency("forwarder") + cpu("forwarder"),
    )
    row(
        "durable acceptor (reference), requests",
        rate("durable"),
        latency("durable") + cpu("durable"),
    )
    def delivered_row(name, label, goal):
        delivered = num(f"{name}_delivered_rps")
        if f"{name}_drain_s" in r:
            drained = f"drained in {num(name + '_drain_s'):.1f} s"
        else:
            drained = f"{int(num(name + '_undelivered')):,} still undelivered after {r['drain_limit_s']} s"
        row(
            f"{label}: delivered notifications, end to end",
            f"{delivered:,.0f}/s",
            f"backlog {max(0, int(num(name + '_backlog'))):,} at the end of the run, {drained}",
            f"{delivered / forwarder:.0%} of forwarder",
            f">= {goal:,}/s",
            check(delivered >= goal),
        )

    def accepted_row(name, label):
        accepted = num(f"{name}_rps")
        ratio = accepted / durable
        row(
            f"{label}: accepted webhooks (202)",
            rate(name),
            latency(name) + cpu(name, "webhook") + f"; {accepted / bare:.0%} of bare",
            f"{ratio:.0%} of durable",
            ">= 40% of durable",
            check(ratio >= 0.40),
        )

    for name, label in (("am", "Alertmanager group of 5, bearer"), ("gh", "GitHub push, signed")):
        accepted_row(name, label)
        delivered_row(name, label, 8000)
        p99 = num(f"{name}_half_p99_ms")
        if r["durable_half_sender"] == name:
            at = "the same rate"
        else:
            at = f"{num('durable_half_rps'):,.0f}/s"
        reference = f"; durable acceptor at {at}: p99 {num('durable_half_p99_ms'):.2f} ms"
        row(
            f"{label}: at half the maximum rate",
            f"{num(name + '_half_rps'):,.0f}/s",
            latency(f"{name}_half") + reference,
            "",
            "p99 < 5 ms",
            check(p99 < 5),
        )
    if "am8_rps" in r:
        accepted_row("am8", "Alertmanager over 8 routes")
        delivered_row("am8", "Alertmanager over 8 routes", 16000)
    idle = num("idle_rss_kb") / 1024
    row(
        "RSS idle, 1 s after start on the existing data directory",
        f"{idle:.1f} MB",
        f"{num('first_idle_rss_kb') / 1024:.1f} MB on the first start (empty directory)",
        "",
        "< 20 MB",
        check(idle < 20),
    )
    row("RSS idle after the load", f"{num('after_rss_kb') / 1024:.1f} MB")
    peak = num("peak_rss_kb") / 1024
    row("RSS peak under the load (VmHWM)", f"{peak:.1f} MB", "", "", "< 64 MB", check(peak < 64))
    ready = num("ready_ms")
    row(
        "start to first 200 on /readyz (existing data directory)",
        f"{ready:.0f} ms",
        f"{int(num('ready_pending')):,} pending, {int(num('ready_dedup_keys')):,} dedup keys stored",
        "",
        "< 100 ms",
        check(ready < 100),
    )
    errors = int(num("unexpected_answers"))
    print_table(("measurement", "value", "detail", "ratio", "target", ""), rows)
    print(f"unexpected answers (not 202, or socket errors) over all runs: {errors}")
    print(
        f"other work on the machine ({r['cores']} cores): {r['busy_before_percent']}% busy before "
        f"the run, {r['busy_after_percent']}% after (should be near 0 for numbers worth keeping)"
    )


if __name__ == "__main__":
    main()
