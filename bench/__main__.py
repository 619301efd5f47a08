"""`make bench`: the bridge against baselines and limits, measured in one run.

    python -m bench                       # every workload at full size (several minutes)
    python -m bench --quick               # smaller, for a quick look
    python -m bench --only W1 --latency-ms 20

W1 catch-up of 200,000 entries (Kafka sink, then file sink) next to the documented
sequential loop, a DICOMcast-style loop, the raw feed and sink rates and their bare
composition; W2 the same with ~4 KB of metadata per entry; W3 freshness of live entries;
W4 feed requests with 1 and 3 sinks; M peak memory at 100k and 1M entries. Every figure in
the table comes from this run, on this machine, with the simulator in its own process and
`--latency-ms` of injected latency per request.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import orjson

from bench.harness import Run, run_bridge, run_json, simulator_post
from bridge.feed import TICKS_PER_SECOND, to_ticks
from bridge.simulator.process import SimulatorSubprocess

TOPIC = "dicom.changes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument(
        "--prefetch",
        type=int,
        default=16,
        help="bridge prefetch = the baselines' concurrency (default 16)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    parser.add_argument("--only", default="W1,W2,W3,W4,M", help="comma-separated workloads")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    wanted = set(args.only.split(","))
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = Path(scratch)
        if "W1" in wanted:
            rows += catch_up(args, work / "w1", "W1", int(200_000 * scale), metadata=0)
        if "W2" in wanted:
            rows += catch_up(args, work / "w2", "W2", int(50_000 * scale), metadata=4096)
        if "W3" in wanted:
            rows += freshness(args, work / "w3", seconds=20 * max(scale, 0.5))
        if "W4" in wanted:
            rows += fan_out(args, work / "w4", int(100_000 * scale))
        if "M" in wanted:
            rows += memory(args, work / "m", [int(100_000 * scale), int(1_000_000 * scale)])
    print_table(args, rows)


def bridge_config(url: str, prefetch: int, sinks: list[dict], metadata: bool = False) -> dict:
    return {
        "feed": {
            "url": url,
            "prefetch": prefetch,
            "poll_interval": "1s",
            "include_metadata": metadata,
        },
        "offsets": {"path": "state/offsets.db"},
        "sinks": sinks,
    }


def kafka_sink(bootstrap: str) -> dict:
    return {"name": "kafka", "type": "kafka", "bootstrap_servers": bootstrap, "topic": TOPIC}


def file_sink(name: str = "file") -> dict:
    return {"name": name, "type": "file", "path": f"out/{name}.jsonl"}


def catch_up(args, work: Path, label: str, entries: int, metadata: int) -> list[tuple]:
    from tests.peers.kafka_mock import KafkaMock

    rows = []
    with (
        SimulatorSubprocess(
            entries=entries, seed=1, latency_ms=args.latency_ms, metadata_size=metadata
        ) as sim,
        KafkaMock(brokers=3) as kafka,
    ):
        kafka.create_topic(TOPIC, partitions=6)
        total = orjson.loads(simulator_get(sim, "/_sim/state"))["visible"]
        with_metadata = ["--metadata"] if metadata else []

        def limit(what: str, *options: str) -> Run:
            """One `bench.baselines.limits` measurement against this simulator."""
            return _run(
                run_json(
                    "bench.baselines.limits", what, "--url", sim.url,
                    "--concurrency", str(args.prefetch), *options, *with_metadata,
                )
            )  # fmt: skip

        limits = {}
        for kind, target, sink in (
            ("kafka", f"{kafka.bootstrap}/{TOPIC}", kafka_sink(kafka.bootstrap)),
            ("file", str(work / "bare-file.jsonl"), file_sink()),
        ):
            if label == "W2" and kind == "file":
                continue
            bridge = run_bridge(
                work / f"bridge-{kind}",
                bridge_config(sim.url, args.prefetch, [sink], bool(metadata)),
                sim,
            )
            bridge.entries = total
            composition = limit("composition", "--sink", kind, "--target", target)
            raw_sink = limit("sink", "--sink", kind, "--target", target + ".sink")
            limits[kind] = (bridge, composition, raw_sink)
            rows.append(
                (
                    label,
                    f"bridge -> {kind}",
                    bridge,
                    f"{bridge.rate / composition.rate:.2f}x bare composition",
                )
            )
            rows.append((label, f"  bare composition -> {kind}", composition, ""))
            rows.append((label, f"  raw {kind} sink rate", raw_sink, ""))
        raw_feed = limit("feed")
        rows.append((label, "  raw feed read rate", raw_feed, ""))
        if label == "W1":
            kafka_bridge = limits["kafka"][0]
            for page, name in ((100, "documented sequential loop"), (10, "DICOMcast-style loop")):
                loop = _run(
                    run_json(
                        "bench.baselines.loops",
                        "--url",
                        sim.url,
                        "--page-size",
                        str(page),
                        "--sink",
                        "kafka",
                        "--target",
                        f"{kafka.bootstrap}/{TOPIC}",
                        "--state",
                        str(work / f"loop{page}.db"),
                        "--max-entries",
                        str(min(total, 20 * page * 10)),
                    )
                )
                rows.append(
                    (
                        label,
                        f"  {name} (page {page}) -> kafka",
                        loop,
                        f"bridge is {kafka_bridge.rate / loop.rate:.0f}x",
                    )
                )
    return rows


def freshness(args, work: Path, seconds: float) -> list[tuple]:
    """Entries stored live at a steady rate (5 every 100 ms); latency from each entry's
    commit (its feed timestamp, same clock) to its line appearing in the file sink's
    output, which a thread of the bench tails every 2 ms."""
    with SimulatorSubprocess(entries=1_000, seed=3, latency_ms=args.latency_ms) as sim:
        first_live = orjson.loads(simulator_get(sim, "/_sim/state"))["next_sequence"]
        config = bridge_config(sim.url, args.prefetch, [file_sink()])
        done = threading.Event()
        runner = threading.Thread(target=_run_until, args=(work, config, done))
        runner.start()
        delays: list[float] = []
        tail = threading.Thread(
            target=_tail, args=(work / "bridge" / "out" / "file.jsonl", first_live, delays, done)
        )
        tail.start()
        stored = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            body = {"generate": {"studies": 1, "series": 1, "instances": 5}}
            stored += len(orjson.loads(simulator_post(sim, "/_sim/store", body))["entries"])
            time.sleep(0.1)
        end = time.monotonic() + 5
        while len(delays) < stored and time.monotonic() < end:
            time.sleep(0.01)
        done.set()
        runner.join()
        tail.join()
    delays.sort()
    p50, p99 = statistics.median(delays), delays[int(len(delays) * 0.99) - 1]
    note = f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms (target <= 1100 ms)"
    return [
        (
            "W3",
            f"freshness, poll 1s ({len(delays)}/{stored} live entries)",
            Run(len(delays), seconds),
            note,
        )
    ]


def _tail(path: Path, first_live: int, delays: list[float], done: threading.Event) -> None:
    """Record, for each live entry the sink writes, now minus its feed timestamp."""
    offset = 0
    while not done.is_set():
        data = path.read_bytes()[offset:] if path.exists() else b""
        complete = data[: data.rfind(b"\n") + 1]
        offset += len(complete)
        now = time.time()
        for line in complete.splitlines():
            entry = orjson.loads(line)["data"]
            if entry["sequence"] >= first_live:
                delays.append(now - to_ticks(entry["timestamp"]) / TICKS_PER_SECOND)
        time.sleep(0.002)


def _run_until(work: Path, config: dict, done: threading.Event) -> None:
    """`dicom-bridge run` until `done` is set, then SIGTERM."""
    import subprocess
    import sys

    import yaml

    work.joinpath("bridge").mkdir(parents=True, exist_ok=True)
    path = work / "bridge" / "bridge.yaml"
    path.write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "--log-level", "WARNING", "run", "-c", str(path)],
        cwd=work / "bridge",
    )
    done.wait()
    process.terminate()
    process.wait(30)


def fan_out(args, work: Path, entries: int) -> list[tuple]:
    rows = []
    with SimulatorSubprocess(entries=entries, seed=4, latency_ms=args.latency_ms) as sim:
        one = run_bridge(work / "one", bridge_config(sim.url, args.prefetch, [file_sink()]), sim)
        three = run_bridge(
            work / "three",
            bridge_config(sim.url, args.prefetch, [file_sink("a"), file_sink("b"), file_sink("c")]),
            sim,
        )
        one.entries = three.entries = entries
        rows.append(("W4", "catch-up, 1 file sink", one, f"{one.requests} feed requests"))
        rows.append(
            (
                "W4",
                "catch-up, 3 file sinks",
                three,
                f"{three.requests} feed requests = {three.requests / one.requests:.2f}x "
                "(target <= 1.1x)",
            )
        )
    return rows


def memory(args, work: Path, sizes: list[int]) -> list[tuple]:
    rows = []
    peaks = []
    for entries in sizes:
        with SimulatorSubprocess(entries=entries, seed=5, latency_ms=args.latency_ms) as sim:
            run = run_bridge(
                work / str(entries), bridge_config(sim.url, args.prefetch, [file_sink()]), sim
            )
            run.entries = entries
            peaks.append(run.rss_mb)
            rows.append(
                ("M", f"catch-up of {entries:,}, file sink", run, f"peak RSS {run.rss_mb:.0f} MB")
            )
    rows[-1] = (*rows[-1][:3], rows[-1][3] + f" = {peaks[-1] / peaks[0]:.2f}x the smaller run")
    return rows


def simulator_get(sim, path: str) -> bytes:
    import httpx

    return httpx.get(sim.url + path, timeout=60).content


def _run(result: dict) -> Run:
    return Run(result["entries"], result["seconds"])


def print_table(args, rows: list[tuple]) -> None:
    print(
        f"\nlatency {args.latency_ms:g} ms per feed request, prefetch/concurrency {args.prefetch}\n"
    )
    print(
        f"{'':4} {'what':<48} {'entries':>9} {'seconds':>8} {'entries/s':>10} {'RSS MB':>7}  notes"
    )
    for label, what, run, notes in rows:
        rss = f"{run.rss_mb:.0f}" if run.rss_mb else ""
        print(
            f"{label:<4} {what:<48} {run.entries:>9,} {run.seconds:>8.1f} {run.rate:>10,.0f} "
            f"{rss:>7}  {notes}"
        )


if __name__ == "__main__":
    main()
