"""The ``tiny_transformer`` objective: its config composes, its data is seeded and follows the grammar,
its attention is causal, its accuracy is token accuracy, and the LR decides whether it learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from objectives import tiny_transformer as tt
from sweeps.config.compose import compose_config
from sweeps.errors import ConfigError
from sweeps.train.objective import load_objective
from sweeps.train.reporter import recording_reporter
from sweeps.train.training import evaluate

pytestmark = pytest.mark.unit


def config(*overrides: str):
    """The shipped config on the CPU (deterministic, no GPU needed)."""
    return compose_config(["objective=tiny_transformer", "train.device=cpu", *overrides])


def test_config_composes_and_names_the_objective():
    cfg = config()
    assert cfg.objective.name == "tiny_transformer"
    assert load_objective(cfg) is tt.train
    assert tuple(cfg.objective.metrics) == tt.METRICS
    assert cfg.sweep.metric in cfg.objective.metrics


def test_task_shapes_are_next_token_pairs():
    objective = config().objective
    task = tt.make_task(objective)
    inputs, targets = task.train_data
    assert inputs.shape == targets.shape == (objective.n_train, objective.seq_len)
    assert inputs.dtype == targets.dtype == torch.int64
    assert torch.equal(inputs[:, 1:], targets[:, :-1])  # targets are the inputs shifted by one
    assert task.val_data[0].shape == (objective.n_val, objective.seq_len)
    assert len(tt.make_task(config("objective.train_limit=100").objective).train_data[0]) == 100


def test_data_is_deterministic_for_a_seed():
    first = tt.make_data.__wrapped__(16, 16, 0.1, 200, 50, 7)  # bypass the cache: really regenerate
    again = tt.make_data.__wrapped__(16, 16, 0.1, 200, 50, 7)
    other = tt.make_data.__wrapped__(16, 16, 0.1, 200, 50, 8)
    more_train = tt.make_data.__wrapped__(16, 16, 0.1, 400, 50, 7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    assert np.array_equal(more_train[1], first[1])  # n_train leaves the validation set alone


def test_sequences_follow_the_table_at_the_stated_rate():
    """P(x_t = table[x_t-2, x_t-1]) = 1 - noise + noise/V; 1000 x 15 draws: std ~0.003."""
    vocab, noise = 16, 0.1
    table = tt.grammar_table(vocab, data_seed=0)
    sequences = tt.sample_sequences(table, 1000, 17, noise, np.random.default_rng(1))
    follows = table[sequences[:, :-2], sequences[:, 1:-1]] == sequences[:, 2:]
    assert follows.mean() == pytest.approx(1 - noise + noise / vocab, abs=0.015)
    assert sequences.min() >= 0 and sequences.max() < vocab


def test_best_accuracy_matches_the_table_predictor():
    """The closed form against the Bayes predictor run on the validation set (16,000 tokens)."""
    vocab, seq_len, noise = 16, 16, 0.1
    _, val = tt.make_data(vocab, seq_len, noise, 2000, 1000, 0)
    table = tt.grammar_table(vocab, 0)
    inputs, targets = val[:, :-1], val[:, 1:]
    correct = (table[inputs[:, :-1], inputs[:, 1:]] == targets[:, 1:]).sum() + (targets[:, 0] == 0).sum()
    assert correct / targets.size == pytest.approx(tt.best_accuracy(vocab, seq_len, noise), abs=0.01)
    assert tt.best_accuracy(vocab, seq_len, noise) == pytest.approx((1 / 16 + 15 * 0.90625) / 16)


@pytest.mark.parametrize("changed", [0, 5, 15])
def test_attention_is_causal(changed):
    """Changing token ``changed`` leaves every earlier output unchanged and changes that position's."""
    torch.manual_seed(0)
    model = tt.TinyTransformer(vocab=16, seq_len=16, d_model=32, n_heads=4, n_layers=2).eval()
    tokens = torch.randint(16, (3, 16))
    edited = tokens.clone()
    edited[:, changed] = (edited[:, changed] + 1) % 16
    with torch.no_grad():
        before, after = model(tokens), model(edited)
    assert before.shape == (3, 16, 16)
    torch.testing.assert_close(after[:, :changed], before[:, :changed], rtol=0, atol=1e-6)
    assert (after[:, changed:] - before[:, changed:]).abs().amax(dim=-1).min() > 1e-5


