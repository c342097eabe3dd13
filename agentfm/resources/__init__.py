"""The client namespaces: ``workers``, ``tasks`` and ``openai``."""
