"""Rules engine: turns the event stream into incident signals."""
