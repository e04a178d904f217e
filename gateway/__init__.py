"""Lianfang gateway: device messages in, typed events, storage and the HTTP API out."""

__version__ = "0.1.0"
