"""Built-in plugins, registered exactly as a third party registers its own (see plugins/README.md)."""
