"""Run one test again and again while busy loops take the CPU: how a test that passes alone but
fails in the full suite is made to fail on demand.

    CPWATCH_EXTERNAL_STACK=1 .venv/bin/python scripts/repeat_under_load.py TEST_ID [--runs N]
        [--hogs K] [--keep DIR] [--until-failure]

TEST_ID is a pytest node id. Each run gets its own base temp directory; a failing run's (the
worker's log included) is kept under DIR. Prints one line per run and the tally. Needs the
local stack up (``cpwatch stack up``) and the stack-sharing flag, as the integration tests do.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def spin() -> None:
    while True:
        pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("test")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--hogs", type=int, default=2, help="busy-loop processes beside the test")
    ap.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "cpwatch-repeat")
    ap.add_argument("--until-failure", action="store_true")
    args = ap.parse_args()

    args.keep.mkdir(parents=True, exist_ok=True)
    hogs = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.hogs)]
    for h in hogs:
        h.start()
    failed = 0
    try:
        for n in range(1, args.runs + 1):
            base = args.keep / f"run-{n}"
            shutil.rmtree(base, ignore_errors=True)
            start = time.monotonic()
            cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
            done = subprocess.run(
                [*cmd, f"--basetemp={base}", args.test],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            took = time.monotonic() - start
            if done.returncode == 0:
                shutil.rmtree(base, ignore_errors=True)
            else:
                failed += 1
                (args.keep / f"run-{n}.out").write_text(done.stdout + done.stderr)
            verdict = "passed" if done.returncode == 0 else f"FAILED (kept in {base})"
            print(f"run {n}: {verdict} in {took:.1f} s", flush=True)
            if failed and args.until_failure:
                break
    finally:
        for h in hogs:
            h.terminate()
    print(f"{failed} failed of {n} runs under {args.hogs} busy loops")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
