"""The discretization regularizer of eq. 3 (section 3.5).

    R = mu1 * sum_{live (i,j)} ln(1 + g(beta_ij) / mean g(beta))
      + mu2 * sum_{live (i,j,o)} ln(1 + g(alpha_ij^o) / mean g(alpha))

with `g` the sigmoid. Our reading of the paper's averages: each mean is taken over every live
edge (respectively every live op of a live edge) of the whole network, all stages together.
Gradients flow through the means by default, which makes `R` invariant to a common scaling of
the gates: it pushes gates below the mean down and gates above it up, i.e. towards 0 or 1.
`detach_mean=True` treats the means as constants instead.

Only the gates that learn in the current activation get gradients; the others enter `R` (and
its means) as constants, so a sub-supernet step optimizes the full `R` over its own group.
"""

import torch

from ifnas.nn.supernet import Supernet


def discretization_loss(
    supernet: Supernet, mu1: float, mu2: float, detach_mean: bool = False
) -> torch.Tensor:
    """`R(alpha, beta)` of eq. 3 over the live gates of `supernet` (a scalar tensor)."""
    edge_gates, edge_masks, op_gates, op_masks = [], [], [], []
    for s in range(len(supernet.space.stages)):
        beta, alpha = supernet.stage_logits(s)
        beta_mask, alpha_mask = supernet.stage_masks(s)
        edge_gates.append(torch.sigmoid(beta).reshape(-1))
        edge_masks.append(beta_mask.reshape(-1))
        op_gates.append(torch.sigmoid(alpha).reshape(-1))
        op_masks.append(alpha_mask.reshape(-1))

    return mu1 * log_term(edge_gates, edge_masks, detach_mean) + mu2 * log_term(
        op_gates, op_masks, detach_mean
    )


def log_term(
    gates: list[torch.Tensor], masks: list[torch.Tensor], detach_mean: bool = False
) -> torch.Tensor:
    """`sum ln(1 + g / mean g)` over the live (mask 1) entries of `gates`, flattened."""
    # Masked sums instead of boolean indexing: no host synchronisation on a GPU.
    g, m = torch.cat([x.reshape(-1) for x in gates]), torch.cat([x.reshape(-1) for x in masks])
    mean = (g * m).sum() / m.sum().clamp(min=1)
    if detach_mean:
        mean = mean.detach()
    return (m * torch.log1p(g / mean)).sum()
