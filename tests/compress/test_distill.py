import math

import pytest
import torch
import torch.nn.functional as F

from orchestrator.compress import kd_loss
from orchestrator.compress.config import DistillationConfig
from orchestrator.compress.distill import Distiller


def _direct(s, y, t, alpha, temp):
    """The formula written out: (1-a) CE + a T^2 sum_c p_t (log p_t - log p_s), batch mean."""
    ce = -torch.log(torch.softmax(s, 1)[torch.arange(len(y)), y]).mean()
    pt, ps = torch.softmax(t / temp, 1), torch.softmax(s / temp, 1)
    kl = (pt * (torch.log(pt) - torch.log(ps))).sum(1).mean()
    return (1 - alpha) * ce + alpha * temp**2 * kl


@pytest.mark.parametrize("alpha, temp", [(0.5, 4.0), (1.0, 1.0), (0.3, 0.5), (0.9, 10.0)])
def test_kd_loss_equals_the_formula(alpha, temp):
    s, t, y = torch.randn(32, 10), torch.randn(32, 10) * 3, torch.randint(0, 10, (32,))
    torch.testing.assert_close(kd_loss(s, y, t, alpha, temp), _direct(s, y, t, alpha, temp), rtol=1e-5, atol=1e-6)


def test_lambda_zero_is_plain_cross_entropy():
    s, t, y = torch.randn(16, 5), torch.randn(16, 5), torch.randint(0, 5, (16,))
    assert torch.equal(kd_loss(s, y, t, 0.0, 3.0), F.cross_entropy(s, y))


def test_kd_term_vanishes_when_student_equals_teacher_and_gradients_flow_to_student_only():
    t = torch.randn(8, 4)
    s = t.clone().requires_grad_()
    y = torch.randint(0, 4, (8,))
    loss = kd_loss(s, y, t, 1.0, 2.0)
    assert math.isclose(loss.item(), 0.0, abs_tol=1e-6)
    kd_loss(s, y, t + 1.0 * torch.randn(8, 4), 1.0, 2.0).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_distiller_indexes_teacher_logits_by_row():
    teacher = torch.randn(100, 3)
    idx = torch.tensor([5, 17, 99, 0])
    s, y = torch.randn(4, 3), torch.randint(0, 3, (4,))
    d = Distiller(DistillationConfig(alpha=0.7, temperature=2.0), teacher)
    torch.testing.assert_close(d.loss(s, y, idx), _direct(s, y, teacher[idx], 0.7, 2.0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="classes"):
        d.loss(torch.randn(4, 5), y, idx)
