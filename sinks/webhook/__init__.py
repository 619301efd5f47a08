"""HTTP webhook sink: CloudEvents over HTTP POST, signed per the Standard Webhooks spec."""
