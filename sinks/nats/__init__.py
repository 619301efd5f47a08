"""NATS JetStream sink: each event published with `Nats-Msg-Id` = the event id and its PubAck
awaited, through nats-py. `config.py` holds the settings, `sink.py` the sink."""
