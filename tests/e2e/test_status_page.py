"""The status page in a real browser (headless chromium): it names every route and shows
the lag of a stalled sink growing, refreshed from `/status.json` by its own script."""

from __future__ import annotations

import asyncio
import os
from html.parser import HTMLParser
from pathlib import Path

import httpx

from bridge.config import parse_config
from bridge.runtime.pipeline import Pipeline
from tests.e2e.browser import dump_dom, screenshot

#: `STATUS_SCREENSHOT=docs/status.png pytest tests/e2e/test_status_page.py` refreshes the
#: README's picture; otherwise the screenshot goes to the test's temporary directory.
SCREENSHOT = "STATUS_SCREENSHOT"


class Rows(HTMLParser):
    """The route rows of the page: {route: {cell class: (text, data-value)}}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, tuple[str, str | None]]] = {}
        self.texts: dict[str, str] = {}
        self._route: str | None = None
        self._cell: tuple[str, str | None] | None = None
        self._text = ""
        self._id: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "tr" and "data-route" in attributes:
            self._route = attributes["data-route"]
            self.rows[self._route] = {}
        elif tag == "td" and self._route is not None:
            self._cell = (attributes.get("class") or "", attributes.get("data-value"))
            self._text = ""
        elif "id" in attributes:
            self._id, self._text = attributes["id"], ""

    def handle_data(self, data):
        self._text += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._route is not None:
            name = self._cell[0].replace("num ", "")
            self.rows[self._route][name] = (self._text.strip(), self._cell[1])
            self._cell = None
        elif tag == "tr":
            self._route = None
        elif self._id is not None and self._cell is None:
            self.texts[self._id] = self._text.strip()
            self._id = None


def rows(html: str) -> Rows:
    parser = Rows()
    parser.feed(html)
    return parser


async def until(condition, timeout=60.0):
    async def poll():
        while not await condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


async def test_status_page_names_every_route_and_shows_a_stalled_sinks_lag_growing(
    simulator, tmp_path, monkeypatch
):
    picture = Path(os.environ.get(SCREENSHOT) or tmp_path / "status.png").absolute()
    monkeypatch.chdir(tmp_path)  # relative paths: the screenshot shows no machine's paths
    sim = simulator(entries=1_500, seed=16)
    Path("blocked").write_text("not a directory")  # the stalled sink's path cannot be written
    config = parse_config(f"""
feed: {{url: "{sim.url}", poll_interval: 50ms}}
offsets: {{path: state/offsets.db, commit_interval: 100ms}}
drain_timeout: 1s
http: {{listen: "127.0.0.1:0"}}
sinks:
  - {{name: archive, type: file, path: out/archive.jsonl}}
  - name: research-hooks
    type: file
    path: blocked/events.jsonl
    retry: {{initial: 20ms, max: 100ms}}
""")
    pipeline = Pipeline(config)
    assert pipeline.status is not None
    pipeline.status.interval = 0.2  # a sparkline within the test's seconds
    running = asyncio.create_task(pipeline.run())
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            while pipeline.listener is None or not pipeline.listener.started:
                assert not running.done(), running.exception()
                await asyncio.sleep(0.01)
            base = f"http://127.0.0.1:{pipeline.listener.port}"

            async def status() -> dict:
                return (await http.get(f"{base}/status.json")).json()

            async def archive_caught_up() -> bool:
                routes = {r["name"]: r for r in (await status())["routes"]}
                return routes["archive"]["state"] == "caught up" and bool(
                    routes["archive"]["history"]
                )

            await until(archive_caught_up)

            first = rows(await dump_dom(f"{base}/"))
            assert set(first.rows) == {"archive", "research-hooks"}
            archive, stalled = first.rows["archive"], first.rows["research-hooks"]
            assert archive["state"][0] == "caught up" and archive["lag-entries"][0] == "0"
            assert archive["sink-type"][0] == stalled["sink-type"][0] == "file"
            assert stalled["state"][0] == "retrying"
            assert "blocked" in stalled["error"][0]
            lag_before = int(stalled["lag-entries"][1] or 0)
            latest = int(first.texts["feed-latest"].replace(",", ""))
            assert lag_before == latest >= 1_500  # nothing delivered: all of the feed
            assert stalled["lag-entries"][0] == f"{latest:,}"
            assert first.texts["feed-up"] == "feed up"

            sim.store(generate={"studies": 2, "series": 1, "instances": 5})

            async def lag_grew() -> bool:
                routes = {r["name"]: r for r in (await status())["routes"]}
                return routes["research-hooks"]["lag_entries"] >= lag_before + 10

            await until(lag_grew)
            second = rows(await dump_dom(f"{base}/"))
            stalled_now = second.rows["research-hooks"]
            assert int(stalled_now["lag-entries"][1] or 0) >= lag_before + 10
            assert stalled_now["lag-entries"][0] != stalled["lag-entries"][0]
            assert float(stalled_now["lag-seconds"][1] or 0) > 3600  # the simulator's 2024 data
            assert second.rows["archive"]["lag-entries"][0] == "0"

            await screenshot(f"{base}/", picture)
            assert picture.read_bytes().startswith(b"\x89PNG")
    finally:
        pipeline.request_stop()
        await asyncio.wait_for(running, 30)
