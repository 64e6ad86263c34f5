"""The process's limit on open files, raised to what the system allows at start.

Every client connection holds a file descriptor, and so does every database connection
and every file being read. A server started with the soft limit most systems give
(1,024, systemd's default) ran out at about a thousand connections: 1,004 gateway
connections that never identified made signed-in users' requests fail. The hard limit
is what the system lets the process take without privileges (systemd's default is
524,288; `LimitNOFILE=` sets both), so the soft one is raised to it, as nginx's
`worker_rlimit_nofile` and PostgreSQL do. Workers forked after this inherit it.
"""

from __future__ import annotations

import resource

# Where the hard limit is "unlimited" (macOS): the most the kernel takes for one process
# there is about this, and a soft limit needs a number.
UNLIMITED_TARGET = 1 << 20


def raise_file_limit() -> str:
    """Raise the soft RLIMIT_NOFILE to the hard limit; a line saying what it is now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            return f"open files: at most {soft} (raising it to {target} failed: {exc})"
        return f"open files: at most {target} (raised from {soft}, the hard limit)"
    return f"open files: at most {_written(soft)}" + (" (the hard limit)" if soft == hard else "")


def _written(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
