"""Start the simulator as a subprocess on a free port, for tests and benchmarks.

The child runs `python -m bridge.simulator --port 0 ...` (a free port unless `port` is
given) with the current interpreter; the parent waits (with a deadline, no fixed sleeps)
for its one stdout line and reads the URL from it. Keyword options become CLI flags:
`entries=10` -> `--entries 10`, `file_path=True` -> `--file-path`; False and None are left
out.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Self

from bridge.simulator.child import LineChild

_LISTENING = re.compile(rb"simulator listening on (http://\S+)")


def cli_arguments(options: dict[str, Any]) -> list[str]:
    arguments: list[str] = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            arguments.append(flag)
        elif value is not None and value is not False:
            arguments += [flag, str(value)]
    return arguments


class SimulatorSubprocess(LineChild):
    what = "simulator"

    def __init__(self, *arguments: str, startup_timeout: float = 60.0, **options: Any) -> None:
        options = {"port": 0, **options}  # a free port unless one is asked for
        argv = [sys.executable, "-m", "bridge.simulator", *arguments, *cli_arguments(options)]
        super().__init__(argv)
        self.startup_timeout = startup_timeout
        self.url = ""

    def start(self) -> Self:
        super().start()
        try:
            line = self.read_line(self.startup_timeout)
            match = _LISTENING.match(line)
            if match is None:
                raise RuntimeError(f"unexpected simulator output: {line!r}")
            self.url = match[1].decode()
        except BaseException:
            self.close()
            raise
        return self
