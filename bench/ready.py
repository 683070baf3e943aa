#!/usr/bin/env python3
"""Starts the bridge and measures the time from the start of its process to the first 200 on
GET /readyz, polling every millisecond over one HTTP request per poll. The environment (routes,
data directory, listen address) is inherited. Leaves the process running and prints, as
key=value lines: ready_ms, pid.

usage: ready.py BINARY HOST PORT LOG_FILE
"""

import http.client
import subprocess
import sys
import time

TIMEOUT_S = 10.0


def ready(host, port):
    try:
        connection = http.client.HTTPConnection(host, port, timeout=0.5)
        connection.request("GET", "/readyz")
        status = connection.getresponse().status
        connection.close()
        return status == 200
    except OSError:
        return False


def main():
    binary, host, port, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    with open(log, "ab") as log_file:
        started = time.monotonic()
        process = subprocess.Popen([binary], stdout=log_file, stderr=log_file)
        while not ready(host, port):
            if process.poll() is not None:
                sys.exit(f"the bridge exited with {process.returncode} before it was ready; see {log}")
            if time.monotonic() - started > TIMEOUT_S:
                process.terminate()
                sys.exit(f"the bridge was not ready after {TIMEOUT_S} s; see {log}")
            time.sleep(0.001)
        elapsed_ms = (time.monotonic() - started) * 1000
    print(f"ready_ms={elapsed_ms:.1f}")
    print(f"pid={process.pid}")


if __name__ == "__main__":
    main()
