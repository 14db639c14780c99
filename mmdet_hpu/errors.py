"""The package's error types, at the bottom of the import graph.

Every layer (``checkpoint``, ``validation``, ``runner``, ``apis``, ``cli``) raises these;
none of them imports the command-line layer to do so. The console scripts print a
``UserError`` as one paragraph on stderr and exit with status 2.
"""


class UserError(RuntimeError):
    """A mistake in the command line, config or data; the message says how to fix it."""


class ConfigError(UserError, ValueError):
    """A config or command-line value that cannot work; the message says how to fix it."""
