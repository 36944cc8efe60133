"""Runs scripted episodes through `policy.select_action`; also a script that runs one in a fresh process."""

import sys

import torch

LANG_LEN = 48


def observation(episode: int, step: int) -> dict:
    g = torch.Generator().manual_seed(1000 * episode + step)
    return {
        "observation.image": torch.rand(1, 3, 224, 224, generator=g),
        "observation.state": torch.tensor([[0.1 * step * (episode + 1), 0.05 * step]]),
        "observation.language.tokens": torch.randint(4, 1000, (1, LANG_LEN), generator=g),
        "observation.language.attention_mask": torch.arange(LANG_LEN)[None] < 6 + episode,
        "task": ["push the block"],
    }


def run_episode(policy, episode: int, steps: int = 24) -> torch.Tensor:
    """`[steps, action_dim]` actions of one episode (noise seeded by the episode number)."""
    policy.reset()
    torch.manual_seed(episode)
    return torch.cat([policy.select_action(observation(episode, step)) for step in range(steps)])


if __name__ == "__main__":
    import lerobot_policy_prune  # noqa: F401
    from lerobot_policy_prune.pruned_pi0.modeling_pruned_pi0 import PrunedPI0Policy

    checkpoint, episode, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.save(run_episode(PrunedPI0Policy.from_pretrained(checkpoint), episode), out)
