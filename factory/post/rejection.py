"""Rejection sampling (recipe: "SFT Data": "For each prompt ... we sample 10-30 outputs from the
latest chat model policy and use our reward model to select the best candidate").

For each prompt, K responses are sampled from the policy and scored by the reward model; the
RM-best one is the candidate. The checker's score of every sample is kept beside it, so the stage
can report how often the RM's pick is really correct; the checker does not override the pick.

With ``steer`` the samples are drawn under the family's system prompt (``TaskFamily.system_prompt``)
while the RM scores, and SFT later trains on, the dialog without it: what the steer produced becomes
the policy's unprompted behaviour (context distillation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from factory.model.chat_format import ChatFormat
from factory.post.prompts import TaskPrompt
from factory.post.reward import reward_scores
from factory.post.sampling import SamplingConfig, sample_responses
from factory.post.tasks import score


@dataclass
class Candidate:
    prompt: TaskPrompt
    samples: list[str]
    rewards: list[float]
    task_scores: list[float]

    @property
    def best(self) -> int:
        """Index of the RM-best sample (the first one on ties)."""
        return max(range(len(self.rewards)), key=lambda i: self.rewards[i])

    @property
    def response(self) -> str:
        return self.samples[self.best]


def pick_best(prompts: Sequence[TaskPrompt], samples: Sequence[Sequence[str]], rm, fmt: ChatFormat,
              batch_size: int = 32) -> list[Candidate]:
    """Score every sample of every prompt with the RM and the checker."""
    items = [(p.opening(), s) for p, ss in zip(prompts, samples, strict=True) for s in ss]
    rewards = reward_scores(rm, fmt, items, batch_size)
    out, pos = [], 0
    for p, ss in zip(prompts, samples, strict=True):
        out.append(Candidate(p, list(ss), rewards[pos : pos + len(ss)], [score(p, s) for s in ss]))
        pos += len(ss)
    return out


def rejection_sample(policy, rm, fmt: ChatFormat, prompts: Sequence[TaskPrompt], k: int, cfg: SamplingConfig,
                     seed: int, steer: bool = False) -> list[Candidate]:
    samples = sample_responses(policy, fmt, prompts, k, cfg, seed, steer=steer)
    return pick_best(prompts, samples, rm, fmt, cfg.batch_size)
