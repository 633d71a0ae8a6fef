"""Helpers shared by the allocation tests: a scores table, and the wording of the alike-names rule."""

import numpy as np
import pandas as pd

ALIKE_RULE = "scores names match ignoring case, outer spaces and invisible marks"


def make_scores(n=200, seed=0, owners=("ann", "bob", "cy")):
    rng = np.random.default_rng(seed)
    clv = rng.lognormal(6, 1.5, n) * (rng.random(n) > 0.1)
    return pd.DataFrame(
        {
            "account_id": np.arange(1000, 1000 + n),
            "cutoff": pd.Timestamp("2025-01-01"),
            "clv": clv,
            "p_churn": rng.beta(2, 5, n),
            "referral_value": np.where(rng.random(n) < 0.2, rng.lognormal(5, 1, n), 0.0),
            "p_alive": np.where(rng.random(n) < 0.15, rng.uniform(0, 0.09, n), rng.uniform(0.1, 1, n)),
            "expected_purchases": rng.gamma(2, 1, n),
            "model_uri": "models:/kamml/1",
            "owner": rng.choice(list(owners), n),
            "drivers": "spend in the last 90 days is high; ordering more often than usual",
        }
    )
