"""The four algorithms behind dlwh fit / predict, one small class each, all with the same interface:

    learner.fit(rows, target) -> learner          rows: training_data rows of one GPU
    learner.predict(rows) -> DataFrame            columns pred, lo, hi (a 90 % interval); NaN = cannot

Targets are modelled in log space (they span orders of magnitude; errors are relative). Poly and ols
predictions are clipped to 10x beyond the training targets' range: polynomials explode far outside
their data (predict warns about such inputs anyway).

* gbr:     scikit-learn GradientBoostingRegressor; the interval from cross-validated residuals
           (cross-conformal, 90 %), or with ``quantile=True`` from two quantile models (5 %, 95 %).
* poly:    PolynomialFeatures + Ridge, degree (1-3) and penalty chosen by 3-fold cross-validation;
           the interval from cross-validated residuals (``set_interval``).
* ols:     statsmodels OLS of ln target on ln MACs, ln parameters, ln batch size, ln power limit
           (and ln epoch size for time and energy): coefficients are elasticities; its summary is kept;
           the interval is statsmodels' 90 % prediction interval. Rows without MACs are left out.
* physics: the power-limit model of dlwh.analysis.physics (time and power; energy = their product);
           the interval from cross-validated residuals.
"""

from __future__ import annotations

import warnings

import numpy as np
from dlwh._lazy import pandas as pd

from dlwh.analysis.features import FeatureSpace

ALPHA = 0.10  # 90 % intervals
CLIP = np.log(10.0)  # poly and ols never predict beyond 10x the training targets' range (extrapolation guard)


def _frame(pred, lo, hi, index) -> pd.DataFrame:
    return pd.DataFrame({"pred": pred, "lo": lo, "hi": hi}, index=index, dtype=float)


class Learner:
    """Common parts: the target, feature space, and an optional interval half-width in log units."""

    algo = "?"
    needs_epoch_rows = True  # trained on rows whose work unit is an epoch with a batch size

    def __init__(self) -> None:
        self.target: str | None = None
        self.space: FeatureSpace | None = None
        self.log_halfwidth: float | None = None  # from cross-validated residuals (set_interval)
        self.n_rows = 0
        self.log_range: tuple[float, float] | None = None  # ln target, min and max in training

    def _remember_range(self, y) -> None:
        self.log_range = (float(np.min(y)), float(np.max(y)))

    def _clip(self, log_pred):
        if self.log_range is None:
            return log_pred
        return np.clip(log_pred, self.log_range[0] - CLIP, self.log_range[1] + CLIP)

    def set_interval(self, log_residuals) -> None:
        """Set the interval from out-of-sample |log(pred / actual)| (their 90th percentile)."""
        values = np.abs(np.asarray(log_residuals, dtype=float))
        values = values[np.isfinite(values)]
        if len(values):
            self.log_halfwidth = float(np.quantile(values, 1 - ALPHA))

    @staticmethod
    def usable(rows: pd.DataFrame, target: str) -> pd.DataFrame:
        """Rows the ML learners can train on: an epoch work unit, a batch size and the target."""
        mask = (rows["work_unit"] == "epoch") & rows["batch_size"].notna() & (rows[target] > 0)
        return rows[mask]

    def params(self) -> dict:
        return {}


class GBR(Learner):
    """Gradient boosting on log target; quantile models give the interval."""

    algo = "gbr"

    def __init__(self, n_estimators: int = 200, quantile: bool = False) -> None:
        super().__init__()
        self.n_estimators = n_estimators
        self.intervals = quantile
        self.models: dict[str, object] = {}

    def _model(self, **kw):
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=self.n_estimators, max_depth=4, learning_rate=0.1,
                                         subsample=0.9, random_state=0, **kw)

    def fit(self, rows: pd.DataFrame, target: str) -> "GBR":
        data = self.usable(rows, target)
        self.target, self.n_rows = target, len(data)
        self.space = FeatureSpace.learn(data)
        x, y = self.space.transform(data).to_numpy(), np.log(data[target].to_numpy(float))
        self.models = {"point": self._model().fit(x, y)}
        if self.intervals:
            self.models["lo"] = self._model(loss="quantile", alpha=ALPHA / 2).fit(x, y)
            self.models["hi"] = self._model(loss="quantile", alpha=1 - ALPHA / 2).fit(x, y)
        return self

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        x = self.space.transform(rows).to_numpy()
        point = self.models["point"].predict(x)
        if "lo" in self.models:
            lo = np.minimum(self.models["lo"].predict(x), point)
            hi = np.maximum(self.models["hi"].predict(x), point)
        elif self.log_halfwidth is not None:
            lo, hi = point - self.log_halfwidth, point + self.log_halfwidth
        else:
            lo = hi = np.full(len(point), np.nan)
        return _frame(np.exp(point), np.exp(lo), np.exp(hi), rows.index)

    def params(self) -> dict:
        return {"n_estimators": self.n_estimators, "max_depth": 4, "learning_rate": 0.1, "loss": "squared_error",
                "interval": "quantile models 5 % / 95 %" if self.intervals else "cross-validated residuals, 90 %"}


