"""The code interpreter keeps the CLI's isolation rules, and a math episode runs a tool
call and scores the answer. Needs bubblewrap (scripts/test.sh installs it) and the cached
sandbox venv (created on first use, as for the Rust sandbox tests)."""

import os

import pytest

from spear_rs import envs
from spear_rs.sandbox import CodeInterpreter


@pytest.fixture(scope="module")
def interp():
    return CodeInterpreter(timeout=20.0)


def test_default_is_bubblewrap_and_runs_code(interp):
    assert interp.isolation == "bwrap" and "bwrap" in interp.executor
    assert interp.run("print(6 * 7)") == "42"
    assert interp.run("```python\nimport sympy\nprint(sympy.factorint(12))\n```") == "{2: 2, 3: 1}"
    assert interp.run("x = 1") == "Empty stdout! You might forget to print the answer."
    assert interp.run("print(y)").endswith("NameError: name 'y' is not defined\nErrors occurred! Check your code.")
    assert interp.run_many(["print(1)", "print(2)"]) == ["1", "2"]


def test_sandbox_isolation(interp, repo, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("x")
    paths = [str(repo / "README.md"), str(secret), "/etc/passwd"]
    out = interp.run(f"import os\nprint([os.path.exists(p) for p in {paths!r}])")
    assert out == "[False, False, False]", "the checkout, the caller's /tmp and /etc are not visible"
    # The same program sees them without isolation: the test would catch a no-op sandbox.
    assert CodeInterpreter(isolation="rlimits").run(f"import os\nprint([os.path.exists(p) for p in {paths!r}])") == "[True, True, True]"
    net = interp.run("import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('1.1.1.1', 80))\nprint('connected')")
    assert "connected" not in net and "Errors occurred!" in net
    raw = interp.run_raw("import time\ntime.sleep(30)")
    assert raw["status"] == "TimeLimitExceeded"


def test_isolation_must_be_named():
    with pytest.raises(ValueError, match='unknown isolation "auto"'):
        CodeInterpreter(isolation="auto")
    loose = CodeInterpreter(isolation="rlimits", timeout=20.0)
    assert loose.isolation == "rlimits" and loose.run("print(2 + 2)") == "4"
    with pytest.raises(ValueError, match="timeout"):
        CodeInterpreter(timeout=0)


def test_bubblewrap_missing_is_an_error_not_a_fallback(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on PATH
    with pytest.raises(RuntimeError, match="bubblewrap"):
        CodeInterpreter()


def test_math_episode_with_a_tool_call(interp):
    problems = [{"id": "mul", "problem": "What is 6 times 7?", "answer": "42"}]
    e = envs.math(problems, env_num=1, group_n=2, interpreter=interp)
    obs, infos = e.reset()
    assert obs[0].startswith("What is 6 times 7?") and "\\boxed{" in obs[0]
    assert infos[0]["problem_id"] == "mul" and infos[0]["context"].startswith("<|im_start|>system\n")
    call = '<tool_call>\n{"name": "code_interpreter", "arguments": {"code": "print(6*7)"}}\n</tool_call>'
    obs, rewards, dones, infos = e.step([call, "The answer is \\boxed{41}."])
    assert obs[0] == "42" and not dones[0] and rewards[0] == 0.0
    assert dones[1] and rewards[1] == -1.0 and not infos[1]["won"]
    obs, rewards, dones, infos = e.step(["So the answer is \\boxed{42}.", "ignored"])
    assert dones.all() and rewards.tolist() == [1.0, 0.0]
    assert infos[0]["won"] and infos[0]["n_tool_calls"] == 1
    aime = envs.math("aime2024", env_num=2, interpreter=interp)
    assert aime.num_tasks_in_split == 30
