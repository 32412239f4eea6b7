"""The schedules themselves, in one-way layers: pure math and option reading (``options``, ``floor``,
``cycles``, ``curves``, ``stock``, ``specs``, ``steps``: standard library only) -> the torch scheduler
classes (``schedulers``) -> the registry of names (``registry``) -> what the flags mean
(``arguments``: a parsed namespace read once into a ``Request``).

Nothing here imports ``run``, ``hosts``, ``commands`` or the CLI.
"""
