"""Azure Service Bus sink: each event one message on a queue or topic, batched to the
entity's size limit, with deterministic message ids and optional per-study sessions."""
