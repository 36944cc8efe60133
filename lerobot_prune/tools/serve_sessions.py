"""One LeRobot `PolicyServer` per robot client, so clients of one `lerobot-prune serve` never share state.

LeRobot's `PolicyServer` serves one client: a second client's `Ready` flushes the first one's observation
queue, its `SendPolicyInstructions` replaces the policy that the first one is using, and both clients'
observations meet in one queue, so each can receive actions computed from the other's camera. A pruned
policy is also stateful (VLA-Pruner's history, TIES' anchor, ADP's gate), so sharing it mixes episodes.

`SessionRouter` keeps LeRobot's server class unchanged and gives every client (a gRPC peer: one channel,
one connection) its own instance: its own policy, processors, queue and timestep filter. Each RPC goes to
the caller's instance. When `max_clients` sessions exist, a new client takes the slot of a session idle
for `session_timeout_s` (a client that vanished: a live LeRobot client polls `GetActions` at least every
`obs_queue_timeout` seconds), or is refused with RESOURCE_EXHAUSTED and a message its log shows.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import grpc
from lerobot.async_inference.configs import PolicyServerConfig
from lerobot.async_inference.policy_server import PolicyServer
from lerobot.transport import services_pb2_grpc

logger = logging.getLogger(__name__)


@dataclass
class Session:
    server: PolicyServer
    last_seen: float = field(default_factory=time.monotonic)


class SessionRouter(services_pb2_grpc.AsyncInferenceServicer):
    """Routes each RPC to the `PolicyServer` of the calling peer (see the module docstring)."""

    def __init__(self, config: PolicyServerConfig, max_clients: int = 1, session_timeout_s: float = 10.0):
        check_session_settings(max_clients, session_timeout_s, config.obs_queue_timeout)
        self.config = config
        self.max_clients = max_clients
        self.session_timeout_s = session_timeout_s
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def Ready(self, request, context):  # noqa: N802
        peer = context.peer()
        with self._lock:
            if peer not in self.sessions:
                self._evict_idle()
                if len(self.sessions) >= self.max_clients:
                    busy = ", ".join(self.sessions)
                    context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        f"policy server is serving {len(self.sessions)} robot client(s) ({busy}), "
                        f"max_clients={self.max_clients}: start it with a larger --max_clients, use another "
                        f"server (--port), or retry after {self.session_timeout_s:g} s once a client has left.",
                    )
                server = PolicyServer(self.config)
                server.logger = PeerLogger(PolicyServer.logger, peer)
                self.sessions[peer] = Session(server)
                logger.info("Session for %s opened (%d of %d)", peer, len(self.sessions), self.max_clients)
            session = self.sessions[peer]
            session.last_seen = time.monotonic()
        return session.server.Ready(request, context)

    def SendPolicyInstructions(self, request, context):  # noqa: N802
        return self._session(context).server.SendPolicyInstructions(request, context)

    def SendObservations(self, request_iterator, context):  # noqa: N802
        return self._session(context).server.SendObservations(request_iterator, context)

    def GetActions(self, request, context):  # noqa: N802
        return self._session(context).server.GetActions(request, context)

    def stop(self) -> None:
        with self._lock:
            for session in self.sessions.values():
                session.server.stop()
            self.sessions.clear()

    def _session(self, context) -> Session:
        peer = context.peer()
        with self._lock:
            session = self.sessions.get(peer)
            if session is None:
                context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"no session for {peer}: call Ready first (or the session was closed after "
                    f"{self.session_timeout_s:g} s without a call).",
                )
            session.last_seen = time.monotonic()
            return session

    def _evict_idle(self) -> None:
        now = time.monotonic()
        for peer in [p for p, s in self.sessions.items() if now - s.last_seen > self.session_timeout_s]:
            self.sessions.pop(peer).server.stop()
            logger.info("Session for %s closed: no call for %.0f s", peer, self.session_timeout_s)


class PeerLogger(logging.LoggerAdapter):
    """LeRobot's server logger with the client's address in front of each line."""

    def __init__(self, base: logging.Logger, peer: str):
        super().__init__(base, {})
        self.peer = peer

    def process(self, msg, kwargs):
        return f"[{self.peer}] {msg}", kwargs


def check_session_settings(max_clients: int, session_timeout_s: float, obs_queue_timeout: float) -> None:
    if not isinstance(max_clients, int) or max_clients < 1:
        raise ValueError(
            f"max_clients={max_clients!r} must be an integer >= 1 (robot clients served at once)."
        )
    if not session_timeout_s > obs_queue_timeout:
        raise ValueError(
            f"session_timeout_s={session_timeout_s} must be greater than obs_queue_timeout={obs_queue_timeout}: "
            "a live client is silent for up to obs_queue_timeout seconds while it waits for actions."
        )


def serve_sessions(config: PolicyServerConfig, max_clients: int, session_timeout_s: float) -> None:
    """LeRobot's `policy_server.serve` with a `SessionRouter` in place of its single `PolicyServer`."""
    from concurrent import futures

    router = SessionRouter(config, max_clients, session_timeout_s)
    # A LeRobot client keeps up to two calls in flight (GetActions waiting, SendObservations): LeRobot's
    # 4 workers per server, per client.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4 * max_clients))
    services_pb2_grpc.add_AsyncInferenceServicer_to_server(router, server)
    server.add_insecure_port(f"{config.host}:{config.port}")
    server.start()
    logger.info("PolicyServer started on %s:%s (one session per robot client, up to %d)", config.host,
                config.port, max_clients)  # fmt: skip
    try:
        server.wait_for_termination()
    finally:
        router.stop()
        server.stop(grace=None)
