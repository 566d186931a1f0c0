"""The worker process of ``AsyncRecognizer.in_process``: one Recognizer, driven over stdin/stdout.

Frames are a 4-byte big-endian length and a pickle (parent and child are the same program, so
pickle is trusted here). Requests: ``(method, args)``; ``("__create__", (factory, args, kwargs))``
builds the recogniser. Replies: ``(True, result)`` or ``(False, exception)``.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import IO, Any

_HEADER = 4


def _read(stream: IO[bytes], n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _reply(out: IO[bytes], ok: bool, value: Any) -> None:
    try:
        payload = pickle.dumps((ok, value))
    except Exception as exc:  # an unpicklable result or exception: say what it was
        payload = pickle.dumps((False, RuntimeError(f"{type(value).__name__}: {value} ({exc})")))
    out.write(len(payload).to_bytes(_HEADER, "big") + payload)
    out.flush()


def main() -> None:
    # The protocol gets its own descriptor; anything else writing to fd 1 (C libraries, print) goes
    # to stderr instead of corrupting the frames.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    from voxline.local.asr import Recognizer

    recognizer: Recognizer | None = None
    while True:
        header = _read(stdin, _HEADER)
        if header is None:
            return
        body = _read(stdin, int.from_bytes(header, "big"))
        if body is None:
            return
        try:
            method, args = pickle.loads(body)
            if method == "__create__":
                factory, f_args, f_kwargs = args
                made = factory(*f_args, **f_kwargs)
                if not isinstance(made, Recognizer):
                    raise TypeError(f"factory must return a Recognizer, got {type(made).__name__}")
                recognizer = made
                result: Any = None
            elif recognizer is None:
                raise RuntimeError("the recogniser was not created")
            else:
                result = getattr(recognizer, method)(*args)
        except Exception as exc:
            _reply(out, False, exc)
        else:
            _reply(out, True, result)


if __name__ == "__main__":
    main()
