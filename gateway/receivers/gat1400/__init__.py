"""GA/T 1400 (公安视频图像信息应用系统, the 视图库 protocol) server under ``/VIID``.

Capture cameras and lower-level platforms register with digest authentication
(``System/Register``), keep alive, and post ``MotorVehicles``, ``Faces``, ``Persons`` and
``NonMotorVehicles`` as the standard's ``…ListObject`` JSON; each record becomes a gate or
access event through the ``gat1400`` profile, its pictures evidence. Guide:
``docs/receivers-gat1400.md``.

Modules: ``config`` (the ``gat1400:`` section), ``protocol`` (the standard's objects and
answers), ``records`` (a list object to intake records), ``registrations`` (who is
registered), ``service`` (what each call does), ``routes`` (the HTTP surface).
"""
