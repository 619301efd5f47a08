"""The Azurite fixtures: a real emulator on loopback, restartable with its data."""

from __future__ import annotations

from collections.abc import Callable

from azure.storage.blob.aio import BlobServiceClient

from tests.peers.azurite import AzuriteProcess, shared_azurite


async def _roundtrip(connection_string: str, container: str, data: bytes | None) -> bytes:
    async with BlobServiceClient.from_connection_string(connection_string) as service:
        blob = service.get_blob_client(container, "probe.json")
        if data is not None:
            await service.create_container(container)
            await blob.upload_blob(data)
        return bytes(await (await blob.download_blob()).readall())


async def test_a_blob_written_survives_a_restart(
    start_azurite: Callable[[], AzuriteProcess], azurite_container: str
) -> None:
    azurite = start_azurite()
    assert await _roundtrip(azurite.connection_string, azurite_container, b"{}") == b"{}"
    port = azurite.port
    azurite.stop()
    azurite.start()
    assert azurite.port == port
    assert await _roundtrip(azurite.connection_string, azurite_container, None) == b"{}"


def test_the_shared_azurite_config(
    azurite: AzuriteProcess, azurite_offsets: dict[str, object]
) -> None:
    assert shared_azurite() is azurite
    assert azurite_offsets["type"] == "azure_blob"
    assert f"127.0.0.1:{azurite.port}/" in str(azurite_offsets["connection_string"])
    proxied = azurite.offsets("abc", via=1234, timeout="2s")
    assert "BlobEndpoint=http://127.0.0.1:1234/devstoreaccount1;" in proxied["connection_string"]
    assert proxied["timeout"] == "2s"
