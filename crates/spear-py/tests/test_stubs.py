"""The type stubs (_native.pyi) name every native function and class with the runtime
parameter names, and every public module's __all__ resolves."""

import ast
import inspect
import pathlib

import spear_rs
from spear_rs import _native, agent, envs, learners, rewards, sandbox, verl_agent

STUB = pathlib.Path(spear_rs.__file__).with_name("_native.pyi")


def stub_defs():
    tree = ast.parse(STUB.read_text())
    funcs, classes = {}, {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            funcs[node.name] = node
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = {n.name: n for n in node.body if isinstance(n, ast.FunctionDef)}
    return funcs, classes


def params(node):
    a = node.args
    return [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]


def test_every_native_name_is_in_the_stub():
    funcs, classes = stub_defs()
    public = {n for n in dir(_native) if not n.startswith("_")}
    assert public <= set(funcs) | set(classes), public - set(funcs) - set(classes)
    assert set(funcs) | set(classes) <= public | {"F64Array", "I64Array", "BoolArray", "ArrayLike"}


def test_stub_parameters_match_the_runtime_signatures():
    funcs, classes = stub_defs()
    for name, node in funcs.items():
        sig = inspect.signature(getattr(_native, name))
        assert params(node) == list(sig.parameters), name
    for cname, methods in classes.items():
        cls = getattr(_native, cname)
        for mname, node in methods.items():
            # Slot methods other than __init__ (e.g. __call__) show only (*args, **kwargs).
            if mname.startswith("__") and mname != "__init__":
                continue
            attr = getattr(cls, mname)
            if isinstance(attr, property) or type(attr).__name__ == "getset_descriptor":
                continue
            target = cls if mname == "__init__" else attr
            sig = inspect.signature(target)
            assert params(node) == [p for p in sig.parameters if p not in ("self",)], f"{cname}.{mname}"


def test_public_modules_export_what_they_list():
    for mod in (agent, envs, learners, rewards, sandbox, verl_agent):
        for name in mod.__all__:
            assert hasattr(mod, name), f"{mod.__name__}.{name}"
    assert (pathlib.Path(spear_rs.__file__).with_name("py.typed")).exists()
