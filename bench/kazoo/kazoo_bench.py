#!/usr/bin/env python3
"""The kazoo peer of tenure-bench: the same scenarios with kazoo's Lock recipe (kazoo's
Election is a thin wrapper around the same Lock: Election.run(f) = with Lock: f()).

Run by tenure-bench as
    python3 bench/kazoo/kazoo_bench.py <scenario> --connect HOST:PORT [options]
Every result is one JSON object on one line of stdout:
    {"scenario": "acquire", "samples_ns": [...], "extra": {...}}
Logs go to stderr. Timestamps are time.monotonic_ns() (CLOCK_MONOTONIC).

Scenarios:
    rtt       --n N                  exists("/") round trips on one client
    acquire   --n N --warmup W       Lock.acquire() on an open client (uncontended)
    handover  --n N --warmup W       two clients; the holder's release() until the waiter's
                                     acquire() returns
    crash     --n N --timeout-ms T   the holder in a child process (busy: exists every 10 ms),
              [--tick-ms 200 --phase-ms 100]   killed with SIGKILL at a moment aligned to the
                                     server's expiry tick (see align_kill); time until the
                                     waiter here holds it. Also prints "crash-kills" and
                                     "crash-grants": the moments of each kill and grant.
    scale     --sizes 10,100,1000    N locks on distinct paths on one client, acquired one
                                     after the other (the recipe blocks a thread per acquire)
    child-leader --timeout-ms T --path P   (internal) the crash scenario's holder
"""

import argparse
import json
import logging
import subprocess
import sys
import threading
import time

from kazoo.client import KazooClient

SETTLE_S = 0.020


def client(connect, timeout_s=10.0):
    c = KazooClient(hosts=connect, timeout=timeout_s)
    c.start(timeout=30)
    return c


def emit(scenario, samples, extra):
    import kazoo

    extra = dict(extra)
    extra["python"] = sys.version.split()[0]
    extra["kazoo"] = getattr(getattr(kazoo, "version", None), "__version__", "?")
    print(json.dumps({"scenario": scenario, "samples_ns": samples, "extra": extra}), flush=True)


def wait_children(c, path, count):
    deadline = time.monotonic() + 30
    while True:
        have = len(c.get_children(path)) if c.exists(path) else 0
        if have == count:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} has {have} children, expected {count}")
        time.sleep(0.002)
    time.sleep(SETTLE_S)


def rtt(a):
    c = client(a.connect)
    samples = []
    for i in range(a.n + a.warmup):
        t0 = time.monotonic_ns()
        c.exists("/")
        t1 = time.monotonic_ns()
        if i >= a.warmup:
            samples.append(t1 - t0)
    c.stop()
    emit("rtt", samples, {})


def acquire(a):
    c = client(a.connect)
    lock = c.Lock(a.root + "/acquire", "p")
    samples = []
    for i in range(a.n + a.warmup):
        t0 = time.monotonic_ns()
        lock.acquire()
        t1 = time.monotonic_ns()
        lock.release()
        if i >= a.warmup:
            samples.append(t1 - t0)
    c.stop()
    emit("acquire", samples, {})


def handover(a):
    ca, cb = client(a.connect), client(a.connect)
    path = a.root + "/handover"
    la, lb = ca.Lock(path, "a"), cb.Lock(path, "b")
    samples = []
    for i in range(a.n + a.warmup):
        la.acquire()
        got = {}

        def wait_b():
            lb.acquire()
            got["t"] = time.monotonic_ns()

        th = threading.Thread(target=wait_b)
        th.start()
        wait_children(ca, path, 2)
        t0 = time.monotonic_ns()
        la.release()
        th.join()
        lb.release()
        wait_children(ca, path, 0)
        if i >= a.warmup:
            samples.append(got["t"] - t0)
    ca.stop()
    cb.stop()
    emit("handover", samples, {})


