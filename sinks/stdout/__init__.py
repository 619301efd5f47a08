"""Standard output sink: one event per line, for trying the bridge out and for piping."""
