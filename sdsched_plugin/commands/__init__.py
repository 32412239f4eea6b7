"""The ``sdsched`` commands: ``preview`` (with ``stats`` and ``plot``) and ``doctor``.

Imports everything below it; ``preview`` and ``doctor`` never import each other.
"""
