"""api.md lists every public name of the SDK, the embedded mesh and the integrations."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from tests.apps._helpers import REPO

API = (REPO / "api.md").read_text(encoding="utf-8")
DOCUMENTED = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)", API))

MODULES = [
    "agentfm",
    "agentfm.mesh",
    "agentfm_integrations.langchain",
    "agentfm_integrations.llama_index",
]

# The classes behind client.workers / client.tasks / client.openai: their methods are the
# surface people call most, though the classes themselves are not exported.
NAMESPACES = [
    "agentfm.resources.workers:Workers",
    "agentfm.resources.workers:AsyncWorkers",
    "agentfm.resources.peers:Peers",
    "agentfm.resources.peers:AsyncPeers",
    "agentfm.resources.tasks:Tasks",
    "agentfm.resources.tasks:AsyncTasks",
    "agentfm.resources.openai.chat:ChatCompletions",
    "agentfm.resources.openai.completions:Completions",
    "agentfm.resources.openai.models:Models",
]


def _public_methods(cls: type) -> list[str]:
    names = []
    for name, value in vars(cls).items():
        if name.startswith("_") or name == "model_post_init":
            continue
        if inspect.isfunction(value) or isinstance(value, (property, classmethod, staticmethod)):
            names.append(name)
    return names


@pytest.mark.parametrize("module", MODULES)
def test_every_exported_name_is_documented(module: str) -> None:
    exported = importlib.import_module(module).__all__
    missing = [name for name in exported if not name.startswith("__") and name not in DOCUMENTED]
    assert not missing, f"api.md lacks {module}: {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_every_public_method_of_exported_classes_is_documented(module: str) -> None:
    mod = importlib.import_module(module)
    missing = []
    for name in mod.__all__:
        obj = getattr(mod, name)
        if inspect.isclass(obj) and obj.__module__.startswith(("agentfm", "agentfm_integrations")):
            missing += [f"{name}.{m}" for m in _public_methods(obj) if m not in DOCUMENTED]
    assert not missing, f"api.md lacks {missing}"


@pytest.mark.parametrize("target", NAMESPACES)
def test_client_namespaces_are_documented(target: str) -> None:
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    missing = [m for m in _public_methods(cls) if m not in DOCUMENTED]
    assert name in DOCUMENTED
    assert not missing, f"api.md lacks {name}: {missing}"
