"""RabbitMQ sink: each event published persistent to a topic exchange with publisher
confirms, through aio-pika. `config.py` holds the settings, `sink.py` the sink."""
