"""``cifar-exp evaluate``'s overrides: the dataset and the store only; a training key and a typo each said as such."""

from __future__ import annotations

import pytest

from cifar_exp.errors import ConfigError
from cifar_exp.model_evaluation import compose


def test_data_and_tracking_overrides_compose(npz_dir, store_uri):
    cfg = compose(["data=local", f"data.path={npz_dir}", f"tracking.uri={store_uri}"])
    assert cfg.data.source == "local" and cfg.tracking.uri == store_uri


@pytest.mark.parametrize(
    "overrides,said,not_said",
    [
        (["dat=local"], "dat=local: no such option", "would change a training"),
        (["optimizer.lr=1e-3"], "optimizer.lr=1e-3 would change a training", "no such option"),
        (["seed=3", "+trainer.foo=1"], "seed=3, +trainer.foo=1 would change a training", "no such option"),
    ],
)
def test_other_overrides_are_refused_saying_why(overrides, said, not_said):
    with pytest.raises(ConfigError, match="takes data.\\* and tracking.\\* overrides") as refused:
        compose(overrides)
    assert said in str(refused.value) and not_said not in str(refused.value)


def test_a_typo_and_a_training_key_together_are_both_named():
    with pytest.raises(ConfigError) as refused:
        compose(["dat=local", "model=fast_cnn"])
    assert "dat=local: no such option; model=fast_cnn would change a training" in str(refused.value)
