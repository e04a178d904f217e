"""Everything that exists only for zero-setup runs and tests: the demo's configuration, the
embedded MQTT broker, the simulated compound, simulated ONVIF cameras and synthetic video.

The runtime never imports this package; ``lianfang demo`` and ``lianfang simulate`` do.
"""
