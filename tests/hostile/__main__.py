"""`python -m tests.hostile`: the hostile-feed catch-up of the test suite, one line per figure;
exit status 1 if any acceptance bound was missed.

    python -m tests.hostile                          # the run tests/hostile runs
    python -m tests.hostile --skip slow-loris        # without some fault kinds
    python -m tests.hostile --workdir /tmp/hostile   # keep the files
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.hostile import harness
from tests.hostile.plan import Plan
from tests.hostile.proxy import KINDS


def main(argv: list[str] | None = None) -> int:
    default = Plan()
    parser = argparse.ArgumentParser(
        prog="python -m tests.hostile", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--entries", type=int, default=default.entries)
    parser.add_argument("--seed", type=int, default=default.seed)
    parser.add_argument("--no-metadata", action="store_true", help="read the feed without metadata")
    parser.add_argument(
        "--metadata-size", type=int, default=0, help="bytes of DICOM JSON per instance"
    )
    parser.add_argument("--skip", nargs="+", default=[], choices=KINDS, metavar="KIND")
    parser.add_argument("--deadline", type=float, default=default.deadline, help="seconds")
    parser.add_argument("--workdir", type=Path, help="keep every file here (default: a temp dir)")
    options = parser.parse_args(argv)
    plan = Plan(
        entries=options.entries,
        seed=options.seed,
        include_metadata=not options.no_metadata,
        metadata_size=options.metadata_size,
        deadline=options.deadline,
    ).without(set(options.skip))
    with tempfile.TemporaryDirectory(prefix="hostile-") as temporary:
        outcome = harness.run(plan, options.workdir or Path(temporary))
    print(outcome.report())
    return 1 if outcome.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
