"""The test helpers themselves: `make_cfg`'s cached composition is Hydra's full compose."""
import pytest
from omegaconf import OmegaConf

from tests.helpers import QUIET, compose_all, make_cfg

# group choices (a preset among them) between value overrides of each kind: a repeated key, a list, null,
# a new key (+), a root key, an int where the default is a float
MIXED = ("optimizer=adam", "trainer.epochs=3", "+experiment=digits_mlp", "activation=leaky_relu",
         "activation.alpha=0.2", "model.hidden=[32]", "trainer.epochs=1", "+notes=abc", "seed=3",
         "trainer.divergence.factor=null", "optimizer.lr=1")


@pytest.mark.parametrize("overrides", [(), MIXED])
def test_make_cfg_equals_one_full_compose(overrides):
    """make_cfg composes once per set of group choices and applies the value overrides to a copy."""
    cached, full = make_cfg(*overrides), compose_all(*QUIET, *overrides)
    assert OmegaConf.to_yaml(cached) == OmegaConf.to_yaml(full) and cached == full
    assert OmegaConf.is_struct(cached) and make_cfg(*overrides) is not make_cfg(*overrides)
