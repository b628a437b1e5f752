"""Model averaging: the element-wise mean of the runs' weights."""

import pytest
import torch

from factory.post.averaging import average_states, last_round_key


def test_average_equals_elementwise_mean():
    a = {"w": torch.tensor([[1.0, 2.0]]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([[3.0, 6.0]]), "b": torch.tensor([1.0])}
    c = {"w": torch.tensor([[2.0, 1.0]]), "b": torch.tensor([2.0])}
    avg = average_states([a, b, c])
    assert torch.equal(avg["w"], torch.tensor([[2.0, 3.0]])) and torch.equal(avg["b"], torch.tensor([1.0]))


def test_mismatched_states_raise():
    with pytest.raises(ValueError, match="different parameters"):
        average_states([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])
    with pytest.raises(ValueError, match="shape"):
        average_states([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(ValueError, match="exactly one"):
        last_round_key({"dpo_round_1": None, "dpo_round_2": None})