class Poly(Learner):
    """Polynomial ridge regression; degree and penalty chosen by 3-fold cross-validation.

    Terms: every product of the numeric features up to the degree (PolynomialFeatures), and each
    category's one-hot column times powers of the (standardised) power limit and batch size up to
    degree - 1, so every model and dataset gets its own power-limit curve without the thousands of
    products of one-hot columns with each other.
    """

    algo = "poly"
    DEGREES = (1, 2, 3)
    ALPHAS = (0.01, 0.1, 1.0, 10.0)

    def __init__(self) -> None:
        super().__init__()
        self.degree = None
        self.alpha = None
        self.ridge = None
        self.numeric: list[str] = []
        self.onehot: list[str] = []
        self.center = None
        self.scale = None

    def _expand(self, x: pd.DataFrame, degree: int) -> np.ndarray:
        from sklearn.preprocessing import PolynomialFeatures

        z = (x[self.numeric].to_numpy(float) - self.center) / self.scale
        parts = [PolynomialFeatures(degree=degree, include_bias=False).fit_transform(z)]
        if self.onehot:
            hot = x[self.onehot].to_numpy(float)
            parts.append(hot)
            for col in ("power_limit_w", "log2_batch"):
                if col in self.numeric:
                    v = z[:, self.numeric.index(col)][:, None]
                    for power in range(1, degree):
                        parts.append(hot * v ** power)
        return np.hstack(parts)

    def fit(self, rows: pd.DataFrame, target: str) -> "Poly":
        from sklearn.linear_model import Ridge

        data = self.usable(rows, target)
        self.target, self.n_rows = target, len(data)
        self.space = FeatureSpace.learn(data)
        x = self.space.transform(data)
        varying = x.columns[x.std() > 0]
        self.numeric = [c for c in varying if "=" not in c]
        self.onehot = [c for c in varying if "=" in c]
        self.center = x[self.numeric].mean().to_numpy(float)
        self.scale = x[self.numeric].std().to_numpy(float)
        y = np.log(data[target].to_numpy(float))
        self._remember_range(y)
        order = np.random.default_rng(0).permutation(len(data))
        folds = [f for f in np.array_split(order, min(3, len(data))) if len(f)]
        best = (np.inf, 1, 1.0)
        for degree in self.DEGREES:
            expanded = self._expand(x, degree)
            for alpha in self.ALPHAS:
                err = 0.0
                for test in folds:
                    train = np.setdiff1d(order, test)
                    model = Ridge(alpha=alpha).fit(expanded[train], y[train])
                    err += float(np.sum((model.predict(expanded[test]) - y[test]) ** 2))
                if err < best[0]:
                    best = (err, degree, alpha)
        _, self.degree, self.alpha = best
        self.ridge = Ridge(alpha=self.alpha).fit(self._expand(x, self.degree), y)
        return self

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        x = self.space.transform(rows)
        point = self._clip(self.ridge.predict(self._expand(x, self.degree)))
        width = self.log_halfwidth if self.log_halfwidth is not None else np.nan
        return _frame(np.exp(point), np.exp(point - width), np.exp(point + width), rows.index)

    def params(self) -> dict:
        return {"degree": self.degree, "ridge_alpha": self.alpha, "chosen_by": "3-fold cross-validation",
                "numeric_features": self.numeric, "interval": "cross-validated residuals, 90 %"}


