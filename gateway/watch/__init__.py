"""What arrives on the wire, for integrators: what the running profiles make of a message
(``trial``), and topic watches — a short-lived MQTT client of its own on the gateway's broker
that shows what arrives on a filter and which profile, if any, would take it (``topics``).
Nothing here stores a payload: a watch holds what it saw in memory, for its own life.
"""
