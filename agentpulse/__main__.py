"""``python -m agentpulse``: the same as the ``agentpulse`` command.

Example::

    $ python -m agentpulse sessions
"""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
