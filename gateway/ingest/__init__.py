"""Ingest: MQTT messages → decoded payloads → adapters → Events or quarantine records."""
