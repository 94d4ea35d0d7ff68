"""What leaves a member spec is plain data, and the ensemble's stacked optimisers, joins and grid
runner refuse bad input naming it (each test failed on the code before these checks)."""

from __future__ import annotations

import copy
import dataclasses
import io
import pickle

import pytest
import torch

from gan_lib.train import EnsembleConfig, EnsembleResult, MemberSpec, concat_results, train_ensemble
from gan_lib.train.distributed import _fingerprints
from gan_lib.train.ensemble import StackedAdam, StackedRMSprop


def test_a_specs_options_leave_it_as_a_plain_dict():
    spec = MemberSpec("lsgan", seed=3, loss_options={"a": -1.0, "b": 1.0, "c": 0.0})
    fields = dataclasses.asdict(spec)
    assert type(fields["loss_options"]) is dict and fields["loss_options"] == {"a": -1.0, "b": 1.0, "c": 0.0}
    for out in (copy.copy(spec.loss_options), copy.deepcopy(spec.loss_options),
                pickle.loads(pickle.dumps(spec.loss_options))):
        assert type(out) is dict and out == {"a": -1.0, "b": 1.0, "c": 0.0}
    out["a"] = 5.0  # a copy is the caller's to change
    assert spec.loss_options["a"] == -1.0
    # what asdict gives saves and loads with torch.load's default weights_only=True
    buffer = io.BytesIO()
    torch.save(fields, buffer)
    buffer.seek(0)
    assert torch.load(buffer) == fields
    # copies of the spec are rebuilt through its constructor: still validated, still read-only
    for again in (copy.copy(spec), copy.deepcopy(spec), pickle.loads(pickle.dumps(spec))):
        assert again == spec
        with pytest.raises(TypeError, match="cannot be changed"):
            again.loss_options["a"] = 0.0


def test_a_specs_options_cannot_be_changed_by_calling_init_again():
    spec = MemberSpec("fgan_kl", seed=1, loss_options={"clamp": True})
    with pytest.raises(TypeError, match="cannot be changed"):
        spec.loss_options.__init__(nope=1)
    assert spec.loss_options == {"clamp": True}
    made = type(spec.loss_options).fromkeys(["clamp"], False)  # a new plain dict, the spec's untouched
    assert type(made) is dict and made == {"clamp": False} and spec.loss_options == {"clamp": True}


def test_option_keys_that_are_not_names_are_refused_listing_the_options():
    with pytest.raises(ValueError, match=r"key 1 of loss 'fgan_kl' is not an option name.*allowed options: clamp"):
        MemberSpec("fgan_kl", seed=0, loss_options={1: True})


def test_a_result_loaded_from_an_old_pickle_gets_read_only_validated_options():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    result = train_ensemble([MemberSpec("fgan_kl", seed=0, loss_options={"clamp": True})], x,
                            EnsembleConfig(batch_size=32, n_critic=1, steps=1, width=4), progress=False)
    state = result.state_dict()
    # a spec as an older version pickled it: built without the constructor, its options a plain dict
    old = object.__new__(MemberSpec)
    for f in dataclasses.fields(MemberSpec):
        object.__setattr__(old, f.name, getattr(result.members[0], f.name))
    object.__setattr__(old, "loss_options", {"clamp": True})
    state["members"] = [old]
    loaded = EnsembleResult.from_state_dict(state)
    with pytest.raises(TypeError, match="cannot be changed"):
        loaded.members[0].loss_options["clamp"] = False
    object.__setattr__(old, "loss_options", {"clamp": True, "nope": 1})
    with pytest.raises(ValueError, match="no option 'nope'"):
        EnsembleResult.from_state_dict(state)


def test_equal_specs_have_equal_fingerprints_whatever_the_order_of_their_options():
    x = torch.zeros(8, 2)
    cfg = EnsembleConfig(steps=1)
    one = MemberSpec("lsgan", seed=0, loss_options={"a": -1.0, "b": 1.0})
    two = MemberSpec("lsgan", seed=0, loss_options={"b": 1.0, "a": -1.0})
    assert one == two
    assert _fingerprints([one], x, cfg, [])["members"] == _fingerprints([two], x, cfg, [])["members"]
    other = MemberSpec("lsgan", seed=0, loss_options={"b": 1.0, "a": -0.5})
    assert _fingerprints([one], x, cfg, [])["members"] != _fingerprints([other], x, cfg, [])["members"]


def _stack(k: int = 3) -> list[torch.Tensor]:
    return [torch.zeros(k, 2, 4), torch.zeros(k, 1, 4)]


@pytest.mark.parametrize("make", [lambda p: StackedAdam(p, [1e-3] * 3), lambda p: StackedRMSprop(p, [1e-3] * 3)])
def test_stacked_optimisers_refuse_a_gradient_of_the_wrong_shape(make):
    opt = make(_stack())
    name = type(opt).__name__
    with pytest.raises(ValueError, match=rf"{name}\.step: the gradient of parameter 1 has shape \(3, 4\); "
                                         r"the parameter has shape \(3, 1, 4\)"):
        opt.step([torch.ones(3, 2, 4), torch.ones(3, 4)])  # (3, 4) would broadcast over (3, 1, 4)
    with pytest.raises(ValueError, match=r"got 1 gradients for 2 parameters"):
        opt.step([torch.ones(3, 2, 4)])
    assert all(bool((p == 0).all()) for p in opt.params)  # nothing was changed


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: StackedAdam(_stack(), [1e-3] * 3, betas=(0.9, 1.0)), r"betas\[1\]=1\.0 must be in \[0, 1\)"),
        (lambda: StackedAdam(_stack(), [1e-3] * 3, betas=0.9), r"betas=0\.9 must be two numbers"),
        (lambda: StackedAdam(_stack(), [1e-3] * 3, eps=float("nan")), r"eps=nan must be in \[0, inf\)"),
        (lambda: StackedAdam(_stack(), [1e-3] * 3, eps=-1e-8), r"eps=-1e-08 must be in"),
        (lambda: StackedRMSprop(_stack(), [1e-3] * 3, alpha=2), r"alpha=2 must be in \[0, 1\)"),
        (lambda: StackedRMSprop(_stack(), [1e-3] * 3, alpha="0.9"), r"alpha='0\.9' must be a real number"),
        (lambda: StackedRMSprop(_stack(), [True, True, True]), r"lr must hold 3 finite numbers"),
        (lambda: StackedRMSprop(_stack(), "abc"), r"lr must hold 3 finite numbers"),
        (lambda: StackedAdam(_stack(), [1e-3, 1e-3]), r"lr must hold 3 finite numbers.*\[0\.001, 0\.001\]"),
        (lambda: StackedAdam([], [1e-3]), r"params is empty"),
        (lambda: StackedAdam([torch.zeros(3, 2), torch.zeros(2, 2)], [1e-3] * 3), r"share their first"),
    ],
)
def test_stacked_optimisers_refuse_bad_hyperparameters_naming_them(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_joining_results_of_different_configs_names_the_fields_that_differ():
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    a = train_ensemble([MemberSpec("hinge", seed=0)], x, EnsembleConfig(batch_size=32, n_critic=1, steps=1, width=4),
                       progress=False)
    b = train_ensemble([MemberSpec("hinge", seed=1)], x, EnsembleConfig(batch_size=16, n_critic=1, steps=1, width=4),
                       progress=False)
    with pytest.raises(ValueError, match=r"results\[0\] and results\[1\] differ in batch_size \(32 vs 16\)"):
        concat_results([a, b])
