"""The test helpers themselves: `make_cfg`'s cached composition is Hydra's full compose; composing leaves
Hydra's ConfigStore as it was (the helpers let composes share it instead of deep-copying it)."""
import pytest
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from tests.helpers import QUIET, compose_all, make_cfg, register

# group choices (a preset among them) between value overrides of each kind: a repeated key, a list, null,
# a new key (+), a root key, an int where the default is a float
MIXED = ("optimizer=adam", "trainer.epochs=3", "+experiment=digits_mlp", "activation=leaky_relu",
         "activation.alpha=0.2", "model.hidden=[32]", "trainer.epochs=1", "+notes=abc", "seed=3",
         "trainer.divergence.factor=null", "optimizer.lr=1")


@pytest.mark.parametrize("overrides", [(), MIXED])
def test_make_cfg_equals_one_full_compose(overrides):
    """make_cfg composes once per set of group choices and applies the value overrides to a copy."""
    register()
    store = stored_yaml()
    cached, full = make_cfg(*overrides), compose_all(*QUIET, *overrides)
    after = stored_yaml()  # Hydra's plugins (launchers, sweepers) store their options at the first compose
    assert {path: after.get(path) for path in store} == store
    assert OmegaConf.to_yaml(cached) == OmegaConf.to_yaml(full) and cached == full
    assert OmegaConf.is_struct(cached) and make_cfg(*overrides) is not make_cfg(*overrides)


def stored_yaml(tree=None, prefix="") -> dict:
    """Every node of Hydra's ConfigStore as YAML, by path."""
    tree = ConfigStore.instance().repo if tree is None else tree
    return {path: text for name, v in tree.items()
            for path, text in (stored_yaml(v, f"{prefix}{name}/").items() if isinstance(v, dict)
                               else [(prefix + name, OmegaConf.to_yaml(v.node))])}


def test_make_cfg_composes_the_plugin_registered_under_a_stored_name_then_the_one_put_back():
    """The default activation, relu, replaced (`override=True`) and put back: its cached compositions go."""
    from framework import ElementwiseActivation
    from framework.registry import activations

    builtin = make_cfg().activation
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(activations, "_entries", dict(activations._entries))

        @activations.register("relu", override=True)
        class Replacement(ElementwiseActivation):
            def __init__(self, k: float = 2.0):
                self.k = k

            def forward(self, xp, z):
                return xp.tanh(self.k * z)

            def derivative(self, xp, z, a):
                return self.k * (1 - a * a)

        assert make_cfg().activation == {"name": "relu", "k": 2.0}
    assert make_cfg().activation == builtin == {"name": "relu"}
