"""`lerobot-prune serve`: LeRobot's async-inference policy server, accepting the `pruned_*` policy types.

LeRobot's server (`lerobot.async_inference.policy_server`) neither loads third-party plugins nor accepts
policy types outside its `SUPPORTED_POLICIES` list. This command registers the plugins, appends the
registered `pruned_*` types to that list (`allow_pruned_policies`), and runs LeRobot's `PolicyServer` with the
same arguments as `python -m lerobot.async_inference.policy_server` (`--host`, `--port`, `--fps`,
`--inference_latency`, `--obs_queue_timeout`), one instance per robot client (`serve_sessions`), plus
`--max_clients` and `--session_timeout_s`.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass

from lerobot.async_inference.configs import PolicyServerConfig

logger = logging.getLogger(__name__)


def pruned_policy_types() -> list[str]:
    """Every registered `pruned_*` policy type (π0, and π0.5 / SmolVLA once they are registered)."""
    from lerobot.configs import PreTrainedConfig

    import lerobot_policy_prune  # noqa: F401  (registers the types)

    return sorted(name for name in PreTrainedConfig.get_known_choices() if name.startswith("pruned_"))


def allow_pruned_policies() -> list[str]:
    """Adds the `pruned_*` types to LeRobot's async `SUPPORTED_POLICIES`, in place; returns those added.

    The list object is shared by `lerobot.async_inference.constants` and the name `policy_server`
    imported from it, so extending it in place is all the server needs; nothing else is patched.
    """
    from lerobot.async_inference import constants

    added = [name for name in pruned_policy_types() if name not in constants.SUPPORTED_POLICIES]
    constants.SUPPORTED_POLICIES.extend(added)
    return added


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


@dataclass
class ServeConfig(PolicyServerConfig):
    """LeRobot's `PolicyServerConfig` plus the session settings of `serve_sessions.SessionRouter`."""

    # Robot clients served at once, each with its own policy instance (memory grows with it).
    max_clients: int = 1
    # A session with no call for this long gives its slot to a new client (must exceed obs_queue_timeout).
    session_timeout_s: float = 10.0


def serve(argv: list[str]) -> None:
    """Parses `ServeConfig` from `argv` and runs LeRobot's server, one session per client, until SIGINT/SIGTERM."""
    import draccus
    from lerobot.utils.import_utils import register_third_party_plugins

    from .serve_sessions import check_session_settings, serve_sessions

    register_third_party_plugins()
    added = allow_pruned_policies()
    config = draccus.parse(ServeConfig, args=argv)
    check_session_settings(config.max_clients, config.session_timeout_s, config.obs_queue_timeout)
    logger.info("Policy server accepts the pruned types %s", added)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        serve_sessions(config, config.max_clients, config.session_timeout_s)
    except KeyboardInterrupt:
        logger.info("Policy server stopped")
