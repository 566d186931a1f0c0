"""The runtime's name for :mod:`voxline.context`, where the current session's context variable lives.

The same objects: the runtime sets ``current_session`` to its :class:`~voxline.runtime.session.Session`
while a scenario's code runs, and the code below the runtime reads it as a
:class:`~voxline.context.SessionContext`.
"""

from __future__ import annotations

from ..context import Closable, SessionContext, adopt, current_session

__all__ = ["Closable", "SessionContext", "adopt", "current_session"]
