"""GB/T 28181-2016 SIP server: registration, keepalive, alarms, catalog. See
docs/receivers-gb28181.md."""
