#!/usr/bin/env python3
"""What one durable write costs on this machine's disk: latency and CPU.

Strict recording makes every statement wait for a durable write of its
record, and every group commit pays one such write. Whether strict mode can
stay close to unrecorded throughput depends on two numbers this script
measures: the wall-clock latency of a small durable write (how long a
statement waits at best) and the CPU it costs (how much throughput a group
commit takes from the machine). On virtual machines the CPU part is large:
each flush is a virtio request the hypervisor traps.

Usage: bench/scripts/durable-write-cost.py [DIRECTORY] [COUNT]
DIRECTORY should be on the ledger's file system (default: var/).
"""

import mmap
import os
import sys
import time

directory = sys.argv[1] if len(sys.argv) > 1 else "var"
count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
path = os.path.join(directory, f".durable-write-cost-{os.getpid()}")
file_bytes = 8 << 20
record_bytes = 700  # about one pgbench statement's records


def busy_ticks():
    """Non-idle CPU ticks of the whole machine (all CPUs)."""
    fields = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(fields) - fields[3] - fields[4]


def measure(name, flags, write, sync):
    fd = os.open(path, os.O_RDWR | flags)
    try:
        busy_before = busy_ticks()
        cpu_before = time.process_time()
        wall_before = time.perf_counter()
        for i in range(count):
            write(fd, i)
            if sync:
                os.fdatasync(fd)
        wall = (time.perf_counter() - wall_before) / count * 1e6
        cpu = (time.process_time() - cpu_before) / count * 1e6
        busy = (busy_ticks() - busy_before) / os.sysconf("SC_CLK_TCK") / count * 1e6
    finally:
        os.close(fd)
    print(f"{name:32} {wall:8.0f} {cpu:10.0f} {busy:12.0f}")


def main():
    # The file is written in full first, so no measured write changes its size.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"\0" * file_bytes)
    os.fsync(fd)
    os.close(fd)
    payload = b"x" * record_bytes
    aligned = mmap.mmap(-1, 4096)
    aligned.write(b"y" * 4096)
    print(f"{count} writes each, file on {os.path.realpath(directory)}")
    print(f"{'method':32} {'wall us':>8} {'process us':>10} {'machine us':>12}")
    try:
        measure("pwrite (no sync)", 0,
                lambda fd, i: os.pwrite(fd, payload, (i * record_bytes) % file_bytes), False)
        measure("pwrite + fdatasync", 0,
                lambda fd, i: os.pwrite(fd, payload, (i * record_bytes) % file_bytes), True)
        measure("pwrite O_DSYNC", os.O_DSYNC,
                lambda fd, i: os.pwrite(fd, payload, (i * record_bytes) % file_bytes), False)
        measure("4 KiB O_DIRECT + fdatasync", os.O_DIRECT,
                lambda fd, i: os.pwrite(fd, aligned, (i * 4096) % file_bytes), True)
        measure("fdatasync with nothing to write", 0, lambda fd, i: None, True)
    finally:
        os.unlink(path)
    print("wall: latency per durable write; process: CPU charged to this process;")
    print("machine: busy CPU of the whole machine (includes interrupt handling).")


main()
