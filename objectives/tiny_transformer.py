"""``tiny_transformer``: a small causal transformer on a seeded synthetic grammar (no download).

The grammar is an order-2 Markov chain over ``vocab`` tokens. A seeded lookup table names, for each
pair of preceding tokens ``(a, b)``, the token that follows; with probability ``noise`` the next token
is drawn uniformly instead (the noise keeps every pair in play: without it a sequence falls into a
short cycle of the table). The first two tokens of a sequence are uniform. The model reads
``seq_len`` tokens and predicts the next one at every position (language-model targets shifted by
one), so it has to attend to the previous token and look the pair up. Reference accuracies on the
default validation set: chance 1/16 = 0.063, always the most frequent token 0.097, the best
predictor that sees only the current token (a bigram) 0.31.

Accuracy is token accuracy over all ``seq_len`` predicted positions. Its ceiling is known in closed
form (``best_accuracy``): position 0 predicts the uniform second token (``1/vocab``), every later
position at best ``1 - noise + noise/vocab``; with the defaults (vocab 16, noise 0.1, seq_len 16)
that is 0.854.

Default size: d_model 64, 4 heads, 2 pre-LayerNorm blocks, MLP 4x, 16 learned positions, head tied
to the token embedding: 102,144 parameters. One epoch (2000 sequences, batch 64, 32 steps, then
evaluating 1000 sequences) takes about 0.6 s on 2 CPU cores (torch 2.13 on a shared AMD EPYC VM,
best of 5; the first epoch in a process pays ~1.5 s more, once, for warm-up); a step is ~18 ms,
most of it in matmuls. Final val_acc after 9 epochs of the default trainer (AdamW, batch 64,
warmup + cosine), measured: lr 1e-5 0.17, 1e-4 0.43, 3e-4 0.59, 1e-3 0.73, 3e-3 0.83, 1e-2 0.85,
3e-2 0.67, 0.1 0.16, 0.3 0.10 (collapse to the unigram rate).

Architecture after nanoGPT's ``model.py``: attention with
``F.scaled_dot_product_attention(is_causal=True)``, weights initialised N(0, 0.02).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

from sweeps.errors import ConfigError
from sweeps.train.reporter import Reporter
from sweeps.train.training import Task
from sweeps.train.training import train as run_training

METRICS = ("train_loss", "val_loss", "val_acc", "lr")


# ----------------------------------------------------------------------------------------------
# Data: the grammar and its samples.


def grammar_table(vocab: int, data_seed: int) -> np.ndarray:
    """``table[a, b]``: the token that follows ``a, b`` unless noise strikes. Seeded, shape (V, V)."""
    rng = np.random.default_rng(np.random.SeedSequence(data_seed).spawn(3)[0])
    return rng.integers(vocab, size=(vocab, vocab))


def sample_sequences(table: np.ndarray, count: int, length: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``count`` sequences of ``length`` tokens from the grammar; int64, shape (count, length)."""
    vocab = len(table)
    tokens = np.empty((count, length), dtype=np.int64)
    tokens[:, :2] = rng.integers(vocab, size=(count, 2))
    for t in range(2, length):
        follows = table[tokens[:, t - 2], tokens[:, t - 1]]
        uniform = rng.integers(vocab, size=count)
        tokens[:, t] = np.where(rng.random(count) < noise, uniform, follows)
    return tokens


