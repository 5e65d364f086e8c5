"""The package's version: setup.cfg reads it from here (``attr:``), so it is written once.

Kept out of ``importlib.metadata``, whose import costs more than the rest of ``import
authplug``.
"""

__version__ = "0.1.0"
