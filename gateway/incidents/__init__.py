"""Grid incidents: the six-stage lifecycle, grouping of rule signals, manual and 随手报
reports, the append-only timeline, attachments and statistics.

``IncidentsRuntime`` (``gateway.incidents.runtime``) wires it into the running gateway.
"""
