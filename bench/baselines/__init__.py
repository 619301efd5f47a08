"""Reference loops the bridge is measured against (each runs as its own process)."""
