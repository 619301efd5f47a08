"""Delivery: one route per sink. Entries become events (`format`), wait per study in a keyed
queue (`keyed_queue`), are sent with retries and dead letters (`route`), and move the
cursor only to the contiguous low watermark of handled entries (`tracker`, `cursor`)."""

from bridge.delivery.cursor import FeedLookup, RouteFailed
from bridge.delivery.format import Formatter
from bridge.delivery.route import Route
from bridge.delivery.sender import RouteStats, Sender

__all__ = ["FeedLookup", "Formatter", "Route", "RouteFailed", "RouteStats", "Sender"]
