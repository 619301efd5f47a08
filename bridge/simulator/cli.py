"""`dicom-bridge simulate` (and `python -m bridge.simulator`): options, population, serving."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from bridge.simulator.faults import Faults, FaultSettings
from bridge.simulator.population import PopulationOptions
from bridge.simulator.rowcache import DEFAULT_CAPACITY
from bridge.simulator.server import Stopped, serve, stop_on_signals
from bridge.simulator.simulation import FeedOptions, Service, Simulation
from bridge.simulator.stats import Stats

_POPULATION = PopulationOptions()  # its defaults are the CLI's


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text} is below {minimum}")
        return value

    return parse


def _milliseconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def configure_parser(parser: argparse.ArgumentParser, log_level: str = "warning") -> None:
    """The simulator's options; `log_level` is the default of `--log-level` (`dicom-bridge
    simulate` passes `argparse.SUPPRESS`: its global `--log-level` applies)."""
    parser.description = (
        "Serve a simulated DICOM change feed (/v1.0-prerelease, /v1, /v2 + /changefeed and "
        "/changefeed/latest) with a control API under /_sim/ (see bridge/simulator/README.md)."
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    server.add_argument("--port", type=_count(0), default=8080, help="0 picks a free port")
    server.add_argument(
        "--log-level",
        default=log_level,
        type=str.lower,  # DEBUG or debug, as everywhere in dicom-bridge
        choices=["debug", "info", "warning", "error"],
        help="the server's log level (default warning)",
    )

    feed = parser.add_argument_group("feed")
    feed.add_argument("--entries", type=_count(0), default=0, help="rows to pre-populate")
    feed.add_argument("--seed", type=int, default=0, help="seed of the population (and faults)")
    feed.add_argument("--partitions", type=_count(1), default=1, help="data partitions in use")
    feed.add_argument(
        "--file-path", action="store_true", help="external store: entries carry filePath"
    )
    feed.add_argument(
        "--metadata-size",
        type=_count(0),
        default=0,
        metavar="BYTES",
        help="approximate size of each instance's DICOM JSON",
    )
    feed.add_argument(
        "--missing-metadata-rate",
        type=_rate,
        default=0.0,
        help="fraction of instances whose metadata blob is lost (500 with metadata)",
    )
    feed.add_argument(
        "--gap-rate",
        type=_rate,
        default=_POPULATION.gap_rate,
        help="chance of a sequence gap before each transaction",
    )
    feed.add_argument(
        "--max-gap",
        type=_count(1),
        default=_POPULATION.max_gap,
        help="largest gap, in sequence values",
    )
    feed.add_argument(
        "--reorder-rate",
        type=_rate,
        default=_POPULATION.reorder_rate,
        help="chance a store's timestamp precedes the previous row's",
    )
    feed.add_argument(
        "--row-cache",
        type=_count(1),
        default=DEFAULT_CAPACITY,
        help="serialized rows kept in memory",
    )

    faults = parser.add_argument_group("faults (feed routes only; change live via /_sim/faults)")
    faults.add_argument("--latency-ms", type=_milliseconds, default=0.0)
    faults.add_argument("--latency-jitter-ms", type=_milliseconds, default=0.0)
    faults.add_argument("--rate-429", type=_rate, default=0.0)
    faults.add_argument("--retry-after", type=_count(0), default=1, metavar="SECONDS")
    faults.add_argument("--rate-500", type=_rate, default=0.0)
    faults.add_argument("--rate-503", type=_rate, default=0.0)
    faults.add_argument(
        "--truncate-rate",
        type=_rate,
        default=0.0,
        help="200s whose body is cut short (Content-Length of the cut body)",
    )
    faults.add_argument(
        "--disconnect-rate", type=_rate, default=0.0, help="200s whose connection closes mid-body"
    )
    faults.add_argument("--token", help="require 'Authorization: Bearer TOKEN' (401 otherwise)")
    faults.add_argument("--forbidden", action="store_true", help="answer 403 (no DataActions.Read)")
    faults.add_argument("--fault-seed", type=int, help="seed of the fault RNG (default: --seed)")


def run(args: argparse.Namespace) -> int:
    """Populate, serve until SIGTERM/SIGINT; 0 then, 2 for inconsistent options."""
    stop_on_signals()
    try:
        try:
            service = _service(args)
        except ValueError as exc:
            print(f"simulate: error: {exc}", file=sys.stderr)
            return 2
        serve(service, args.host, args.port, (args.log_level or "warning").lower())
    except Stopped:
        pass
    return 0


def _service(args: argparse.Namespace) -> Service:
    started = time.perf_counter()
    sim = Simulation(
        FeedOptions(
            partitions=args.partitions,
            file_path=args.file_path,
            metadata_size=args.metadata_size,
            row_cache=args.row_cache,
        ),
        PopulationOptions(
            entries=args.entries,
            seed=args.seed,
            gap_rate=args.gap_rate,
            max_gap=args.max_gap,
            reorder_rate=args.reorder_rate,
            missing_metadata_rate=args.missing_metadata_rate,
        ),
    )
    if args.entries:
        print(
            f"simulator: populated {args.entries} entries in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    faults = FaultSettings(
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        rate_429=args.rate_429,
        retry_after=args.retry_after,
        rate_500=args.rate_500,
        rate_503=args.rate_503,
        truncate_rate=args.truncate_rate,
        disconnect_rate=args.disconnect_rate,
        token=args.token,
        forbidden=args.forbidden,
        seed=args.seed if args.fault_seed is None else args.fault_seed,
    )
    return Service(sim, Faults(faults), Stats())


def main(argv: list[str] | None = None) -> int:
    """`python -m bridge.simulator`: the same options as `dicom-bridge simulate`."""
    parser = argparse.ArgumentParser(prog="python -m bridge.simulator")
    configure_parser(parser)
    return run(parser.parse_args(argv))
