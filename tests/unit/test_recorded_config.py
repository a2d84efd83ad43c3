"""What a tracked run records is the checked config: values normalized by `framework.run.schema.check`,
in the params, the config hash and the `hydra.overrides` tag alike."""
from framework.run import schema
from framework.run.config import config_hash, flatten
from framework.tracking.job import normalized
from tests.helpers import make_cfg


def test_a_float_typed_as_an_int_is_the_same_config():
    as_int, as_float = make_cfg("optimizer.lr=1", "optimizer.weight_decay=0"), make_cfg("optimizer.lr=1.0",
                                                                                     "optimizer.weight_decay=0.0")
    assert config_hash(as_int) != config_hash(as_float)  # as typed
    schema.check(as_int)
    schema.check(as_float)
    assert flatten(as_int) == flatten(as_float) and config_hash(as_int) == config_hash(as_float)
    assert flatten(as_int)["optimizer.lr"] == 1.0 and isinstance(flatten(as_int)["optimizer.lr"], float)


def test_a_trainer_float_typed_as_an_int_is_the_same_config():
    as_int, as_float = make_cfg("trainer.grad_clip=1"), make_cfg("trainer.grad_clip=1.0")
    schema.check(as_int)
    schema.check(as_float)
    assert config_hash(as_int) == config_hash(as_float) and flatten(as_int)["trainer.grad_clip"] == 1.0


def test_overrides_are_recorded_with_the_checked_values():
    cfg = make_cfg("optimizer=sgd", "optimizer.lr=1", "model.hidden=[8, 4]", "trainer.batch_size=NULL",
                   "+extra=1", "trainer.resume=12345678")
    schema.check(cfg)
    typed = ["optimizer=sgd", "optimizer.lr=1", "model.hidden=[8, 4]", "trainer.batch_size=NULL", "+extra=1",
             "trainer.resume=12345678", "~tracking.run_name", "not_a_key=3"]
    assert [normalized(cfg, o) for o in typed] == [
        "optimizer=sgd",            # a group choice: as typed
        "optimizer.lr=1.0",         # a plugin's float argument: a float, as in the params
        "model.hidden=[8,4]",
        "trainer.batch_size=null",
        "+extra=1",
        "trainer.resume=12345678",  # a string (converted by the check): as typed
        "~tracking.run_name",
        "not_a_key=3"]


def test_every_run_records_its_host_and_in_a_ray_worker_its_ray_node(monkeypatch):
    import socket
    import sys
    from types import SimpleNamespace

    from framework.tracking.job import node_tags

    host = {"node.host": socket.gethostname()}
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    assert node_tags() == host  # a plain run never imports ray
    context = SimpleNamespace(get_node_id=lambda: "ab12")
    ray = SimpleNamespace(is_initialized=lambda: False, get_runtime_context=lambda: context)
    monkeypatch.setitem(sys.modules, "ray", ray)
    assert node_tags() == host  # imported, not connected (a Ray driver before ray.init)
    ray.is_initialized = lambda: True
    assert node_tags() == {**host, "node.ray_id": "ab12"}
