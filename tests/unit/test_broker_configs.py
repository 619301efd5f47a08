"""Configs of the broker sinks (redis, nats, rabbitmq): what they accept, refuse and never show."""

from __future__ import annotations

import pydantic
import pytest

from sinks.nats.config import Config as NatsConfig
from sinks.nats.sink import covers
from sinks.redis.config import Config as RedisConfig

SECRET = "s3cr3t-value-42"


def redis(**fields) -> RedisConfig:
    return RedisConfig(
        name="r", type="redis", **{"url": "redis://h:6379/0", "stream": "s", **fields}
    )


def nats(**fields) -> NatsConfig:
    return NatsConfig(
        name="n",
        type="nats",
        **{"servers": "nats://h:4222", "subject": "dicom.{action}", "stream": "S", **fields},
    )


def test_redis_secrets_stay_out_of_repr_where_and_errors():
    config = redis(url=f"redis://user:{SECRET}@h:6380/2", password=SECRET)
    assert SECRET not in repr(config) and SECRET not in config.where
    assert config.where == "redis://h:6380/2 stream s"
    assert config.client_options()["password"] == SECRET
    with pytest.raises(pydantic.ValidationError) as failure:
        redis(url=f"http://user:{SECRET}@h")
    assert SECRET not in str(failure.value)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "redis://h/db"}, "database number"),
        ({"stream": "x.{nope}"}, "unsupported template field"),
        ({"stream": ""}, "empty stream key"),
        ({"maxlen": 0}, "greater than or equal to 1"),
        ({"tls": {"verify": False}}, "rediss://"),
    ],
)
def test_redis_refuses(fields, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        redis(**fields)


def test_rediss_options():
    options = redis(url="rediss://h:6380/0", tls={"verify": False}).client_options()
    assert options["ssl_cert_reqs"] == "none" and options["ssl_check_hostname"] is False


def test_nats_stream_subjects_cover_the_template():
    assert nats().stream_subjects == ["dicom.>"]
    assert nats(subject="dicom.changes").stream_subjects == ["dicom.changes"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"subject": "{action}.dicom"}, "start with fixed tokens"),
        ({"subject": "dicom.*"}, "wildcard"),
        ({"subject": "dicom..x"}, "empty token"),
        ({"stream": "a.b"}, "stream name"),
        ({"servers": "http://h:4222"}, "nats:// or tls://"),
        ({"servers": f"nats://u:{SECRET}@h:4222"}, "not the URL"),
        ({"user": "u"}, "go together"),
        ({"user": "u", "password": SECRET, "token": SECRET}, "one way to authenticate"),
    ],
)
def test_nats_refuses(fields, message):
    with pytest.raises(pydantic.ValidationError, match=message) as failure:
        nats(**fields)
    assert SECRET not in str(failure.value)


def test_nats_secrets_stay_out_of_repr():
    config = nats(token=SECRET)
    assert SECRET not in repr(config) and SECRET not in config.where
    assert config.connect_options() == {"token": SECRET}


@pytest.mark.parametrize(
    ("pattern", "subject", "covered"),
    [
        ("dicom.>", "dicom.>", True),
        (">", "dicom.>", True),
        ("dicom.*", "dicom.>", False),
        ("dicom.*", "dicom.create", True),
        ("dicom.create", "dicom.>", False),
        ("dicom.changes", "dicom.changes", True),
        ("other.>", "dicom.>", False),
        ("dicom.>", "dicom", False),
    ],
)
def test_nats_stream_coverage(pattern, subject, covered):
    assert covers(pattern, subject) is covered


def rabbitmq(**fields):
    from sinks.rabbitmq.config import Config

    return Config(
        name="q", type="rabbitmq", **{"url": "amqp://u:p@h:5672/v", "exchange": "x", **fields}
    )


def test_rabbitmq_password_replaces_the_urls_and_stays_hidden():
    config = rabbitmq(url=f"amqp://user:{SECRET}@h/%2F", password="n3w/p@ss")
    assert SECRET not in repr(config) and SECRET not in config.where
    assert config.where == "amqp://h:5672 vhost / exchange x"
    assert config.connection_url() == "amqp://user:n3w%2Fp%40ss@h/%2F"
    assert rabbitmq(url=f"amqp://user:{SECRET}@h/").connection_url().endswith(f"{SECRET}@h/")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "http://h"}, "amqp:// or amqps://"),
        ({"exchange": ""}, "exchange name"),
        ({"exchange": "a b"}, "exchange name"),
        ({"routing_key": "x.{nope}"}, "unsupported template field"),
        ({"routing_key": "x" * 300}, "longer than 255"),
        ({"tls": {"verify": False}}, "amqps://"),
    ],
)
def test_rabbitmq_refuses(fields, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        rabbitmq(**fields)


def test_password_files_are_read_and_never_shown(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    config = redis(password_file=str(secret_file), username="bridge")
    assert config.client_options()["password"] == SECRET
    assert SECRET not in repr(config)
    queue = rabbitmq(url="amqp://bridge@h/%2F", password_file=str(secret_file))
    assert queue.connection_url() == f"amqp://bridge:{SECRET}@h/%2F"
    stream = nats(user="bridge", password_file=str(secret_file))
    assert stream.connect_options()["password"] == SECRET
    with pytest.raises(pydantic.ValidationError, match="cannot read"):
        redis(password_file=str(tmp_path / "missing"))
