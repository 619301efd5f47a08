"""The documented way to read the feed, and DICOMcast's: strictly sequential.

    python -m bench.baselines.loops --url URL --page-size 100 --sink file --target out.jsonl

Per iteration: GET latest, GET the page `(cursor, cursor+L]`, send its events and wait for
the sink, then commit the cursor (SQLite, synchronous=FULL) — the loop of
docs/changefeed.md (page 100 is the documented maximum; DICOMcast uses 10). Prints one
JSON line: entries, seconds, requests.
"""

from __future__ import annotations

import argparse
import sqlite3
import time

import httpx
import orjson

from bench.baselines.sinks import bare_sink
from bridge.core.entry import parse_entry
from bridge.delivery.format import Formatter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--sink", choices=["file", "kafka"], required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--state", required=True)
    parser.add_argument("--metadata", action="store_true")
    parser.add_argument(
        "--max-entries",
        type=int,
        default=0,
        help="stop after this many (the rate is what is measured)",
    )
    args = parser.parse_args()

    db = sqlite3.connect(args.state)
    db.execute("pragma journal_mode=wal")
    db.execute("pragma synchronous=full")
    db.execute("create table if not exists cursor (id integer primary key, sequence integer)")
    sink = bare_sink(args.sink, args.target)
    formatter = Formatter(args.url)
    metadata = "true" if args.metadata else "false"
    cursor = entries = requests = 0
    started = time.monotonic()
    with httpx.Client(base_url=f"{args.url}/v1", timeout=60) as http:
        while True:
            latest_response = http.get("/changefeed/latest", params={"includeMetadata": "false"})
            latest = (
                orjson.loads(latest_response.content)["sequence"]
                if (latest_response.content)
                else 0
            )
            page = orjson.loads(
                http.get(
                    "/changefeed",
                    params={"offset": cursor, "limit": args.page_size, "includeMetadata": metadata},
                ).content
            )
            requests += 2
            if (not page and latest <= cursor) or 0 < args.max_entries <= entries:
                break
            events = [formatter.event(parse_entry(raw)) for raw in page]
            if events:
                if args.sink == "kafka":
                    sink.send([e.body for e in events], [e.key.encode() for e in events])
                else:
                    sink.send([e.body for e in events])
            entries += len(events)
            cursor = page[-1]["sequence"] if page else cursor + args.page_size
            db.execute("insert or replace into cursor values (1, ?)", (cursor,))
            db.commit()
    sink.close()
    print(
        orjson.dumps(
            {"entries": entries, "seconds": time.monotonic() - started, "requests": requests}
        ).decode()
    )


if __name__ == "__main__":
    main()
