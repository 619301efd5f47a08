"""dicom-changefeed-bridge: forward the DICOM change feed to message brokers, at least once."""

__version__ = "0.1.0"
