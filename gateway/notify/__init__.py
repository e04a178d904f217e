"""Notification: one small ``Notifier`` interface, the drivers (MQTT, webhook, console, SMS
and voice behind a driver), the outbox table and the dispatcher with acknowledgement
deadlines.

A notification is stored (outbox row, committed) before it is sent; each (recipient,
channel) is delivered by its own task, so one slow receiver never delays the others.
"""

from gateway.notify.base import Message, Notifier, SendResult

__all__ = ["Message", "Notifier", "SendResult"]
