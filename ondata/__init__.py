"""ondata composition root: settings, wiring (which backend for which setting) and the CLI.

Nothing else in the project imports this package.
"""

__version__ = "0.1.0"
