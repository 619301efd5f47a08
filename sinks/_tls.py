"""TLS settings shared by the sinks whose connections can be encrypted (https://, rediss://,
amqps://, tls://): which CA to trust and an optional client certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field, model_validator

from bridge.core.configspec import StrictModel, error_at


class TlsConfig(StrictModel):
    """TLS settings of the sink's encrypted connections."""

    verify: bool = Field(
        True,
        description="Verify the server's certificate chain and host name. Turn off only "
        "for testing: without it anyone on the path can read and change the events.",
    )
    ca_file: Path | None = Field(
        None,
        description="PEM file of the CA certificate(s) to trust instead of the system's "
        "(a private CA).",
    )
    cert_file: Path | None = Field(
        None, description="PEM client certificate (chain) for mutual TLS; needs key_file."
    )
    key_file: Path | None = Field(
        None, description="PEM private key of cert_file (unencrypted) for mutual TLS."
    )

    @model_validator(mode="after")
    def _consistent(self) -> TlsConfig:
        if self.ca_file is not None and not self.verify:
            raise error_at("ca_file", message="has no effect with verify: false")
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise error_at(missing, message="cert_file and key_file go together")
        return self

    def context(self) -> ssl.SSLContext:
        """The client context these settings describe; ValueError (one line) when a file
        cannot be loaded."""
        try:
            context = ssl.create_default_context(
                cafile=None if self.ca_file is None else str(self.ca_file)
            )
            if not self.verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if self.cert_file is not None:
                context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load the TLS files: {exc}") from None
        return context
