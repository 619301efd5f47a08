"""What the operator commands share: they answer promptly, each peer asked once."""

#: Seconds a command waits for one peer (the feed, the store, a sink).
PROBE_TIMEOUT = 15.0


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class OutOfRange(ValueError):
    """A sequence given on the command line that the feed does not hold (yet): a usage
    error, the message says what to do instead."""
