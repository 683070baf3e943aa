#!/usr/bin/env python3
"""Prints the table of bench/replicas.sh from its results file (key=value lines).

usage: replicas_report.py RESULTS_FILE
"""

import sys

from report import load, print_table

GOAL = 0.50  # accepted webhooks/s of 2 replicas, as a share of the pgbench ceiling


def main():
    r = load(sys.argv[1])
    num = lambda key: float(r[key])
    ceiling = num("ceiling_rps")
    rows = []

    def latency(prefix):
        return f"{num(prefix + '_p50_ms'):.2f} / {num(prefix + '_p99_ms'):.2f}"

    def machine(prefix):
        return f"{r[prefix + '_machine_busy_percent']}% (load {r[prefix + '_load1']})"

    rows.append(
        (
            "pgbench: 1 INSERT per transaction (ceiling)",
            f"{ceiling:,.0f}/s",
            latency("ceiling"),
            f"{int(num('ceiling_failed') if r.get('ceiling_failed') else 0)} failed",
            f"postgres {num('ceiling_pg_cpu_s'):.1f} s",
            machine("ceiling"),
            "100%",
            f"{int(num('ceiling_rows')):,} rows",
        )
    )
    runs = [("redb", "redb outbox (default), 1 process")] + [
        (f"pg{n}", f"PostgreSQL, {n} replica{'s' if n > 1 else ''}") for n in (1, 2, 3)
    ]
    for name, label in runs:
        if f"{name}_requests" not in r:
            continue
        duration = num(f"{name}_duration_s")
        accepted = num(f"{name}_accepted") / duration
        bridge, sink = num(f"{name}_cpu_s"), num(f"{name}_sink_cpu_s")
        database = num(f"{name}_pg_cpu_s")
        per = (bridge + sink + database) / max(1, num(f"{name}_accepted")) * 1e6
        cpu = f"bridge {bridge:.1f} + sink {sink:.1f} + postgres {database:.1f} s = {per:.0f} us/webhook"
        if f"{name}_drain_s" in r:
            drained = f"all in {num(name + '_drain_s'):.1f} s more"
        else:
            drained = f"{int(num(name + '_undelivered')):,} MISSING after {r['drain_limit_s']} s"
        delivered = (
            f"{int(num(name + '_delivered_during')):,} during, "
            f"{int(num(name + '_delivered')):,} of {int(num(name + '_accepted')):,}: {drained}"
        )
        not_accepted = int(num(f"{name}_unexpected")) + int(num(f"{name}_socket_errors"))
        rows.append(
            (
                label,
                f"{accepted:,.0f}/s",
                latency(name),
                f"{not_accepted}",
                cpu,
                machine(name),
                f"{accepted / ceiling:.0%}",
                delivered,
            )
        )
    print(
        f"PostgreSQL {r['pg_version']}: {r['pg_settings']}; "
        f"stored notification {int(num('message_bytes')):,} bytes (webhook body {int(num('body_bytes')):,} bytes); "
        f"{r['connections']} connections / clients, {r['duration_s']} s per run; "
        f"webhooks to {r['routes']} route{'s' if r['routes'] != '1' else ''}"
    )
    print_table(
        (
            "run",
            "accepted",
            "p50 / p99 ms",
            "not 202",
            "CPU during the run",
            "all cores busy",
            "of ceiling",
            "delivered to the sink",
        ),
        rows,
    )
    if "pg2_accepted" in r:
        share = num("pg2_accepted") / num("pg2_duration_s") / ceiling
        verdict = "met" if share >= GOAL else "MISSED"
        print(f"goal: 2 replicas >= {GOAL:.0%} of the pgbench ceiling: {share:.0%}, {verdict}")
    print(f"answers other than 202 or socket errors over all bridge runs: {r['unexpected_answers']}")
    print(
        f"other work on the machine ({r['cores']} cores): {r['busy_before_percent']}% busy before "
        f"the run, {r['busy_after_percent']}% after; load average after: {r['load_after']} "
        "(should be near 0 for numbers worth keeping)"
    )


if __name__ == "__main__":
    main()
