"""The `pypxeboot` command: parse the toolstack's arguments, boot, answer; exit 0 only on success.

On failure: one line on stderr naming the step, exit status 1, no answer written, downloads removed.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

from pypxeboot import boot, output
from pypxeboot.arguments import Options, parse
from pypxeboot.errors import BootError, UsageError


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print(f"pypxeboot: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()

    def log(message: str) -> None:
        print(f"pypxeboot: {time.monotonic() - started:6.2f} {message}", file=sys.stderr, flush=True)

    def out_of_time(signum: int, frame: FrameType | None) -> None:
        raise BootError("time limit", f"the whole run took longer than {opts.timeout:.0f} s")

    # A last resort behind the per-step deadlines: libxl sets no timeout on bootloaders of its own.
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(opts.timeout) + 5)
    try:
        answer = boot.boot(opts, log)
        data = output.render(answer, opts.output_format)
    except BootError as exc:
        print(f"pypxeboot: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug; still one line for libxl's log, and no answer
        print(f"pypxeboot: internal error ({type(exc).__name__}: {exc}); this is a bug", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
    try:
        write_answer(opts, data)
    except OSError as exc:
        for path in filter(None, (answer.kernel, answer.ramdisk)):
            if os.path.dirname(path) == opts.output_directory:
                os.unlink(path)
        print(f"pypxeboot: output: cannot write {opts.output}: {exc.strerror}", file=sys.stderr)
        return 1
    log(f"answered the toolstack ({opts.output_format})")
    return 0


def write_answer(opts: Options, data: bytes) -> None:
    if opts.output == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    # libxl created the file (mode 0600); xend made a FIFO: open it as it is, write once.
    fd = os.open(opts.output, os.O_WRONLY | os.O_TRUNC if os.path.isfile(opts.output) else os.O_WRONLY)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    sys.exit(main())
