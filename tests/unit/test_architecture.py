"""The tree's rules, checked on the source: what each layer may import.

functions -> services -> run / store / segments / activecampaign -> model / errors, one way;
only the bindings (and the local queue host, which stands in for the Functions host) touch
azure.functions; shared/ is plumbing any function app could reuse and imports nothing of exports/.
"""
from __future__ import annotations

import ast
import functools
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Plumbing for HTTP functions, reusable by any app: it renders answers, so it may use the library.
HTTP_PLUMBING = {"shared/api.py", "shared/http.py"}


@functools.cache
def imports() -> dict[str, set[str]]:
    found = {}
    for path in [*ROOT.glob("exports/**/*.py"), *ROOT.glob("shared/**/*.py"), ROOT / "function_app.py"]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
                names |= {f"{node.module}.{alias.name}" for alias in node.names}
        found[path.relative_to(ROOT).as_posix()] = names
    return found


def importers_of(prefix: str) -> set[str]:
    return {module for module, names in imports().items() if any(n == prefix or n.startswith(prefix + ".") for n in names)}


def test_only_the_bindings_and_the_local_host_use_azure_functions():
    allowed = {m for m in imports() if m.startswith("exports/functions/")} | {"exports/local_host.py", "function_app.py"}
    assert importers_of("azure.functions") <= allowed | HTTP_PLUMBING


def test_nothing_but_the_app_imports_the_bindings():
    outside = {m for m in importers_of("exports.functions") if not m.startswith("exports/functions/")}
    assert outside == {"function_app.py"}


def test_services_and_steps_raise_domain_errors_not_http_ones():
    assert {m for m in importers_of("shared.http") if not m.startswith("exports/functions/")} <= HTTP_PLUMBING


def test_shared_imports_nothing_of_the_product():
    assert not {m for m in importers_of("exports") if m.startswith("shared/")}


def test_dependencies_point_one_way():
    below_services = ("exports/run/", "exports/store/", "exports/segments/", "exports/activecampaign/",
                      "exports/model.py", "exports/errors.py")
    for module in importers_of("exports.services"):
        assert not module.startswith(below_services), f"{module} imports a service"
    for module in importers_of("exports.run"):
        assert not module.startswith(("exports/store/", "exports/segments/", "exports/activecampaign/",
                                      "exports/model.py", "exports/errors.py")), f"{module} imports a run step"
    for module in importers_of("exports.store") | importers_of("exports.segments") | importers_of("exports.activecampaign"):
        assert not module.startswith(("exports/model.py", "exports/errors.py")), module
