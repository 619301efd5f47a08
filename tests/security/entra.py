"""A stand-in for the Microsoft Entra ID token endpoint (client credentials grant), so the
bridge's `client_secret` options can be exercised without Azure.

azure-identity posts `client_id`, `client_secret`, `scope` to
`$AZURE_AUTHORITY_HOST/<tenant>/oauth2/v2.0/token`; this endpoint answers an access token
when the secret is the expected one, else 401 `invalid_client` as Entra does (without
echoing the secret). It serves https:// with the throwaway CA's certificate, which
azure-identity's aiohttp transport trusts through `SSL_CERT_FILE`: `environment()` holds both.

    with FakeEntra(pki, client_secret="s3cret", access_token="tok") as entra:
        os.environ |= entra.environment()
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs

import orjson

from tests.integration.webhook.certs import Pki

REFUSAL = {
    "error": "invalid_client",
    "error_description": "AADSTS7000215: Invalid client secret provided.",
}


class FakeEntra:
    def __init__(self, pki: Pki, *, client_secret: str, access_token: str) -> None:
        self.pki = pki
        self.client_secret = client_secret
        self.access_token = access_token
        self.issued = 0  # tokens handed out
        self.refused = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def environment(self) -> dict[str, str]:
        """What a process needs to get its tokens here."""
        return {"AZURE_AUTHORITY_HOST": self.url, "SSL_CERT_FILE": str(self.pki.ca)}

    def start(self) -> Self:
        entra = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                form = parse_qs(self.rfile.read(length).decode())
                entra._answer(self, form.get("client_secret", [""])[0])

            def log_message(self, *args: object) -> None:
                pass  # quiet

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _answer(self, handler: BaseHTTPRequestHandler, client_secret: str) -> None:
        if client_secret == self.client_secret:
            self.issued += 1
            status = 200
            body = {"access_token": self.access_token, "expires_in": 3600, "token_type": "Bearer"}
        else:
            self.refused += 1
            status, body = 401, REFUSAL
        payload = orjson.dumps(body)
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
