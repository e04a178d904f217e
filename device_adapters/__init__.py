"""Device adapters: YAML device profiles and Python adapters turn device messages into Events."""