class OLS(Learner):
    """statsmodels OLS on log features, for reading the relation (coefficients, intervals, R²)."""

    algo = "ols"

    def __init__(self) -> None:
        super().__init__()
        self.result = None
        self.columns: list[str] = []
        self.dropped: list[str] = []

    def design(self, rows: pd.DataFrame) -> pd.DataFrame:
        """ln MACs, ln params, ln batch, ln power limit [, ln samples per epoch]: with ln(target) on the
        left, each coefficient is an elasticity (+1 % MACs -> +coef % target)."""
        out = pd.DataFrame(index=rows.index)
        for name, column in (("ln_macs", "macs_per_sample"), ("ln_params", "params"), ("ln_batch", "batch_size"),
                             ("ln_power_limit", "power_limit_w"), ("ln_samples_per_epoch", "samples_per_epoch")):
            values = pd.to_numeric(rows.get(column), errors="coerce") if column in rows else pd.Series(np.nan, index=rows.index)
            out[name] = np.log(values.where(values > 0).astype(float))
        return out

    def fit(self, rows: pd.DataFrame, target: str) -> "OLS":
        import statsmodels.api as sm

        data = self.usable(rows, target)
        x = self.design(data)
        if target == "avg_power_w":
            x = x.drop(columns=["ln_samples_per_epoch"])
        x = x.loc[:, x.notna().mean() >= 0.5]            # features known for at least half the rows
        x = x.loc[:, x.std() > 0]
        keep = x.notna().all(axis=1)
        x, data = x[keep], data[keep]
        # collinear columns (e.g. parameters and MACs when few models) make the coefficients meaningless:
        # drop the epoch size, then parameters, until the design has full rank
        for column in ("ln_samples_per_epoch", "ln_params"):
            design = np.column_stack([np.ones(len(x)), x.to_numpy(float)])
            if len(x) and np.linalg.matrix_rank(design) < design.shape[1] and column in x:
                x = x.drop(columns=[column])
                self.dropped.append(column)
        if len(data) < len(x.columns) + 3:
            from dlwh.errors import DlwhError

            raise DlwhError(f"ols: only {len(data)} rows with MACs and parameters known; too few to fit")
        self.columns = list(x.columns)
        self.target, self.n_rows = target, len(data)
        self.space = FeatureSpace.learn(data)
        y = np.log(data[target].to_numpy(float))
        self._remember_range(y)
        self.result = sm.OLS(y, sm.add_constant(x, has_constant="add")).fit()
        return self

    def predict(self, rows: pd.DataFrame) -> pd.DataFrame:
        import statsmodels.api as sm

        x = self.design(rows)[self.columns]
        ok = x.notna().all(axis=1)
        pred = pd.DataFrame(np.nan, index=rows.index, columns=["pred", "lo", "hi"])
        if ok.any():
            frame = self.result.get_prediction(sm.add_constant(x[ok], has_constant="add")).summary_frame(alpha=ALPHA)
            pred.loc[ok, "pred"] = np.exp(self._clip(frame["mean"].to_numpy()))
            pred.loc[ok, "lo"] = np.exp(self._clip(frame["obs_ci_lower"].to_numpy()))
            pred.loc[ok, "hi"] = np.exp(self._clip(frame["obs_ci_upper"].to_numpy()))
        return pred

    def summary(self) -> str:
        """statsmodels' summary: coefficients (elasticities in log-log), 95 % intervals, R²."""
        return str(self.result.summary(yname=f"ln({self.target})"))

    def coefficients(self) -> pd.DataFrame:
        """Coefficient, standard error, 95 % interval and p-value per term."""
        ci = self.result.conf_int(0.05)
        return pd.DataFrame({"coef": self.result.params, "std_err": self.result.bse, "ci_low": ci[0],
                             "ci_high": ci[1], "p_value": self.result.pvalues})

    def params(self) -> dict:
        return {"terms": ["const", *self.columns], "dropped_collinear": self.dropped,
                "r2": round(float(self.result.rsquared), 4),
                "coef": {k: round(float(v), 5) for k, v in self.result.params.items()},
                "interval": "statsmodels prediction interval, 90 %"}


class Physics(Learner):
    """The power-limit model (one GPU); predicts time, power and energy of configurations it has seen."""

    algo = "physics"
    needs_epoch_rows = False

    def __init__(self) -> None:
        super().__init__()
        self.model = None
        self.log_halfwidths: dict[str, float] = {}

    def fit(self, rows: pd.DataFrame, target: str | None = None) -> "Physics":
        from dlwh.analysis.physics import fit_physics

        data = rows[(rows["time_per_epoch_s"] > 0) & (rows["avg_power_w"] > 0)]
        gpus = data["gpu"].unique()
        if len(gpus) != 1:
            raise ValueError("physics: fit one GPU at a time")
        self.target, self.n_rows = target, len(data)
        self.space = FeatureSpace.learn(data)
        self.model = fit_physics(data, str(gpus[0]))
        return self

    def predict_all(self, rows: pd.DataFrame) -> pd.DataFrame:
        """time_per_epoch_s, avg_power_w and energy_per_epoch_j (energy over n_gpus GPUs)."""
        out = self.model.predict_frame(rows)
        gpus = pd.to_numeric(rows.get("n_gpus", 1), errors="coerce").fillna(1.0)
        out["energy_per_epoch_j"] = out["time_per_epoch_s"] * out["avg_power_w"] * gpus
        return out

    def predict(self, rows: pd.DataFrame, target: str | None = None) -> pd.DataFrame:
        target = target or self.target
        point = self.predict_all(rows)[target].to_numpy(float)
        width = self.log_halfwidths.get(target, self.log_halfwidth if self.log_halfwidth is not None else np.nan)
        return _frame(point, point * np.exp(-width), point * np.exp(width), rows.index)

    def params(self) -> dict:
        return {**self.model.params(), "interval": "cross-validated residuals, 90 %"}


def make(algo: str, n_estimators: int = 200) -> Learner:
    """A fresh learner by name."""
    if algo == "gbr":
        return GBR(n_estimators=n_estimators)
    if algo == "poly":
        return Poly()
    if algo == "ols":
        return OLS()
    if algo == "physics":
        return Physics()
    raise ValueError(algo)
