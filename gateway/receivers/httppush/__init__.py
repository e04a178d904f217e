"""What the two HTTP push receivers (GA/T 1400 and Hikvision ISAPI) share: bounded bodies,
strict JSON, safe XML, digest authentication, and the intake that turns records into stored
events with their pictures as evidence.

Errors on the wire are :class:`Refused` (an HTTP status, a quarantine ``Reason`` and a
detail); the routes answer them in their standard's own format.
"""

from gateway.receivers.httppush.errors import Refused

__all__ = ["Refused"]
