"""A plain Hydra training app (a tiny torch regressor) that sweeps runs as is:

    python app.py                                     # one training run, as in production
    python app.py -m hydra/sweeper=sweeps hydra.sweeper.n_trials=8 hydra.sweeper.epochs=9 \
        'optimizer.lr=tag(log, interval(1e-3, 1.0))' 'model.hidden=choice(8, 16, 32)'

The only sweeps line is ``report``: a no-op outside a sweep, the pruner's input inside one.
"""

import hydra
import torch
from omegaconf import DictConfig

from sweeps.api import report


@hydra.main(version_base=None, config_path="conf", config_name="config")
def train(cfg: DictConfig) -> float:
    torch.set_num_threads(1)
    data = torch.Generator().manual_seed(0)  # the same data for every run; the model's seed is cfg.seed
    x = torch.randn(512, 8, generator=data)
    y = torch.tanh(x @ torch.randn(8, 1, generator=data)) + 0.1 * torch.randn(512, 1, generator=data)
    torch.manual_seed(cfg.seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, cfg.model.hidden), torch.nn.Tanh(), torch.nn.Linear(cfg.model.hidden, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optimizer.lr, momentum=cfg.optimizer.momentum)
    for epoch in range(1, cfg.epochs + 1):
        for start in range(0, 384, cfg.batch_size):
            loss = torch.nn.functional.mse_loss(model(x[start : start + cfg.batch_size]), y[start : start + cfg.batch_size])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            val_loss = torch.nn.functional.mse_loss(model(x[384:]), y[384:]).item()
        report(epoch, val_loss=val_loss, train_loss=loss.item())
    print(f"final val_loss={val_loss:.8f}")
    return val_loss


if __name__ == "__main__":
    train()
