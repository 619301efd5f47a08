"""The Kafka sink against librdkafka's mock cluster (a helper process for the session)."""
