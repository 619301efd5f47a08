"""`python -m tests.chaos` (`make chaos`): the long chaos run, one summary table, and exit
status 1 if any invariant was violated.

    python -m tests.chaos                       # every scenario, long sizes
    python -m tests.chaos --fast                # the sizes `make test` uses
    python -m tests.chaos --only kill-storm sigterm --workdir /tmp/chaos
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tests.chaos import plan, report
from tests.chaos.invariants import Result
from tests.chaos.peers import ChaosPeers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--fast", action="store_true", help="the small sizes of `make test`")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO", help="run only these")
    parser.add_argument("--workdir", type=Path, help="keep every file here (default: a temp dir)")
    options = parser.parse_args(argv)
    scenarios = plan.FAST if options.fast else plan.LONG
    unknown = set(options.only or ()) - set(scenarios)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {list(scenarios)}")
    chosen = {name: run for name, run in scenarios.items() if name in (options.only or scenarios)}

    with tempfile.TemporaryDirectory(prefix="chaos-") as temporary:
        workdir = options.workdir or Path(temporary)
        results = []
        with ChaosPeers() as peers:
            for name, run in chosen.items():
                print(f"== {name} ...", file=sys.stderr, flush=True)
                results.append(_run(name, run, peers, workdir))
                print(f"== {name}: {report.table(results[-1:]).splitlines()[2]}", file=sys.stderr)
    print(report.table(results))
    print()
    print(report.details(results))
    return 0 if all(result.ok for result in results) else 1


def _run(name: str, run: plan.Scenario, peers: ChaosPeers, workdir: Path) -> Result:
    """One scenario; a harness failure becomes a violation of its own, and the shared peers
    are healed for the next scenario."""
    started = time.monotonic()
    try:
        return run(peers, workdir)
    except Exception as exc:
        traceback.print_exc()
        result = Result(name, seconds=time.monotonic() - started)
        result.problems.append(f"the scenario did not complete: {type(exc).__name__}: {exc}")
        peers.heal()
        return result


if __name__ == "__main__":
    sys.exit(main())
