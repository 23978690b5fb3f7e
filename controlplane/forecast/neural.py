"""A small torch forecaster: an MLP on scale-normalised lags, same-phase values of the previous
days and calendar features, trained with a pinball loss to give p50 and p90 for every step at once.

CPU, one thread, seeded: the same history gives the same forecast. It trains from scratch on each
call (a few hundred full-batch steps on at most `max_train_origins` windows: about a second), so
it stays a pure function of its inputs like the other forecasters. With too little history to
train on, the seasonal naive answers.
"""

from __future__ import annotations

import numpy as np

from controlplane.forecast.forecasters import P90, Quantiles, SeasonalNaive, _finish
from controlplane.forecast.series import DAY_S, infer_seasons


class TorchQuantileMLP:
    name = "torch_mlp"
    lags = 24  # recent rows seen by the network
    days_back = 3  # previous days whose same-phase values are features
    min_train_origins = 300  # fewer windows: the network overfits (seen on hour-long 10 s traces)
    max_train_origins = 3000

    def __init__(
        self, hidden: int = 64, epochs: int = 300, learning_rate: float = 0.01, seed: int = 0
    ) -> None:
        self.hidden = hidden
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.seed = seed

    def _features(self, y, ts, origins, H, daily):
        """Feature rows and the per-row scale for forecasting y[o .. o+H-1] from y[:o]."""
        recent = np.stack([y[origins - 1 - k] for k in range(self.lags)], axis=1)
        # Mean absolute level of the recent window: outputs are changes in units of it, so one
        # network serves a series at 5 rps and at 5000 rps.
        scale = np.maximum(np.abs(recent).mean(axis=1), 1e-6)
        last = recent[:, 0]
        cols = [(recent - last[:, None]) / scale[:, None], (last / scale)[:, None] - 1.0]
        if daily is not None:
            steps = np.arange(1, H + 1)
            for d in range(1, self.days_back + 1):
                same_phase = y[origins[:, None] - 1 + steps[None, :] - d * daily]
                cols.append((same_phase - last[:, None]) / scale[:, None])
                cols.append(((y[origins - 1 - d * daily] - last) / scale)[:, None])
        if ts is not None:
            tod = (ts[origins - 1] % DAY_S) / DAY_S
            dow = ((np.floor(ts[origins - 1] / DAY_S) + 3) % 7) / 7.0
            cols += [np.column_stack([np.sin(2 * np.pi * tod), np.cos(2 * np.pi * tod)])]
            cols += [np.column_stack([np.sin(2 * np.pi * dow), np.cos(2 * np.pi * dow)])]
        return np.concatenate(cols, axis=1).astype(np.float32), scale

    def forecast(self, values: np.ndarray, timestamps_s: np.ndarray | None, horizon_steps: int) -> Quantiles:
        import torch  # noqa: PLC0415 (slow import)

        y = np.asarray(values, dtype=float)
        ts = None if timestamps_s is None else np.asarray(timestamps_s, dtype=float)
        n, H = len(y), horizon_steps
        daily, _ = infer_seasons(ts)
        if daily is not None and n < self.days_back * daily + self.lags + H + self.min_train_origins:
            daily = None
        need = self.lags + (self.days_back * daily if daily is not None else 0)
        first = max(need + 1, n - H + 1 - self.max_train_origins)
        train = np.arange(first, n - H + 1)
        if len(train) < self.min_train_origins or np.ptp(y) == 0:  # constant: nothing to learn
            return SeasonalNaive().forecast(y, ts, H)
        X, scale = self._features(y, ts, train, H, daily)
        target = np.stack([y[train - 1 + h] for h in range(1, H + 1)], axis=1)
        T = ((target - y[train - 1][:, None]) / scale[:, None]).astype(np.float32)
        Xq, scale_q = self._features(y, ts, np.array([n]), H, daily)

        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(self.seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], self.hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(self.hidden, self.hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(self.hidden, 2 * H),
        )
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / max(1, p.shape[-1]) ** 0.5))
        # The newest fifth of the windows is held out to calibrate p90 (conformalised quantile
        # regression): a network's in-sample p90 covers its training data, not the future.
        n_cal = max(20, len(X) // 5)
        fit_x, fit_t = torch.from_numpy(X[:-n_cal]), torch.from_numpy(T[:-n_cal])
        # Standardise inputs with training statistics (the lags of a bursty series are heavy-tailed).
        mu, sd = fit_x.mean(0), fit_x.std(0) + 1e-6
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=1e-4)
        _train(net, opt, (fit_x - mu) / sd, fit_t, H, self.epochs)
        with torch.no_grad():
            _, cal90 = _heads(net((torch.from_numpy(X[-n_cal:]) - mu) / sd), H)
            miss = (T[-n_cal:] - cal90.numpy()).astype(float)  # > 0: the actual was above p90
            level = min(1.0, P90 * (1 + 1 / n_cal))
            shift = np.quantile(miss, level, axis=0)  # per step
        # Then a shorter pass over all windows: the newest ones hold the current regime (a level
        # shift, the far end of a trend); the calibration shift is kept.
        _train(net, opt, (torch.from_numpy(X) - mu) / sd, torch.from_numpy(T), H, self.epochs // 2)
        with torch.no_grad():
            q50, q90 = _heads(net((torch.from_numpy(Xq) - mu) / sd), H)
            d50 = q50[0].numpy().astype(float)
            d90 = q90[0].numpy().astype(float) + shift
        return _finish(y, y[-1] + d50 * scale_q[0], y[-1] + d90 * scale_q[0])


def _train(net, opt, x, t, H: int, epochs: int) -> None:
    for _ in range(epochs):
        opt.zero_grad()
        p50, p90 = _heads(net(x), H)
        loss = _pinball(t, p50, 0.5) + _pinball(t, p90, P90)
        loss.backward()
        opt.step()


def _heads(out, H: int):
    """(p50, p90) from the network's 2H outputs; p90 >= p50 by construction."""
    import torch  # noqa: PLC0415

    p50 = out[:, :H]
    return p50, p50 + torch.nn.functional.softplus(out[:, H:])


def _pinball(actual, pred, q: float):
    diff = actual - pred
    return (q * diff).maximum((q - 1) * diff).mean()
