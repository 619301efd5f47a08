# dicom-changefeed-bridge: slim image, non-root, config mounted at /etc/dicom-bridge.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin bridge
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY sinks ./sinks
RUN pip install . && rm -rf /root/.cache

# State (the SQLite offset store, file sinks) lives in a volume owned by the bridge user.
RUN mkdir -p /var/lib/dicom-bridge /etc/dicom-bridge && chown bridge /var/lib/dicom-bridge
WORKDIR /var/lib/dicom-bridge
USER bridge
VOLUME ["/var/lib/dicom-bridge"]

# Liveness from the metrics and health listener (`/healthz`: the process runs and serves;
# `/readyz` is for a load balancer or an orchestrator's readiness probe, not for restarts):
# the config needs `http: {listen: "0.0.0.0:9464"}` (or 127.0.0.1:9464: the probe runs
# inside the container).
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4)"]
ENTRYPOINT ["dicom-bridge"]
CMD ["run", "-c", "/etc/dicom-bridge/config.yaml"]
