"""Kafka sink: one record per event, keyed by study, through an idempotent confluent-kafka
producer (librdkafka). `config.py` holds the settings, `sink.py` the sink."""
