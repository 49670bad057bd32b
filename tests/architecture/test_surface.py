"""The key groups reach the app only through ``AppSurface`` (tui/app/surface.py): no private name
of the app, no other group's state, no ``getattr`` around it; and the app has every name there."""

from __future__ import annotations

import ast
import inspect
import pathlib

from backends.base import GenParams
from tui.app import surface
from tui.app.app import ABTopApp

APP = pathlib.Path(surface.__file__).parent
GROUPS = ("blind.py", "model_keys.py", "quality_keys.py", "results_keys.py")


def _surface_names() -> set[str]:
    cls = surface.AppSurface
    return set(inspect.get_annotations(cls)) | {
        n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")
    }


def _app_names_used(path: pathlib.Path) -> set[str]:
    """``X`` of every ``self.app.X`` and ``app.X`` (a local ``app = self.app``) in ``path``."""
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.Attribute):
            v = n.value
            if (isinstance(v, ast.Name) and v.id == "app") or (
                isinstance(v, ast.Attribute) and v.attr == "app" and isinstance(v.value, ast.Name) and v.value.id == "self"
            ):
                out.add(n.attr)
    return out


def test_the_key_groups_use_only_the_surface():
    names = _surface_names()
    assert {"session", "panes", "engine", "make_backend", "notify", "export_params"} <= names
    for group in GROUPS:
        path = APP / group
        used = _app_names_used(path)
        assert used, f"{group} uses nothing of the app: the check reads the wrong thing"
        assert used <= names, f"{group} uses {sorted(used - names)} of the app, outside AppSurface"
        text = path.read_text()
        assert "getattr(" not in text, f"{group} reaches around the surface with getattr"


def test_the_picker_and_help_do_not_reach_around_the_app():
    for name in ("picker.py", "help.py"):
        assert "getattr(" not in (APP / name).read_text(), name


async def test_the_app_has_every_name_of_the_surface():
    app = ABTopApp(["smollm2-135m"], "Hi", GenParams(max_tokens=1), n_ctx=256)
    names = _surface_names()
    async with app.run_test(size=(80, 24)):
        missing = sorted(n for n in names if not hasattr(app, n))
        assert not missing, f"ABTopApp lacks {missing} of AppSurface"
        assert isinstance(app, surface.AppSurface)
