"""Redis Streams sink: XADD of each event (fields `id` and `event`) through redis-py's
asyncio client, a batch pipelined. `config.py` holds the settings, `sink.py` the sink."""
