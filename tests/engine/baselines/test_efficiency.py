from __future__ import annotations

import torch

from engine.baselines.efficiency import count_trainable, forward_flops, lstm_flops, measure
from engine.model import RiskNet, example_inputs
from engine.model_config import ModelConfig

SMALL = ModelConfig(conv_dim=16, hidden=16, attn_dim=16)


def _gru_flops(inp: int, h: int, steps: int, layers: int, dirs: int) -> int:
    total = 0
    for layer in range(layers):
        i = inp if layer == 0 else h * dirs
        total += 2 * 3 * (i * h + h * h) * steps * dirs
    return total


def test_counter_sees_the_gru_and_the_analytic_lstm_count_matches_its_formula() -> None:
    gru = torch.nn.GRU(16, 16, num_layers=2, batch_first=True, bidirectional=True)

    class Wrap(torch.nn.Module):
        def __init__(self, rnn: torch.nn.Module) -> None:
            super().__init__()
            self.rnn = rnn

        def forward_logits(self, x, *_):  # noqa: ANN001
            return self.rnn(x)[0].sum(-1)

    x = torch.randn(1, 50, 16)
    assert forward_flops(Wrap(gru), (x,)) == _gru_flops(16, 16, 50, 2, 2)
    lstm = torch.nn.LSTM(16, 8, num_layers=2, batch_first=True, bidirectional=True)
    expected = 2 * 4 * (16 * 8 + 8 * 8 + 16) * 50 * 2 + 2 * 4 * (16 * 8 + 8 * 8 + 16) * 50 * 2
    assert lstm_flops(lstm, 50) == expected
    assert forward_flops(Wrap(lstm), (x,)) == expected  # the counter itself sees none of it


def test_measure_a_model() -> None:
    m = RiskNet(SMALL)
    r = measure(m, window=200, n_channels=32, img_dim=2048, repeats=3)
    assert r["params"] == count_trainable(m) > 0
    assert r["flops"] > 1e5 and r["ms_batch1"] > 0 and r["ms_per_window_batch64"] > 0
    # FLOPs grow with the batch: one window counted, not the batch
    assert forward_flops(m, example_inputs(2, SMALL)) > r["flops"]
