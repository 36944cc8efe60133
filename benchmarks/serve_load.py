"""Load test of `lerobot-prune serve`: several LeRobot robot clients on one server for minutes, one of them dying.

Starts `lerobot-prune serve --max_clients=N` and N LeRobot async robot clients
(`lerobot.async_inference.robot_client`), each on its own emulated SO-101 (fake Feetech bus and camera) with a
tiny π0 converted to a different pruning strategy. Client 0 is killed (SIGKILL, no goodbye) at
`--disconnect_at_s` and a new client with its checkpoint joins once its session has timed out. Per client and
per minute it reports the server's inference time per action chunk (LeRobot's own "Total time" log line,
median and p95) and the actions written to the arm's bus. Checks: no errors in the server log, every
session served only the checkpoint its client asked for, every surviving client kept acting after the kill.

    python benchmarks/serve_load.py --clients=4 --duration_s=600 --out=benchmarks/results/serve_load_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

STRATEGIES = [("vla_pruner", 0.25), ("adp", 0.25), ("random", 0.25), ("fastv", 0.25)]
TASK = "pick up the cube"
LINE = re.compile(
    r"^\S+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) .*?\[(\S+)\] Action chunk #\d+ generated \| Total time: ([\d.]+)ms"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[round(q * (len(ordered) - 1))]


def per_minute(times: list[float], values: list[float], start: float) -> list[dict]:
    minutes: dict[int, list[float]] = {}
    for t, v in zip(times, values, strict=True):
        minutes.setdefault(int((t - start) // 60), []).append(v)
    return [{"minute": m, "n": len(v), "p50_ms": statistics.median(v), "p95_ms": percentile(v, 0.95)}
            for m, v in sorted(minutes.items())]  # fmt: skip


def main() -> None:
    from lerobot_prune import make_pruning_config
    from lerobot_prune.testing.checkpoints import tiny_pruned_robot
    from lerobot_prune.testing.fake_feetech import read_bus_log
    from lerobot_prune.testing.so101 import fake_bus_env, robot_client_command

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--duration_s", type=float, default=600)
    parser.add_argument("--disconnect_at_s", type=float, default=None, help="default: a third of the run")
    parser.add_argument("--session_timeout_s", type=float, default=5)
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--out", default="outputs/serve_load.json")
    args = parser.parse_args()
    disconnect_at = args.duration_s / 3 if args.disconnect_at_s is None else args.disconnect_at_s
    work = Path(tempfile.mkdtemp(prefix="serve_load_"))
    strategies = [STRATEGIES[i % len(STRATEGIES)] for i in range(args.clients)]
    ckpts = [tiny_pruned_robot(work / f"ckpt{i}", make_pruning_config(name, keep_ratio=keep))
             for i, (name, keep) in enumerate(strategies)]  # fmt: skip
    port, server_log = free_port(), work / "server.log"
    procs: dict[str, subprocess.Popen] = {}
    bus: dict[str, Path] = {}

    def start(name: str, command: list[str], log: Path, env: dict, cwd: Path) -> None:
        with open(log, "w") as out:
            procs[name] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                           stdin=subprocess.DEVNULL)  # fmt: skip

    def client(name: str, ckpt: Path) -> None:
        workdir = work / name
        workdir.mkdir()
        bus[name] = workdir / "bus.jsonl"
        command = robot_client_command(workdir, f"127.0.0.1:{port}", ckpt, "pruned_pi0", TASK, fps=args.fps)
        start(name, command, workdir / "client.log", fake_bus_env(bus[name]), workdir)
        print(f"[serve_load] {name} started", flush=True)

    serve = [shutil.which("lerobot-prune"), "serve", "--host=127.0.0.1", f"--port={port}",
             f"--max_clients={args.clients}", f"--session_timeout_s={args.session_timeout_s}"]  # fmt: skip
    start("server", serve, server_log, fake_bus_env(work / "server_bus.jsonl"), work)
    kill_time = rejoin_time = None
    try:
        wait_for(lambda: "PolicyServer started" in server_log.read_text(), 120, "the server")
        for i, ckpt in enumerate(ckpts):
            client(f"client{i}", ckpt)
        wait_for(lambda: all(read_bus_log(bus[n], "Goal_Position") for n in bus), 300, "actions on every bus")
        t0 = time.time()
        print(f"[serve_load] all {args.clients} clients acting; running {args.duration_s:.0f} s", flush=True)
        while time.time() - t0 < args.duration_s:
            if kill_time is None and time.time() - t0 >= disconnect_at:
                procs["client0"].kill()
                procs["client0"].wait()
                kill_time = time.time()
                print(f"[serve_load] client0 killed at {kill_time - t0:.0f} s", flush=True)
            if kill_time and rejoin_time is None and time.time() - kill_time > args.session_timeout_s + 1:
                client("client0_rejoined", ckpts[0])
                rejoin_time = time.time()
            time.sleep(1)
            if any(p.poll() is not None for n, p in procs.items() if n != "client0"):
                raise RuntimeError(
                    f"a process exited early: {[n for n, p in procs.items() if p.poll() is not None]}"
                )
        end = time.time()
    finally:
        for name, proc in procs.items():
            if name != "server" and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        procs["server"].send_signal(signal.SIGTERM)
        time.sleep(10)
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()

    served = server_log.read_text()
    opened = re.findall(r"Session for (\S+) opened", served)
    # Sessions open in the order the clients' Ready calls arrive; each is matched to its client by the
    # checkpoint it loaded (client0 and its replacement share one, in that order).
    loaded = {
        peer: re.findall(rf"\[{re.escape(peer)}\] .*Pretrained name or path: (\S+)", served)
        for peer in opened
    }
    peers = {}
    for peer in opened:
        index = [str(c) for c in ckpts].index(loaded[peer][0]) if loaded[peer] else None
        name = f"client{index}" if index is not None else f"unknown_{peer}"
        peers[name if name not in peers else "client0_rejoined"] = peer
    samples: dict[str, tuple[list[float], list[float]]] = {peer: ([], []) for peer in opened}
    for line in served.splitlines():
        if m := LINE.match(line):
            stamp = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp()
            samples.setdefault(m.group(2), ([], []))[0].append(stamp)
            samples[m.group(2)][1].append(float(m.group(3)))
    clients = {}
    for name, peer in peers.items():
        if name not in bus:
            raise RuntimeError(f"session {peer} loaded {loaded[peer]}, which no client asked for")
        times, totals = samples.get(peer, ([], []))
        writes = [w["time"] for w in read_bus_log(bus[name], "Goal_Position")]
        index = 0 if name == "client0_rejoined" else int(name.removeprefix("client"))
        ckpt = ckpts[index]
        after_kill = sum(t > kill_time for t in writes) if kill_time else None
        clients[name] = {
            "peer": peer, "strategy": strategies[index][0], "chunks": len(totals),
            "inference_ms_p50": statistics.median(totals) if totals else None,
            "inference_ms_p95": percentile(totals, 0.95) if totals else None,
            "inference_per_minute": per_minute(times, totals, t0), "bus_writes": len(writes),
            "bus_writes_after_kill": after_kill, "loaded_only_its_checkpoint": loaded[peer] == [str(ckpt)],
        }  # fmt: skip
    errors = [line for line in served.splitlines() if "Error" in line or "Traceback" in line]
    survivors_acted = all(c["bus_writes_after_kill"] for n, c in clients.items() if n.startswith("client")
                          and n not in ("client0",))  # fmt: skip
    result = {
        "method": __doc__.split("\n\n")[1].replace("\n", " "),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "duration_s": end - t0, "killed_client0_at_s": kill_time - t0 if kill_time else None,
        "rejoined_at_s": rejoin_time - t0 if rejoin_time else None, "server_errors": errors[:20],
        "sessions_opened": len(opened), "survivors_acted_after_kill": survivors_acted, "clients": clients,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for name, c in clients.items():
        print(f"{name:>17} {c['strategy']:>6}: {c['chunks']} chunks, inference p50 {c['inference_ms_p50']} ms, "
              f"p95 {c['inference_ms_p95']} ms, {c['bus_writes']} bus writes, own checkpoint only: "
              f"{c['loaded_only_its_checkpoint']}")  # fmt: skip
    print(f"server errors: {len(errors)}; survivors acted after the kill: {survivors_acted} -> {args.out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
