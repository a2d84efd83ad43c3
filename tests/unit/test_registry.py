import pytest

from framework import Activation, ElementwiseActivation, UnknownNameError
from framework.errors import ConfigError
from framework.registry import Registry, activations, backends, initializers, losses, optimizers

EXPECTED = {
    activations: {"identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "softplus",
                  "silu", "swish", "softmax"},
    losses: {"mse", "mae", "l1", "l2", "huber", "bce", "bce_with_logits", "cross_entropy"},
    optimizers: {"sgd", "adam", "adamw", "rmsprop", "adagrad"},
    initializers: {"zeros", "normal", "uniform", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
                   "lecun_normal"},
    backends: {"numpy"},
}


@pytest.mark.parametrize("registry", list(EXPECTED), ids=lambda r: r.kind)
def test_builtins_registered(registry):
    assert EXPECTED[registry] <= set(registry.names())
    assert registry.names() == sorted(registry.names())


def test_unknown_name_lists_names_and_closest_match():
    with pytest.raises(UnknownNameError) as e:
        activations.get("sigmod")
    msg = str(e.value)
    assert "unknown activation 'sigmod'" in msg and "Did you mean 'sigmoid'?" in msg and "tanh" in msg


def test_create_passes_kwargs_and_rejects_unknown_ones():
    assert activations.create("leaky_relu", alpha=0.2).alpha == 0.2
    with pytest.raises(ConfigError, match="Accepted arguments: alpha"):
        activations.create("leaky_relu", slope=0.2)


def test_defaults_come_from_the_signature():
    assert optimizers.defaults("sgd") == {"lr": 0.01, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}


def test_duplicate_registration_is_an_error_unless_override():
    reg = Registry("thing")

    @reg.register("a")
    class A(Activation):
        pass

    with pytest.raises(ConfigError, match="already registered"):
        @reg.register("a")
        class B(Activation):
            pass

    @reg.register("a", override=True)
    class C(ElementwiseActivation):
        pass

    assert reg.get("a") is C and C.name == "a"
