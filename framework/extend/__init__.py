"""Plugin tooling: what helps someone write a plugin of any kind.

`conformance` (the checks every plugin of a kind must pass, one module per kind), `pictures` (curves of
activations and losses for the checker and the run's artifacts). The commands `framework.check_plugins`
and `framework.new_plugin` use them.
"""
