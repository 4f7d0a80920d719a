"""The faults of a chaos run: a seeded plan, and the small helpers that inject them.

Same seed, same plan: kinds, targets, durations and partition sides are all drawn up front
from ``random.Random(seed)`` (the first faults are one of each kind, shuffled, so that a short
run still covers every kind). Timing in the run itself depends on the machine; the plan does
not.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

KILL = "kill"  # SIGKILL, then the same command line again
PAUSE = "pause"  # SIGSTOP 5-15 s, SIGCONT
LINK = "link"  # the validator's link down 5-15 s, up
PARTITION_22 = "partition 2|2"
PARTITION_31 = "partition 3|1"
SKEW = "clock skew"  # restarted under libfaketime, +-half a slot, then restarted without
DISK_FULL = "disk full"  # its database's filesystem filled: it must stop cleanly; freed, restarted

ALL_KINDS = (KILL, PAUSE, LINK, PARTITION_22, PARTITION_31, SKEW, DISK_FULL)
NEEDS_NETNS = frozenset({LINK, PARTITION_22, PARTITION_31})
#: Names for ``--kinds`` without spaces or shell metacharacters.
ALIASES = {"kill": KILL, "pause": PAUSE, "link": LINK, "partition22": PARTITION_22,
           "partition31": PARTITION_31, "skew": SKEW, "diskfull": DISK_FULL}  # fmt: skip

LIBFAKETIME_PATHS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
)


@dataclass
class Fault:
    index: int
    kind: str
    targets: list[int]  # validators hit (for a partition: the first side)
    duration_s: float  # how long the fault holds before it is healed
    skew_ms: int = 0  # clock skew: the offset
    groups: list[list[int]] = field(default_factory=list)  # partition sides

    def describe(self, names: list[str]) -> str:
        if self.groups:
            return " | ".join(",".join(names[i] for i in g) for g in self.groups)
        who = ", ".join(names[i] for i in self.targets)
        return f"{who} {self.skew_ms:+d} ms" if self.kind == SKEW else who


def plan(
    seed: int, count: int, validators: int, kinds: tuple[str, ...], slot_ms: int
) -> list[Fault]:
    """``count`` faults over ``validators`` validators, drawn from ``kinds`` by ``seed``."""
    rng = random.Random(seed)
    first = list(kinds)
    rng.shuffle(first)
    out = []
    for i in range(count):
        kind = first[i] if i < len(first) else rng.choice(kinds)
        v = rng.randrange(validators)
        f = Fault(i, kind, [v], 0.0)
        if kind == KILL:
            f.duration_s = rng.uniform(1.0, 3.0)  # down this long before the restart
        elif kind in (PAUSE, LINK):
            f.duration_s = rng.uniform(5.0, 15.0)
        elif kind == PARTITION_22:
            order = rng.sample(range(validators), validators)
            half = validators // 2
            f.groups = [sorted(order[:half]), sorted(order[half:])]
            f.targets = f.groups[0]
            f.duration_s = rng.uniform(10.0, 20.0)
        elif kind == PARTITION_31:
            rest = [i for i in range(validators) if i != v]
            f.groups = [rest, [v]]
            f.targets = [v]
            f.duration_s = rng.uniform(10.0, 20.0)
        elif kind == SKEW:
            f.skew_ms = rng.choice((-1, 1)) * slot_ms // 2
            f.duration_s = rng.uniform(20.0, 40.0)
        elif kind == DISK_FULL:
            f.duration_s = rng.uniform(3.0, 8.0)  # kept full this long after the node stopped
        out.append(f)
    return out


def libfaketime() -> str | None:
    for p in LIBFAKETIME_PATHS:
        if os.path.exists(p):
            return p
    return None


def faketime_env(lib: str, skew_ms: int) -> dict[str, str]:
    """The environment that runs a program ``skew_ms`` off the wall clock: only the wall
    clock (slots come from it); trio's monotonic clock stays true."""
    return dict(
        os.environ,
        LD_PRELOAD=lib,
        FAKETIME=f"{skew_ms / 1000:+.3f}",
        FAKETIME_DONT_FAKE_MONOTONIC="1",
        FAKETIME_NO_CACHE="1",
    )


class Disk:
    """A tmpfs under a validator's database, which a disk-full fault fills.

    Filling shrinks the tmpfs to just above what it holds and writes a filler file into the
    rest, so the database really gets ENOSPC without this machine's memory paying for a
    large filler; freeing removes the filler and restores the size.
    """

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path, self.size_mb = path, size_mb
        self.mounted = False

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs",
             str(self.path)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        self.mounted = True

    def used_mb(self) -> float:
        u = shutil.disk_usage(self.path)
        return u.used / 2**20

    def fill(self) -> None:
        used_kb = int(shutil.disk_usage(self.path).used / 1024)
        subprocess.run(
            ["mount", "-o", f"remount,size={used_kb + 4096}k", str(self.path)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        with open(self.path / ".chaos-filler", "wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * (256 << 10))
                    fh.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise

    def free(self) -> None:
        (self.path / ".chaos-filler").unlink(missing_ok=True)
        subprocess.run(
            ["mount", "-o", f"remount,size={self.size_mb}m", str(self.path)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)
            self.mounted = False


def can_mount_tmpfs(probe_dir: Path) -> str | None:
    """None if a tmpfs can be mounted here, else why not."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    d = Disk(probe_dir, 1)
    try:
        d.mount()
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot mount a tmpfs: {getattr(exc, 'stderr', '') or exc}"
    d.unmount()
    with contextlib.suppress(OSError):
        probe_dir.rmdir()
    return None
