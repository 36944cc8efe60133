"""`lerobot-prune serve` (LeRobot's gRPC policy server) with LeRobot's robot client on an emulated SO-101."""

import json
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
from arms_helpers import fake_bus_command, fake_bus_env, so101_args

from lerobot_prune.testing.fake_feetech import read_bus_log

pytestmark = pytest.mark.robot


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str, *procs) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise AssertionError(f"timed out or exited while waiting for {what}")
        time.sleep(0.5)


def _stop(proc: subprocess.Popen, sig: int, timeout: float = 60) -> int | None:
    """Sends `sig` and waits; None when `proc` is still running after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _stop_or_kill(proc: subprocess.Popen, sig: int) -> int:
    rc = _stop(proc, sig)
    if rc is None:
        proc.kill()
        rc = proc.wait()
    return rc


def test_serve_runs_a_pruned_policy_for_the_lerobot_robot_client(robot_checkpoint, tmp_path):
    policy_type = json.loads((robot_checkpoint / "config.json").read_text())["type"]
    port, bus_log = _free_port(), tmp_path / "bus.jsonl"
    env = fake_bus_env(bus_log)
    server_log, client_log = tmp_path / "server.log", tmp_path / "client.log"
    with open(server_log, "w") as out:
        server = subprocess.Popen([shutil.which("lerobot-prune"), "serve", "--host=127.0.0.1", f"--port={port}"],
                                  stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)  # fmt: skip
    client = None
    try:
        _wait_for(lambda: "PolicyServer started" in server_log.read_text(), 120, "the server", server)
        client_args = [*so101_args(tmp_path), f"--server_address=127.0.0.1:{port}", f"--policy_type={policy_type}",
                       f"--pretrained_name_or_path={robot_checkpoint}", "--policy_device=cpu",
                       "--actions_per_chunk=10", "--task=pick up the cube", "--fps=10"]  # fmt: skip
        with open(client_log, "w") as out:
            client = subprocess.Popen(fake_bus_command("lerobot.async_inference.robot_client", client_args),
                                      stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
                                      stdin=subprocess.DEVNULL)  # fmt: skip
        _wait_for(lambda: len(read_bus_log(bus_log, "Goal_Position")) >= 3, 180, "actions on the bus", client)
    finally:
        client_rc = _stop(client, signal.SIGINT, timeout=20) if client is not None else None
        server_rc = _stop_or_kill(server, signal.SIGTERM)
        # LeRobot's client joins its action-receiver thread on exit; a GetActions call in flight when it was
        # interrupted only returns once the server is gone, so give it another chance after the server stops.
        if client is not None and client_rc is None:
            client_rc = _stop_or_kill(client, signal.SIGINT)
    served = server_log.read_text()
    assert re.search(rf"accepts the pruned types \[[^]]*'{policy_type}'", served), served[-3000:]
    assert (
        f"Policy type: {policy_type}" in served and f"Pretrained name or path: {robot_checkpoint}" in served
    )
    assert "Action chunk #" in served
    assert server_rc == 0 and "Policy server stopped" in served, served[-3000:]
    # The client's own shutdown is LeRobot's: on loaded machines its process sometimes never exits after
    # SIGINT (seen on fresh clones, with and without a running server), so only its run is asserted here.
    assert client_rc is not None and "Control loop thread starting" in client_log.read_text()
    writes = read_bus_log(bus_log, "Goal_Position")
    assert all(sorted(w["values"]) == ["1", "2", "3", "4", "5", "6"] for w in writes)