def align_kill(timeout_ms, tick_ms, phase_ms):
    """Waits until the moment M at which M + timeout lies phase_ms into a server tick of
    tick_ms (ZooKeeper rounds session expiry up to a multiple of its tick, on CLOCK_MONOTONIC
    milliseconds like time.monotonic_ns()): every implementation's dead session then expires the
    same ~(tick - phase) after its timeout. tick_ms 0: no wait."""
    if tick_ms <= 0:
        return
    tick = tick_ms * 1_000_000
    want = (phase_ms * 1_000_000 - timeout_ms * 1_000_000) % tick
    now = time.monotonic_ns()
    target = now - now % tick + want
    while target < now + 5_000_000:
        target += tick
    sleep_s = (target - now) / 1e9 - 0.002
    if sleep_s > 0:
        time.sleep(sleep_s)
    while time.monotonic_ns() < target:
        pass


def crash(a):
    path = f"{a.root}/crash-{a.timeout_ms}"
    cb = client(a.connect)
    standby = cb.Lock(path, "standby")
    samples = []
    grants = []
    kills = []
    negotiated = -1
    for i in range(a.n):
        child = subprocess.Popen(
            [sys.executable, __file__, "child-leader", "--connect", a.connect,
             "--path", path, "--timeout-ms", str(a.timeout_ms)],
            stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        if not line.startswith("LEADER"):
            child.kill()
            raise RuntimeError(f"the child did not lead: {line!r}")
        negotiated = int(line.split()[1])
        got = {}

        def wait_standby():
            standby.acquire()
            got["t"] = time.monotonic_ns()

        th = threading.Thread(target=wait_standby)
        th.start()
        wait_children(cb, path, 2)
        align_kill(negotiated, a.tick_ms, a.phase_ms)
        t0 = time.monotonic_ns()
        child.kill()  # SIGKILL
        th.join()
        child.wait()
        standby.release()
        wait_children(cb, path, 0)
        samples.append(got["t"] - t0)
        grants.append(got["t"])
        kills.append(t0)
        print(f"kazoo crash {a.timeout_ms} ms: trial {i + 1}/{a.n} "
              f"{(got['t'] - t0) // 1_000_000} ms", file=sys.stderr)
    cb.stop()
    emit("crash", samples, {"timeout_ms": a.timeout_ms, "negotiated_timeout_ms": negotiated})
    # When each waiter acquired (CLOCK_MONOTONIC), for the harness to match with the moment the
    # server expired the holder's session.
    emit("crash-grants", grants, {})
    emit("crash-kills", kills, {})


def child_leader(a):
    c = client(a.connect, a.timeout_ms / 1000.0)
    lock = c.Lock(a.path, "leader")
    lock.acquire()
    negotiated = int(c._session_timeout)
    print(f"LEADER {negotiated}", flush=True)
    # Busy holder: the session's last contact with the server is the moment of the kill.
    while True:
        c.exists(a.path)
        time.sleep(0.010)


def rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def scale(a):
    c = client(a.connect)
    for i in range(20):
        lock = c.Lock(f"{a.root}/scale-warmup/j{i}", "p")
        lock.acquire()
        lock.release()
    for n in [int(s) for s in a.sizes.split(",") if s.strip()]:
        base = f"{a.root}/scale-{n}"
        rss0 = rss_bytes()
        locks = [c.Lock(f"{base}/job-{i}/latch", "p") for i in range(n)]
        t0 = time.monotonic_ns()
        samples = []
        for lock in locks:
            lock.acquire()
            samples.append(time.monotonic_ns() - t0)
        t1 = time.monotonic_ns()
        rss1 = rss_bytes()
        emit("scale", samples, {"size": n, "total_ns": t1 - t0, "rss_delta_bytes": rss1 - rss0})
        for lock in locks:
            lock.release()
    c.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario")
    p.add_argument("--connect", default="127.0.0.1:2181")
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--root", default="/bench-kazoo")
    p.add_argument("--timeout-ms", dest="timeout_ms", type=int, default=2000)
    p.add_argument("--sizes", default="10,100,1000")
    p.add_argument("--tick-ms", dest="tick_ms", type=int, default=0)
    p.add_argument("--phase-ms", dest="phase_ms", type=int, default=0)
    p.add_argument("--path")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    {
        "rtt": rtt,
        "acquire": acquire,
        "handover": handover,
        "crash": crash,
        "scale": scale,
        "child-leader": child_leader,
    }[a.scenario](a)


if __name__ == "__main__":
    main()
