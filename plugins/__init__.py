"""Built-in plugins, registered exactly as a third party registers its own (see plugins/README.md): this
package is the entry point `builtins = "plugins"` in pyproject.toml, and importing it imports (registers) them."""
from . import (  # noqa: F401
    activations,
    backends,
    callbacks,
    datasets,
    initializers,
    losses,
    metrics,
    optimizers,
    schedulers,
)