def test_head_is_tied_to_the_token_embedding():
    model = tt.TinyTransformer(vocab=16, seq_len=16, d_model=64, n_heads=4, n_layers=2)
    assert model.head.weight is model.token_embedding.weight
    tensors = sum(t.numel() for t in model.state_dict().values())  # lists the tied matrix twice
    assert sum(p.numel() for p in model.parameters()) == tensors - 16 * 64 == 102_144


def test_loss_and_accuracy_by_hand():
    """Two sequences of 4 tokens, 3 and 1 right: 4 of 8 tokens, so accuracy 0.5."""
    targets = torch.tensor([[1, 2, 3, 0], [0, 0, 0, 0]])
    predicted = torch.tensor([[1, 2, 3, 1], [0, 1, 2, 3]])
    logits = F.one_hot(predicted, 4).float() * 2.0
    assert tt.count_correct_tokens(logits, targets).item() == pytest.approx(0.75 + 0.25)
    log_probs = torch.log_softmax(logits, dim=-1)
    by_hand = -log_probs.gather(-1, targets[..., None]).mean()
    assert tt.token_cross_entropy(logits, targets).item() == pytest.approx(by_hand.item())

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return logits[x[:, 0]]  # row i of the batch carries its index in token 0

    task = tt.make_task(config("objective.train_limit=10").objective)
    inputs = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 0]])
    metrics = evaluate(Fixed(), task, (inputs, targets))
    assert metrics["val_acc"] == pytest.approx(0.5)
    assert metrics["val_loss"] == pytest.approx(by_hand.item())


def test_val_acc_of_a_real_model_is_token_accuracy():
    task = tt.make_task(config().objective)
    torch.manual_seed(0)
    model = task.build_model()
    inputs, targets = task.val_data
    metrics = evaluate(model, task, (inputs[:300], targets[:300]), batch_size=128)  # uneven batches
    with torch.no_grad():
        by_hand = (model(inputs[:300]).argmax(-1) == targets[:300]).float().mean().item()
    assert 0.0 <= metrics["val_acc"] <= 1.0
    assert metrics["val_acc"] == pytest.approx(by_hand, abs=1e-6)


def test_heads_must_divide_the_width():
    with pytest.raises(ConfigError, match="objective.n_heads=3"):
        tt.make_task(config("objective.n_heads=3").objective)


def test_the_learning_rate_decides_whether_it_learns():
    """3 epochs, default data (2000 sequences): measured val_acc 0.68 at lr 1e-2, 0.053 at 1e-6
    (nothing moves), 0.09 at 0.3 (collapse to the unigram rate; chance 1/16 = 0.0625, best 0.854).
    Thresholds leave room for other torch builds: good >= 0.55, bad <= 0.15."""
    final = {}
    for lr in (1e-6, 1e-2, 0.3):
        reporter = recording_reporter("val_acc")
        value = tt.train(config("train.epochs=3", f"train.lr={lr}"), reporter)
        assert [row["epoch"] for row in reporter.history] == [1, 2, 3]
        assert all(0.0 <= row["val_acc"] <= 1.0 for row in reporter.history)
        assert value == reporter.history[-1]["val_acc"]
        final[lr] = value
    assert final[1e-2] >= 0.55
    assert final[1e-6] <= 0.15 and final[0.3] <= 0.15
    assert final[1e-2] - max(final[1e-6], final[0.3]) >= 0.4
