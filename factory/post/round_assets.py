"""Which assets each post-training round reads (recipe: "Post-training": each round collects new
preferences from the latest models, retrains the reward model on every preference so far, then
runs rejection sampling, SFT and DPO).

Round 1 reads ``preference_data`` (the annealed checkpoint and the experts) and ``reward_model``;
round k > 1 reads ``preference_round_k`` (the previous round's DPO and SFT models and the code
expert) and ``reward_round_k`` (trained on ``preference_data`` and ``preference_round_2..k``).
The stage table (``factory.stages``) and the stage functions both name assets through here, so the
graph and the code that reads its inputs cannot drift apart. Importing this module is cheap.
"""

from __future__ import annotations


def policy_key(round: int) -> str:
    """The policy round ``round`` samples from: the annealed checkpoint, then the last round's DPO model."""
    return "annealed_checkpoint" if round == 1 else f"dpo_round_{round - 1}"


def preference_key(round: int) -> str:
    """The preferences collected for round ``round`` (its DPO data)."""
    return "preference_data" if round == 1 else f"preference_round_{round}"


def preference_keys(round: int) -> list[str]:
    """Every preference asset up to round ``round``, oldest first (what its reward model trains on)."""
    return [preference_key(k) for k in range(1, round + 1)]


def reward_key(round: int) -> str:
    """The reward model round ``round`` rejection-samples with."""
    return "reward_model" if round == 1 else f"reward_round_{round}"
