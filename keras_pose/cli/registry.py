"""The subcommand registry of ``keras-pose``: each subcommand module registers itself with :func:`command`.

Subcommands register themselves in ``COMMANDS`` (name -> (help, add_arguments)); ``add_arguments(parser)``
adds the subcommand's options and returns its run function.
"""

from __future__ import annotations

COMMANDS = {}


def command(name, help):
    """Decorator: register ``add_arguments`` for subcommand ``name``; it returns the run function."""

    def deco(add_arguments):
        COMMANDS[name] = (help, add_arguments)
        return add_arguments

    return deco
