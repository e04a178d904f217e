"""SIA DC-09 receiver (Contact ID and SIA-DCS over TCP and UDP). See docs/receivers-sia.md."""
