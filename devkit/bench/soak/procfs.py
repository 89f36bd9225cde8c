"""What ``/proc`` says of a process: its CPU seconds (with its children's), its memory, its
children. Every reading is None (or empty) for a process that has gone."""

import os

TICK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    """The fields of ``/proc/<pid>/stat`` after the command's name (fields[1]: the parent's
    pid; 11, 12: user and system ticks; 13, 14: those of the children it has waited for), or
    None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rpartition(")")[2].split()
    except OSError:
        return None


def cpu_seconds(pid, waited=True):
    """User + system CPU seconds of ``pid``; with ``waited``, also those of the children it has
    reaped (a gunicorn master's restarted workers). None if it has gone."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    ticks = int(fields[11]) + int(fields[12])
    if waited:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def parents():
    """{pid: parent pid} of every process on the machine now."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = stat_fields(name)
            if fields is not None:
                found[int(name)] = int(fields[1])
    return found


def children(pid, parent_of):
    """The live children of ``pid``, from a ``parents()`` reading."""
    return [child for child, parent in parent_of.items() if parent == pid]


def tree_cpu_seconds(pid, parent_of):
    """CPU seconds of ``pid``, the children it reaped, and its live children (with theirs):
    a number that only grows while children come and go. None if ``pid`` has gone."""
    own = cpu_seconds(pid)
    if own is None:
        return None
    return own + sum(cpu_seconds(child) or 0.0 for child in children(pid, parent_of))


def memory_mb(pid, field="VmRSS"):
    """A memory figure of ``/proc/<pid>/status`` in MB (``VmRSS``, or ``RssAnon``: the
    private part, for a PostgreSQL backend whose RSS also counts the shared buffers it
    touched), or None."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tree_rss_mb(pid, parent_of):
    """RSS of ``pid`` and its live children together, in MB, or None."""
    own = memory_mb(pid)
    if own is None:
        return None
    return own + sum(memory_mb(child) or 0.0 for child in children(pid, parent_of))
