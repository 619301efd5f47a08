"""JSON Lines file sink: one event per line, durable (fsync) before it counts as delivered."""