@lru_cache(maxsize=4)
def make_data(vocab: int, seq_len: int, noise: float, n_train: int, n_val: int, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sequences of ``seq_len + 1`` tokens: input is ``[:, :-1]``, target ``[:, 1:]``.

    The table, the training and the validation set each draw from their own child of ``data_seed``,
    so ``n_train`` changes neither the table nor the validation set.
    """
    _, train_seed, val_seed = np.random.SeedSequence(data_seed).spawn(3)
    table = grammar_table(vocab, data_seed)
    train = sample_sequences(table, n_train, seq_len + 1, noise, np.random.default_rng(train_seed))
    val = sample_sequences(table, n_val, seq_len + 1, noise, np.random.default_rng(val_seed))
    return train, val


def best_accuracy(vocab: int, seq_len: int, noise: float) -> float:
    """Bayes-optimal token accuracy: ``(1/V + (T-1)(1 - noise + noise/V)) / T``."""
    return (1 / vocab + (seq_len - 1) * (1 - noise + noise / vocab)) / seq_len


# ----------------------------------------------------------------------------------------------
# Model: a pre-LayerNorm causal transformer.


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        # (B, T, 3C) -> three (B, heads, T, C/heads)
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, width // self.n_heads).permute(2, 0, 3, 1, 4)
        dropout = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, length, width))


class Block(nn.Module):
    """``x + attn(ln(x))``, then ``x + mlp(ln(x))``: pre-LN keeps the residual path an identity."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln_attention = nn.LayerNorm(d_model)
        self.attention = CausalSelfAttention(d_model, n_heads, dropout)
        self.ln_mlp = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.ln_attention(x))
        return x + self.mlp(self.ln_mlp(x))


class TinyTransformer(nn.Module):
    """Tokens (B, T) -> next-token logits (B, T, vocab)."""

    def __init__(self, vocab: int, seq_len: int, d_model: int, n_heads: int, n_layers: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, d_model)
        self.position_embedding = nn.Embedding(seq_len, d_model)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(Block(d_model, n_heads, dropout) for _ in range(n_layers)))
        self.ln_final = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab, bias=False)
        self.apply(_init_weights)
        self.head.weight = self.token_embedding.weight  # weight tying, as in GPT-2 and nanoGPT

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Depth units for layer-wise LR decay: embeddings, each block, then the final norm (the head is
        tied to the token embedding, so it trains with the embeddings)."""
        embeddings = [*self.token_embedding.parameters(), *self.position_embedding.parameters()]
        return [embeddings, *(list(block.parameters()) for block in self.blocks), list(self.ln_final.parameters())]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.dropout(self.token_embedding(tokens) + self.position_embedding(positions))
        return self.head(self.ln_final(self.blocks(x)))


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------------------------
# Loss and accuracy over every predicted token.


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over all (sequence, position) pairs: logits (N, T, V), targets (N, T)."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def count_correct_tokens(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over sequences of each sequence's share of correct tokens.

    The trainer divides ``count_correct`` by the number of sequences, so this makes ``val_acc`` the
    token accuracy (all sequences have the same length).
    """
    return (logits.argmax(dim=-1) == targets).float().mean(dim=1).sum()


# ----------------------------------------------------------------------------------------------
# The objective.


def make_task(objective: DictConfig) -> Task:
    vocab, seq_len, noise = int(objective.vocab), int(objective.seq_len), float(objective.noise)
    d_model, n_heads, n_layers, dropout = int(objective.d_model), int(objective.n_heads), int(objective.n_layers), float(objective.dropout)
    if d_model % n_heads:
        raise ConfigError("objective.n_heads", n_heads, f"must divide objective.d_model={d_model}")
    if not 0.0 <= noise <= 1.0:
        raise ConfigError("objective.noise", noise, "must be a probability in [0, 1]")
    train, val = make_data(vocab, seq_len, noise, int(objective.n_train), int(objective.n_val), int(objective.data_seed))
    if objective.get("train_limit"):
        train = train[: int(objective.train_limit)]
    train, val = torch.from_numpy(train), torch.from_numpy(val)
    return Task(
        build_model=lambda: TinyTransformer(vocab, seq_len, d_model, n_heads, n_layers, dropout),
        train_data=(train[:, :-1], train[:, 1:]),
        val_data=(val[:, :-1], val[:, 1:]),
        loss_fn=token_cross_entropy,
        count_correct=count_correct_tokens,
    )


def train(cfg: DictConfig, reporter: Reporter) -> float:
    """The objective: train with ``cfg.train``, report every epoch, return ``cfg.sweep.metric``."""
    result = run_training(make_task(cfg.objective), cfg.train, reporter)
    return result.metrics[cfg.sweep.metric]
