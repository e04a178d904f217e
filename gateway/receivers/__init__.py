"""Receivers for devices that push over their own protocols instead of MQTT: SIA DC-09 alarm
panels, GB/T 28181 SIP cameras, GA/T 1400 (视图库) capture cameras, Hikvision ISAPI HTTP push.

Each receiver turns what it gets into the same typed ``Event`` as the MQTT adapters, knows
devices through the same site registry, quarantines what it cannot read with the reason, and
answers on the wire as its standard says. One sub-package per protocol.
"""
