"""The documentation site: `mkdocs build --strict` passes without the network (a broken link, a
missing snippet, a page left out of the nav fail it); every public name of voxline is in the API
reference with a docstring of its own; every factory, parameter, method and event of the VoxEngine
reference is in the mapping table with a Python spelling that exists; the `voxline run` reference
has every flag and setting; every troubleshooting heading is a message voxline can write."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import voxline
import voxline.testing
from tests.conftest import require_module

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT.parent / "shared" / "seed" / "000_a40007576c2a1f1a.txt"
# The packages whose __all__ (and the namespaces they export) make voxline's public API.
PUBLIC_PACKAGES = (voxline, voxline.testing)


def _offline() -> list[str]:
    """``unshare -n``: no network namespace but loopback, so a build that fetches anything fails."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_module("mkdocs")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [*_offline(), sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin", "HOME": str(out)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return out


def hook() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("voxline_docs", ROOT / "docs" / "hooks" / "voxline_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def anchors(site: Path, under: str) -> set[str]:
    ids: set[str] = set()
    for page in (site / under).rglob("*.html"):
        ids |= set(re.findall(r'id="([^"]+)"', page.read_text(encoding="utf-8")))
    return ids


def public_names() -> Iterator[tuple[str, str, Any]]:
    """``(namespace, name, object)`` of every name in a public package's ``__all__``, and in the
    ``__all__`` of the namespaces (modules) they export, as the lazy tables load them."""
    seen: set[str] = set()
    todo: list[types.ModuleType] = list(PUBLIC_PACKAGES)
    while todo:
        package = todo.pop(0)
        if package.__name__ in seen:
            continue
        seen.add(package.__name__)
        for name in package.__all__:
            obj = getattr(package, name)  # loads it: a name the lazy table cannot load fails here
            yield package.__name__, name, obj
            if isinstance(obj, types.ModuleType):
                todo.append(obj)


def test_the_site_builds_strict_without_the_network(site: Path) -> None:
    for page in ("index.html", "cli/index.html", "mapping/index.html", "api/openai/index.html"):
        assert (site / page).is_file(), page
    # No web fonts, no CDN: every stylesheet and script is the site's own.
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        external = re.findall(r'<(?:link|script)[^>]+(?:href|src)="(https?://[^"]+)"', text)
        assert not external, (page, external)


def test_every_public_name_is_in_the_api_reference_with_its_own_docstring(site: Path) -> None:
    ids = anchors(site, "api")
    api_text = " ".join(p.read_text(encoding="utf-8") for p in (site / "api").rglob("*.html"))
    missing, undocumented = [], []
    for namespace, name, obj in public_names():
        if isinstance(obj, types.ModuleType):
            found = obj.__name__ in ids
            doc = obj.__doc__
        elif inspect.isclass(obj) or inspect.isroutine(obj):
            found = f"{obj.__module__}.{name}" in ids
            doc = vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__
        elif isinstance(obj, str):  # __version__
            found, doc = name in api_text, "a string"
        else:  # an instance (VoxEngine): documented by its name and its class
            found = any(i.endswith(f".{name}") for i in ids)
            doc = type(obj).__doc__
        if not found:
            missing.append(f"{namespace}.{name}")
        if not doc or not doc.strip():
            undocumented.append(f"{namespace}.{name}")
    assert not missing, f"not in docs/api/*.md (add a ::: entry): {missing}"
    assert not undocumented, f"no docstring: {undocumented}"


def reference() -> str:
    if not SEED.exists():
        pytest.skip(f"the VoxEngine reference is not at {SEED}")
    return SEED.read_text(encoding="utf-8")


def mapping_markdown() -> str:
    text = (ROOT / "docs" / "mapping.md").read_text(encoding="utf-8")
    return hook().on_page_markdown(
        text, types.SimpleNamespace(file=types.SimpleNamespace(src_uri="mapping.md")), None, None
    )  # type: ignore[no-any-return]


def sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^### (.+)$", markdown, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def test_every_reference_method_is_in_the_mapping_with_a_python_spelling_that_exists() -> None:
    from voxline import OpenAI

    seed = reference()
    client_methods = seed[seed.index("## Client methods") : seed.index("## Events")]
    names = re.findall(r"^### &#x20;(\w+)", client_methods, flags=re.M)
    per_class: list[list[str]] = []
    for name in names:  # the reference lists the three clients in turn, each from addEventListener
        if name == "addEventListener":
            per_class.append([])
        per_class[-1].append(name)
    classes = ("ChatCompletionsAPIClient", "ResponsesAPIClient", "RealtimeAPIClient")
    assert len(per_class) == 3
    tables = sections(mapping_markdown())
    for cls_name, methods in zip(classes, per_class, strict=True):
        table = tables[f"OpenAI.{cls_name}"]
        rows = dict(re.findall(r"^\| `(\w+)` \| `client\.(\w+)\(\)`", table, flags=re.M))
        cls = getattr(OpenAI, cls_name)
        for method in methods:
            assert method in rows, f"{cls_name}.{method} is not in docs/mapping.md"
            assert callable(getattr(cls, rows[method], None)), f"{cls_name}.{rows[method]} does not exist"
    factories = re.findall(r"^### &#x20;(create\w+APIClient)$", seed, flags=re.M)
    assert len(factories) == 3
    text = mapping_markdown()
    for factory in factories:
        python = re.search(rf"`OpenAI\.{factory}\(parameters\)` \| `await OpenAI\.(\w+)\(", text)
        assert python, factory
        assert callable(getattr(OpenAI, python.group(1)))


def test_every_reference_class_is_in_the_mapping_and_exists() -> None:
    from voxline import OpenAI

    names = set(re.findall(r"OpenAI\.(Events|[A-Z]\w*(?:APIClient|Events|APIClientType))\b", reference()))
    assert {"RealtimeAPIClient", "ChatCompletionsAPIClient", "ResponsesAPIClient", "Events"} <= names
    table = mapping_markdown().split("## Classes", 1)[1].split("## Factories", 1)[0]
    for name in names:
        assert f"`OpenAI.{name}`" in table, f"OpenAI.{name} is not in the classes table of docs/mapping.md"
        assert getattr(OpenAI, name)


def test_every_reference_parameter_is_in_the_mapping() -> None:
    seed = reference()
    types_section = seed[seed.index("## Parameter types") : seed.index("## Client methods")]
    properties = {
        re.sub(r"<[^>]+>", "", p)
        for p in re.findall(r"^\| (`\w+`|<code>[^|]+</code>)\s+\|", types_section, flags=re.M)
    }
    properties = {p.strip("`") for p in properties} - {"Property"}
    assert {"apiKey", "baseUrl", "onWebSocketClose", "summaryPrompt", "type"} <= properties
    rows = dict(re.findall(r"^\| `(\w+)` \| `(\w+)` \|", mapping_markdown(), flags=re.M))
    from voxline.openai.params import (
        ChatCompletionsAPIClientParameters,
        RealtimeAPIClientParameters,
        ResponsesAPIClientParameters,
    )

    fields = set()
    for cls in (
        ChatCompletionsAPIClientParameters,
        RealtimeAPIClientParameters,
        ResponsesAPIClientParameters,
    ):
        fields |= {f for f in cls.__dataclass_fields__}
    for prop in properties:
        assert prop in rows, f"parameter {prop} is not in docs/mapping.md"
        assert rows[prop] in fields, f"{prop} -> {rows[prop]}: no such parameter"


def test_every_reference_event_is_in_the_mapping_with_its_constant(site: Path) -> None:
    from voxline import OpenAI

    constants = re.findall(r"Event constant: `(\w+)\.(\w+)`", reference())
    assert len(constants) == 112
    page = (site / "mapping" / "index.html").read_text(encoding="utf-8")
    for namespace, name in constants:
        assert f"<code>OpenAI.{namespace}.{name}</code>" in page, f"{namespace}.{name}"
        assert getattr(getattr(OpenAI, namespace), name)


def test_the_run_reference_has_every_flag_and_setting(site: Path) -> None:
    from voxline.runtime.server import RuntimeConfig

    page = (site / "cli" / "index.html").read_text(encoding="utf-8")
    docs = hook()
    flags = docs.run_flags()
    assert len(flags) >= 30
    for options, _, _ in flags:
        for option in options.split(", "):
            assert f"<code>{option}</code>" in page, option
    for field in RuntimeConfig.__dataclass_fields__:
        if field != "extra":
            assert f"<code>{field}</code>" in page and f"<code>VOXLINE_{field.upper()}</code>" in page, field
    for endpoint in ("/twilio", "/twilio/voice", "/media", "/livez", "/readyz", "/health", "/metrics"):
        assert f"{endpoint}</code>" in page, endpoint


def _messages() -> list[str]:
    """Every string voxline's source can produce, its f-string fields as ``…``."""
    out = []
    for path in (ROOT / "src" / "voxline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.append(node.value)
            elif isinstance(node, ast.JoinedStr):
                out.append(
                    "".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values)  # type: ignore[misc]
                )
    return out


def test_every_troubleshooting_heading_is_a_message_voxline_writes() -> None:
    text = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    headings = re.findall(r"^### (?:`` (.+) ``|`([^`]+)`)\s*$", text, flags=re.M)
    assert len(headings) >= 15
    messages = _messages()
    for double, single in headings:
        heading = double or single
        # The fixed parts between the varying ones (a quoted value's quotes come with the value).
        fragments = [f.strip("'") for f in heading.split("…")]
        fragments = [f for f in fragments if len(f.strip()) >= 4]
        assert fragments, heading
        for fragment in fragments:
            assert any(fragment in m for m in messages), (
                f"no message of src/ reads {fragment!r} ({heading!r})"
            )
