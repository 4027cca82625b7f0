"""Content-addressed steps: keys, completion, failure and waiting on a locked step."""

from __future__ import annotations

import threading

import pytest

from pvvae.study.store import make_step, run_step, step_key


def test_key_is_order_independent_and_input_sensitive():
    assert step_key({"a": 1, "b": [1, 2]}) == step_key({"b": [1, 2], "a": 1})
    assert step_key({"a": 1}) != step_key({"a": 2})
    assert len(step_key({})) == 12


def test_a_complete_step_is_not_run_again(tmp_path):
    calls = []

    def fn(folder):
        calls.append(folder)
        (folder / "out.txt").write_text("x")
        return {"value": 3}

    step = make_step(tmp_path, "thing", {"x": 1})
    assert not step.done
    assert run_step(step, fn) == {"value": 3}
    assert step.done and step.result() == {"value": 3}
    assert run_step(step, fn) == {"value": 3}
    assert len(calls) == 1 and step.folder == tmp_path / "store" / step.id
    assert not step.folder.with_name(step.id + ".lock").exists()  # no clutter left


def test_a_failed_step_leaves_no_done_marker_and_is_retried(tmp_path):
    step = make_step(tmp_path, "thing", {"x": 2})

    def boom(folder):
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        run_step(step, boom)
    assert not step.done
    assert run_step(step, lambda folder: {"ok": True}) == {"ok": True}


def test_a_second_runner_waits_for_the_lock_and_reuses_the_result(tmp_path):
    step = make_step(tmp_path, "shared", {})
    started, release, calls = threading.Event(), threading.Event(), []

    def slow(folder):
        calls.append(1)
        started.set()
        release.wait(5)
        return {"n": len(calls)}

    first = threading.Thread(target=run_step, args=(step, slow))
    first.start()
    started.wait(5)
    results = []
    second = threading.Thread(target=lambda: results.append(run_step(step, slow)))
    second.start()
    release.set()
    first.join(5)
    second.join(5)
    assert calls == [1] and results == [{"n": 1}]
