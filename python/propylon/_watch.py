"""``python -m propylon._watch DIR...``: the ``--reload`` file watcher.

Runs as a child process of the supervisor, so that the supervisor, which
forks the workers, has no thread of its own. Watches the directories with
``watchfiles`` (inotify on Linux) for changes to Python files and writes one
line per batch of changes to stdout, the changed paths separated by tabs;
an empty line first, once the directories are watched (the supervisor waits
for it, so that no edit made after the server is ready goes unseen). Ends
when its parent does.
"""

from __future__ import annotations

import os
import sys


def main(directories: list[str]) -> int:
    from watchfiles import PythonFilter, watch

    parent = os.getppid()
    ready = False
    # The first (empty) batch comes after the first timeout, which is after
    # the watches are set up.
    for changes in watch(*directories, watch_filter=PythonFilter(), yield_on_timeout=True, rust_timeout=200):
        if os.getppid() != parent:
            return 0
        if not ready:
            ready = True
            print(flush=True)
        if changes:
            try:
                print("\t".join(sorted(path for _, path in changes)), flush=True)
            except BrokenPipeError:
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
