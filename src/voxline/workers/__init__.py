"""``voxline run --workers N``: a supervisor, its SIP front (a stateless proxy) and N worker processes.

:mod:`voxline.workers.sipfront` is the sans-I/O front, :mod:`voxline.workers.frontio` its sockets,
:mod:`voxline.workers.supervisor` starts, restarts and drains the workers,
:mod:`voxline.workers.launch` makes each worker's command line. docs/deploy.md tells how to use it.
"""
