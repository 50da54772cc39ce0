"""The classical baseline: a multi-layer perceptron in PyTorch (Methods; SI Table I).

input -> Dense(h1, ReLU) -> Dense(h2, ReLU) -> Dense(1, sigmoid), Glorot-uniform weights
and zero biases (the Keras defaults the authors' code used).
"""

from __future__ import annotations

import torch
from torch import nn

from .validation import check_int, check_sequence


class MLP(nn.Module):
    def __init__(self, n_inputs: int, hidden=(64, 16)):
        super().__init__()
        n_inputs = check_int("n_inputs", n_inputs, min=1)
        hidden = check_sequence("hidden", hidden, lambda n, v: check_int(n, v, min=1))
        self.n_inputs, self.hidden = n_inputs, hidden
        sizes = (n_inputs, *hidden, 1)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def reset_parameters(self, seed: int) -> "MLP":
        """Glorot-uniform weights, zero biases, from an explicit seed."""
        g = torch.Generator().manual_seed(int(seed))
        with torch.no_grad():
            for m in self.net:
                if isinstance(m, nn.Linear):
                    bound = (6.0 / (m.in_features + m.out_features)) ** 0.5
                    m.weight.copy_(torch.empty_like(m.weight).uniform_(-bound, bound, generator=g))
                    m.bias.zero_()
        return self

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_inputs:
            raise ValueError(f"MLP expects {self.n_inputs} input features, got {x.shape[-1]}")
        return self.net(x).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probability of class 1."""
        return torch.sigmoid(self.logits(x))
