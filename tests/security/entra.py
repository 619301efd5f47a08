"""Stand-ins for the endpoints azure-identity gets Microsoft Entra ID tokens from, so the
bridge's Azure identities run for real without Azure. Each records the requests it answered
(`requests`: what identifies the caller, never a secret) and counts tokens `issued` and
requests `refused`.

`FakeEntra`: the token endpoint, `$AZURE_AUTHORITY_HOST/<tenant>/oauth2/v2.0/token`, for the
client credentials grant: with a `client_secret` (a service principal) or a
`client_assertion` (workload identity: the Kubernetes service account token, read from
AZURE_FEDERATED_TOKEN_FILE). It answers a token when the secret or assertion is the
expected one, else 401 `invalid_client` as Entra does (without echoing it). It serves
https:// with the throwaway CA's certificate, which azure-identity's aiohttp transport
trusts through `SSL_CERT_FILE`: `environment()` holds both.

`FakeManagedIdentity`: the managed identity endpoint of App Service and Container Apps,
`GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=<scope without /.default>` (plus
`client_id` for a user-assigned identity) with the `X-IDENTITY-HEADER: $IDENTITY_HEADER`
header; the answer carries `expires_on` in epoch seconds and the `resource`. Plain http, as
the platform serves it on the container's loopback.

    with FakeEntra(pki, client_secret="s3cret", access_token="tok") as entra:
        os.environ |= entra.environment()
"""

from __future__ import annotations

import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.integration.webhook.certs import Pki

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REFUSAL = {
    "error": "invalid_client",
    "error_description": "AADSTS7000215: Invalid client secret provided.",
}
ASSERTION_REFUSAL = {
    "error": "invalid_client",
    "error_description": "AADSTS70021: No matching federated identity record found for "
    "presented assertion.",
}
IDENTITY_REFUSAL = {"error": "invalid_request", "error_description": "Invalid identity header."}


class _TokenServer:
    """A threaded HTTP(S) server on 127.0.0.1 whose `_answer` each subclass writes."""

    scheme = "http"

    def __init__(self, access_token: str) -> None:
        self.access_token = access_token
        self.requests: list[dict[str, str | None]] = []
        self.issued = 0  # tokens handed out
        self.refused = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner._reply(self, *owner._answer(self, b""))

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                owner._reply(self, *owner._answer(self, self.rfile.read(length)))

            def log_message(self, *args: object) -> None:
                pass  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._wrap(self._server)
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

    def _wrap(self, server: ThreadingHTTPServer) -> None:
        """Plain http unless a subclass says otherwise."""

    def _answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict]:
        raise NotImplementedError

    def _token(self, **extra: Any) -> tuple[int, dict]:
        self.issued += 1
        return 200, {"access_token": self.access_token, "token_type": "Bearer", **extra}

    def _refusal(self, body: dict[str, str], status: int = 401) -> tuple[int, dict]:
        self.refused += 1
        return status, body

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, body: dict) -> None:
        payload = orjson.dumps(body)
        handler.send_response(status)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


class FakeEntra(_TokenServer):
    scheme = "https"

    def __init__(
        self,
        pki: Pki,
        *,
        access_token: str,
        client_secret: str | None = None,
        client_assertion: str | None = None,
    ) -> None:
        super().__init__(access_token)
        self.pki = pki
        self.client_secret = client_secret
        self.client_assertion = client_assertion

    def environment(self) -> dict[str, str]:
        """What a process needs to get its tokens here."""
        return {"AZURE_AUTHORITY_HOST": self.url, "SSL_CERT_FILE": str(self.pki.ca)}

    def _wrap(self, server: ThreadingHTTPServer) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)

    def _answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict]:
        form = {name: values[0] for name, values in parse_qs(body.decode()).items()}
        path = urlsplit(handler.path).path.strip("/").split("/")
        assertion = form.get("client_assertion_type") == JWT_BEARER
        self.requests.append(
            {
                "tenant": path[0] if path[1:] == ["oauth2", "v2.0", "token"] else None,
                "client_id": form.get("client_id"),
                "scope": form.get("scope"),
                "grant": form.get("grant_type"),
                "credential": "client_assertion" if assertion else "client_secret",
            }
        )
        if assertion:
            if self.client_assertion and form.get("client_assertion") == self.client_assertion:
                return self._token(expires_in=3600)
            return self._refusal(ASSERTION_REFUSAL)
        if self.client_secret and form.get("client_secret") == self.client_secret:
            return self._token(expires_in=3600)
        return self._refusal(REFUSAL)


class FakeManagedIdentity(_TokenServer):
    def __init__(self, *, identity_header: str, access_token: str) -> None:
        super().__init__(access_token)
        self.identity_header = identity_header

    def environment(self) -> dict[str, str]:
        """What App Service and Container Apps set in a container with a managed identity."""
        return {
            "IDENTITY_ENDPOINT": f"{self.url}/msi/token",
            "IDENTITY_HEADER": self.identity_header,
        }

    def _answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict]:
        parts = urlsplit(handler.path)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        resource = query.get("resource")
        self.requests.append(
            {
                "path": parts.path,
                "api_version": query.get("api-version"),
                "resource": resource,
                "client_id": query.get("client_id"),
            }
        )
        if handler.headers.get("x-identity-header") != self.identity_header:
            return self._refusal(IDENTITY_REFUSAL, status=400)
        expires_on = str(int(time.time()) + 3600)
        return self._token(
            expires_on=expires_on, resource=resource, client_id=query.get("client_id")
        )
