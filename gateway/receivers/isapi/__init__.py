"""Hikvision ISAPI HTTP push listener: the event notifications that access controllers and
ANPR cameras send to their ``httpHosts`` address, as multipart/form-data (a JSON or XML event
part and pictures) or a bare JSON or XML body. The event document goes through the shipped
profiles (``hikvision-acs`` for ``AccessControllerEvent``, ``hikvision-anpr`` for ``ANPR``),
the pictures become evidence. Guide: ``docs/receivers-isapi.md``.

Modules: ``config`` (the ``isapi:`` section), ``parts`` (reading the body), ``service``
(authentication and intake), ``routes`` (the HTTP surface).
"""
