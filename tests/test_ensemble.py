"""Tests of gan_lib.train.ensemble: many GANs trained as one batched computation.

The reference is a plain PyTorch loop written here: one member alone, ``nn.Linear`` layers,
``torch.optim.RMSprop`` / ``torch.optim.Adam``, ``torch.nn.utils.parametrizations.spectral_norm``
(its vectors set from the member's generator), a hand-written gradient penalty and R1, ``clamp_``
for clipping, and Song & Ermon's epoch scheme, with the member's own ``torch.Generator`` drawn in
the documented order. Member ``k`` of a mixed ensemble must follow that loop's trajectory.
Closed forms: RMSprop's first step moves every parameter by ``lr / sqrt(1 - alpha) = 10 lr``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
import shutil
import sysconfig
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from gan_lib import losses
from gan_lib.train import (
    EnsembleConfig,
    EnsembleResult,
    MemberSpec,
    StackedAdam,
    StackedRMSprop,
    concat_results,
    train_ensemble,
)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ------------------------------------------------------------------------------------------------
# The reference: one member, plain PyTorch
# ------------------------------------------------------------------------------------------------


def linear_from(gen: torch.Generator, fan_in: int, fan_out: int) -> nn.Linear:
    """An nn.Linear whose weight and bias are uniform in +-1/sqrt(fan_in), drawn weight first from ``gen``."""
    bound = 1.0 / math.sqrt(fan_in)
    w = (torch.rand(1, fan_in, fan_out, generator=gen) * 2 - 1) * bound
    b = (torch.rand(1, 1, fan_out, generator=gen) * 2 - 1) * bound
    lin = nn.Linear(fan_in, fan_out)
    with torch.no_grad():
        lin.weight.copy_(w[0].T)
        lin.bias.copy_(b[0, 0])
    return lin


def mlp_from(gen: torch.Generator, dims: list[int], slope: float = 0.2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(linear_from(gen, dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(nn.LeakyReLU(slope))
    return nn.Sequential(*layers)


def with_spectral_norm(disc: nn.Sequential, gen: torch.Generator) -> None:
    """torch's spectral_norm on every layer, its u, v drawn from ``gen`` (u then v per layer, float32,
    normalised) and brought to torch's starting point by 15 power iterations in the network's dtype,
    as its constructor does."""
    for lin in [m for m in disc if isinstance(m, nn.Linear)]:
        out_f, in_f = lin.weight.shape
        dtype = lin.weight.dtype
        u = F.normalize(torch.randn(out_f, generator=gen), dim=0, eps=1e-12).to(dtype)
        v = F.normalize(torch.randn(in_f, generator=gen), dim=0, eps=1e-12).to(dtype)
        w = lin.weight.detach()
        for _ in range(15):
            u = F.normalize(torch.mv(w, v), dim=0, eps=1e-12)
            v = F.normalize(torch.mv(w.T, u), dim=0, eps=1e-12)
        spectral_norm(lin)
        sn = lin.parametrizations.weight[0]
        sn._u.copy_(u)
        sn._v.copy_(v)


def reference_run(spec: MemberSpec, x: torch.Tensor, cfg: EnsembleConfig) -> dict:
    gen = torch.Generator().manual_seed(spec.seed)
    dims_g = [cfg.z_dim] + [cfg.width] * cfg.depth + [x.shape[1]]
    dims_d = [x.shape[1]] + [cfg.width] * cfg.depth + [1]
    slope = {"leaky_relu": 0.2, "leaky_relu_0.01": 0.01}[cfg.activation]  # written out here, not the library's table
    G = mlp_from(gen, dims_g, slope)
    D = mlp_from(gen, dims_d, slope)
    spectral = spec.regulariser == "spectral_norm"
    dtype = getattr(torch, cfg.dtype)
    x = x.to(dtype)
    init = {"G": [p.detach().to(dtype, copy=True) for p in G.parameters()],
            "D": [p.detach().to(dtype, copy=True) for p in D.parameters()]}
    G.to(dtype)
    D.to(dtype)
    if spectral:
        with_spectral_norm(D, gen)
    loss = losses.get(spec.loss, **spec.loss_options)
    if cfg.optimiser == "rmsprop":
        opt_d = torch.optim.RMSprop(D.parameters(), lr=spec.lr_d)
        opt_g = torch.optim.RMSprop(G.parameters(), lr=spec.lr_g)
    else:
        opt_d = torch.optim.Adam(D.parameters(), lr=spec.lr_d, betas=cfg.betas)
        opt_g = torch.optim.Adam(G.parameters(), lr=spec.lr_g, betas=cfg.betas)
    n_points = x.shape[0]
    step, d_log, g_log = 0, [], []
    while step < cfg.steps:
        x_epoch = x[torch.randperm(n_points, generator=gen)] if cfg.shuffle else x
        for begin in range(0, n_points, cfg.batch_size):
            if step >= cfg.steps:
                break
            real = x_epoch[begin:begin + cfg.batch_size]
            n = real.shape[0]
            # a generator step's noise in one draw: the critic steps' z, the generator's z, the gp's weights
            z_all = torch.randn(cfg.n_critic + 1, n, cfg.z_dim, generator=gen, dtype=dtype)
            eps_all = torch.rand(cfg.n_critic, n, 1, generator=gen, dtype=dtype) if spec.regulariser == "gp" else None
            for j in range(cfg.n_critic):
                z = z_all[j]
                eps = eps_all[j] if eps_all is not None else None
                with torch.no_grad():
                    fake = G(z)
                # two calls: torch's spectral norm takes a power iteration in each
                out = torch.cat([D(real), D(fake)]) if cfg.separate_critic_calls else D(torch.cat([real, fake]))
                d_loss = loss.discriminator(out[:n], out[n:])
                total = d_loss
                if eps is not None:
                    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
                    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
                    total = total + spec.reg_weight * (grad.norm(dim=1) - 1).pow(2).mean()
                if spec.regulariser == "r1":
                    xr = real.clone().requires_grad_(True)
                    (grad,) = torch.autograd.grad(D(xr).sum(), xr, create_graph=True)
                    total = total + 0.5 * spec.reg_weight * grad.pow(2).sum(dim=1).mean()
                opt_d.zero_grad()
                total.backward()
                opt_d.step()
                if spec.regulariser == "clip":
                    with torch.no_grad():
                        for p in D.parameters():
                            p.clamp_(-spec.clip, spec.clip)
            fake = G(z_all[cfg.n_critic])
            if loss.requires_real_in_generator:
                with parametrize.cached():  # one power iteration for both evaluations
                    with torch.no_grad():
                        d_real = D(real)
                    g_loss = loss.generator(D(fake), d_real)
            else:
                g_loss = loss.generator(D(fake))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            step += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                d_log.append(d_loss.item())
                g_log.append(g_loss.item())
    raw_d = []
    for m in D:
        if isinstance(m, nn.Linear):
            w = m.parametrizations.weight.original if parametrize.is_parametrized(m) else m.weight
            raw_d += [w.detach().clone(), m.bias.detach().clone()]
    D.eval()  # spectral norm: the stored vectors, no further power iteration
    return {"G": [p.detach().clone() for p in G.parameters()], "D_raw": raw_d, "init": init,
            "d_log": np.array(d_log), "g_log": np.array(g_log), "G_net": G, "D_net": D}


def member_params(result, k: int) -> dict:
    """Member k's generator parameters and raw critic parameters, in nn.Linear layout."""
    def layout(bank):
        out = []
        for w, b in zip(bank.weights, bank.biases):
            out += [w[k].detach().T.clone(), b[k, 0].detach().clone()]
        return out
    return {"G": layout(result.generator), "D_raw": layout(result.critic)}


def rel_error(got: list[torch.Tensor], want: list[torch.Tensor], start: list[torch.Tensor]) -> float:
    """Largest error relative to the largest distance travelled from the start, over all tensors."""
    err = max(float((g - w).abs().max()) for g, w in zip(got, want))
    moved = max(float((w - s).abs().max()) for w, s in zip(want, start))
    assert moved > 0
    return err / moved


def blobs(n: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[2.0, 0.0], [-2.0, 0.0]]) + shift
    return centres[torch.randint(0, 2, (n,), generator=g)] + 0.3 * torch.randn(n, 2, generator=g)


MIXED = [
    MemberSpec("non_saturating", seed=11, lr_d=2e-3, lr_g=1e-3, dataset="a"),
    MemberSpec("kl_hinge", seed=12, regulariser="spectral_norm", lr_d=3e-3, lr_g=2e-3, dataset="a"),
    MemberSpec("wgan", seed=13, regulariser="gp", reg_weight=5.0, lr_d=1e-3, dataset="b"),
    MemberSpec("hinge", seed=14, regulariser="clip", clip=0.05, lr_d=4e-3, lr_g=3e-3, dataset="a"),
    MemberSpec("lsgan", seed=15, regulariser="r1", reg_weight=2.0, lr_d=2e-3, dataset="b"),
    MemberSpec("ragan", seed=16, regulariser="spectral_norm", lr_g=5e-3, dataset="b"),
    MemberSpec("fgan_kl", seed=17, loss_options={"clamp": True}, lr_d=1e-3, lr_g=1e-3, dataset="a"),
    MemberSpec("non_saturating", seed=18, lr_d=5e-4, lr_g=3e-3, dataset="b"),
    MemberSpec("kl_hinge", seed=19, loss_options={"detach_weights": True}, lr_d=2e-3, dataset="b"),
]
DATA = {"a": blobs(150, 0), "b": blobs(150, 1, shift=0.5)}
# float64 trajectories: the largest relative error observed was 8.2e-10 on one machine and 2.7e-9 on
# another (AMD EPYC; the kl_hinge member with spectral norm, whose power iteration and exponential
# weights amplify rounding); the same members in float32 differ by up to 5e-6 (test_float32_...)
TOL64 = 1e-8
CFG = dict(batch_size=64, n_critic=2, steps=8, width=16, depth=2, z_dim=2, log_every=3)


@pytest.fixture(scope="module", params=["rmsprop", "adam"])
def mixed_run(request):
    """The mixed ensemble in float64: rounding noise stays far below RMSprop's and Adam's eps, so that
    parameters whose gradient vanishes identically (a hinge critic's output bias while every sample
    is inside the margin, any WGAN critic's output bias) take the same steps as in the reference."""
    cfg = EnsembleConfig(optimiser=request.param, betas=(0.5, 0.9), dtype="float64", **CFG)
    return cfg, train_ensemble(MIXED, DATA, cfg, progress=False)


def check_against_reference(result, specs, data, cfg, tol: float) -> None:
    for k, spec in enumerate(specs):
        x = data[spec.dataset] if isinstance(data, dict) else data
        ref = reference_run(spec, x, cfg)
        got = member_params(result, k)
        err_g = rel_error(got["G"], ref["G"], ref["init"]["G"])
        err_d = rel_error(got["D_raw"], ref["D_raw"], ref["init"]["D"])
        assert err_g < tol and err_d < tol, (k, spec.loss, spec.regulariser, err_g, err_d)
        np.testing.assert_allclose(result.history.d_loss[:, k], ref["d_log"], rtol=tol, atol=tol / 10)
        np.testing.assert_allclose(result.history.g_loss[:, k], ref["g_log"], rtol=tol, atol=tol / 10)
        # the member's plain networks compute what the reference networks compute
        g_net, d_net = result.member(k)
        probe = blobs(32, 99).to(getattr(torch, cfg.dtype))
        with torch.no_grad():
            torch.testing.assert_close(d_net(probe), ref["D_net"](probe), rtol=tol, atol=tol / 10)
            torch.testing.assert_close(g_net(probe), ref["G_net"](probe), rtol=tol, atol=tol / 10)


def test_each_member_follows_its_plain_pytorch_loop(mixed_run):
    cfg, result = mixed_run
    check_against_reference(result, MIXED, DATA, cfg, tol=TOL64)
    assert list(result.history.step) == [3, 6, 8]
    assert (result.history.penalty[:, 2] > 0).all() and (result.history.penalty[:, 4] > 0).all()
    assert (result.history.penalty[:, [0, 1, 3, 5, 6, 7, 8]] == 0).all()


def test_members_with_pytorchs_default_leaky_relu_follow_their_loops():
    """activation="leaky_relu_0.01": nn.LeakyReLU()'s slope, as Song & Ermon's released networks use it."""
    cfg = EnsembleConfig(optimiser="rmsprop", dtype="float64", activation="leaky_relu_0.01", **CFG)
    result = train_ensemble(MIXED, DATA, cfg, progress=False)
    check_against_reference(result, MIXED, DATA, cfg, tol=TOL64)
    # the slope is the only difference from the default: the same members end elsewhere with 0.2
    default = train_ensemble(MIXED[:1], DATA, dataclasses.replace(cfg, activation="leaky_relu"), progress=False)
    assert not torch.allclose(default.generator.weights[1][0], result.generator.weights[1][0])
    # it survives saving, loading and joining
    loaded = EnsembleResult.from_state_dict(result.state_dict())
    assert loaded.config.activation == "leaky_relu_0.01" and loaded.critic.activation == "leaky_relu_0.01"
    probe = blobs(16, 5).double()
    torch.testing.assert_close(loaded.critic_values(probe), result.critic_values(probe), rtol=0, atol=0)
    with pytest.raises(ValueError, match="activation="):
        EnsembleConfig(steps=1, activation="leaky")


def test_members_taking_batches_in_the_datas_order_follow_their_loops():
    """shuffle=False: every epoch the batches in the data's own order, as a DataLoader without shuffle."""
    cfg = EnsembleConfig(optimiser="adam", betas=(0.5, 0.9), dtype="float64", shuffle=False,
                         **{**CFG, "steps": 6, "batch_size": 64})  # 150 points: 3 batches an epoch, 2 epochs
    result = train_ensemble(MIXED, DATA, cfg, progress=False)
    check_against_reference(result, MIXED, DATA, cfg, tol=TOL64)
    shuffled = train_ensemble(MIXED[:1], DATA, dataclasses.replace(cfg, shuffle=True), progress=False)
    assert not torch.allclose(shuffled.generator.weights[1][0], result.generator.weights[1][0])
    with pytest.raises(ValueError, match="shuffle="):
        EnsembleConfig(steps=1, shuffle=1)


def test_members_scoring_real_and_generated_batches_in_two_calls_follow_their_loops():
    """separate_critic_calls=True: D(real) then D(fake), a power iteration each for spectral norm,
    as Song & Ermon's released loop does; members without spectral norm get the numbers of one call."""
    cfg = EnsembleConfig(optimiser="rmsprop", dtype="float64", separate_critic_calls=True, **CFG)
    result = train_ensemble(MIXED, DATA, cfg, progress=False)
    check_against_reference(result, MIXED, DATA, cfg, tol=TOL64)
    joint = train_ensemble(MIXED, DATA, dataclasses.replace(cfg, separate_critic_calls=False), progress=False)
    for k, spec in enumerate(MIXED):  # one call on 2n rows or two on n: the same numbers up to rounding
        moved = max(float((a[k] - b[k]).abs().max()) for a, b in zip(result.critic.weights, joint.critic.weights))
        assert (moved > 1e-6) if spec.regulariser == "spectral_norm" else (moved < 1e-11), (k, spec.regulariser, moved)
    loaded = EnsembleResult.from_state_dict(result.state_dict())
    assert loaded.config.separate_critic_calls is True
    with pytest.raises(ValueError, match="separate_critic_calls="):
        EnsembleConfig(steps=1, separate_critic_calls="yes")


def test_float32_members_follow_their_loops():
    """In float32, to float tolerance, for losses whose gradients have no identically-zero entries."""
    specs = [MIXED[0], MemberSpec("non_saturating", seed=21, regulariser="spectral_norm", lr_d=2e-3, dataset="b"),
             MIXED[4], MIXED[6], MemberSpec("non_saturating", seed=22, regulariser="gp", lr_g=2e-3, dataset="a")]
    cfg = EnsembleConfig(**CFG)
    check_against_reference(train_ensemble(specs, DATA, cfg, progress=False), specs, DATA, cfg,
                            tol=1e-5)  # observed <= 5e-6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_default_dtype_changes_nothing(dtype):
    """Every draw is made in float32 from the member's own generator, whatever torch's default dtype
    (under a float64 default the same seed used to draw a different stream, hence other networks)."""
    cfg = EnsembleConfig(**CFG, dtype=dtype)
    runs = []
    for default in (torch.float32, torch.float64):
        before = torch.get_default_dtype()
        torch.set_default_dtype(default)
        try:
            runs.append(train_ensemble(MIXED[:3], DATA, cfg, progress=False))
        finally:
            torch.set_default_dtype(before)
    for a, b in zip(runs[0].generator.parameters(), runs[1].generator.parameters()):
        assert a.dtype == b.dtype == getattr(torch, dtype)
        assert torch.equal(a, b)
    assert torch.equal(runs[0].sample(64, seed=1), runs[1].sample(64, seed=1))


def test_compiled_losses_follow_the_plain_pytorch_loop(monkeypatch):
    """``compile_losses=True``: the nine mixed members (eight loss groups, not stored group by group)
    with their losses fused by torch.compile still follow the hand-written single-model loop."""
    if shutil.which("g++") is None and shutil.which("c++") is None:  # `make test` installs g++ where it can
        pytest.skip("torch.compile's CPU backend needs a C++ compiler (g++ or c++); none is on PATH")
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        pytest.skip(f"torch.compile's CPU backend needs the Python headers; no Python.h in {sysconfig.get_paths()['include']}")
    from gan_lib.train import ensemble as ens

    monkeypatch.setattr(ens, "_COMPILED_LOSSES", OrderedDict())  # so that this run compiles its own
    cfg = EnsembleConfig(optimiser="rmsprop", dtype="float64", compile_losses=True, **{**CFG, "steps": 4})
    result = train_ensemble(MIXED, DATA, cfg, progress=False)
    assert len(ens._COMPILED_LOSSES) == 1  # the compiled path ran (not the group-by-group one)
    check_against_reference(result, MIXED, DATA, cfg, tol=TOL64)


def test_compile_losses_says_what_it_cannot_do(monkeypatch):
    from gan_lib.losses import registry
    from gan_lib.train import ensemble as ens

    # a failure inside torch.compile is said in plain words, with what to do
    def no_compiler(fn, **kwargs):
        def fail(*args):
            raise torch._dynamo.exc.TorchDynamoException("no working C++ compiler")  # the base of its failures
        return fail

    monkeypatch.setattr(ens, "_COMPILED_LOSSES", OrderedDict())
    monkeypatch.setattr(torch, "compile", no_compiler)
    cfg = EnsembleConfig(compile_losses=True, **{**CFG, "steps": 1})
    with pytest.raises(RuntimeError, match=r"compile_losses=True: torch.compile could not compile .*compile_losses=False"):
        train_ensemble(MIXED[:2], DATA, cfg, progress=False)
    # a batch-statistic loss without a row-wise form cannot be compiled: refused before training
    registry.register_fixed("test_rowless", "test", "none", registry.LossParts(
        lambda d_real, d_fake, **_: (d_fake - d_real.mean()).mean(), lambda d_fake, **_: -d_fake.mean(), "d", "g"),
        "a test loss", batch_statistics=True)
    try:
        with pytest.raises(ValueError, match=r"compile_losses=True needs losses with a row-wise form.*test_rowless"):
            train_ensemble([MemberSpec("test_rowless", seed=1, dataset="a")], DATA, cfg, progress=False)
    finally:
        del registry._SPECS["test_rowless"]


def test_full_width_losses_keep_other_members_rows_out_of_the_gradients():
    """The compiled path evaluates every group's loss on all rows and keeps each member's own row;
    a WGAN critic value of 1e4 (``exp`` of it is inf in float32) beside an f-GAN KL member must not
    reach the f-GAN's terms: values and gradients equal the group-by-group evaluation's, all finite."""
    from gan_lib.train.ensemble import _full_width_loss_functions, _group_losses, _GroupSplit, _loss_functions

    members = [MemberSpec("wgan", seed=0), MemberSpec("fgan_kl", seed=1), MemberSpec("kl_hinge", seed=2),
               MemberSpec("wgan", seed=3), MemberSpec("ragan", seed=4)]
    groups = _group_losses(members)
    split = _GroupSplit(groups, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    out = torch.randn(5, 2 * 16, generator=g)
    out[0] = 1e4  # the first WGAN member's critic: far outside exp's float32 range
    d_real = torch.randn(5, 16, generator=g)
    results = []
    for fns in (_loss_functions(groups, split), _full_width_loss_functions(groups, split, 5, torch.device("cpu"))):
        x = out.clone().requires_grad_(True)
        d_vec = fns[0](x)
        (grad_d,) = torch.autograd.grad(d_vec.sum(), x)
        fake = out[:, 16:].clone().requires_grad_(True)
        g_vec = fns[1](fake, d_real)
        (grad_g,) = torch.autograd.grad(g_vec.sum(), fake)
        results.append((d_vec.detach(), grad_d, g_vec.detach(), grad_g))
    for by_group, full_width in zip(*results):
        assert torch.isfinite(full_width).all()
        torch.testing.assert_close(full_width, by_group, rtol=1e-6, atol=1e-6)


def test_reordering_and_splitting_change_nothing(mixed_run):
    cfg, full = mixed_run
    order = [4, 0, 8, 2, 6, 1, 7, 3, 5]
    shuffled = train_ensemble([MIXED[i] for i in order], DATA, cfg, progress=False)
    part_a = train_ensemble(MIXED[:4], DATA, cfg, progress=False)
    part_b = train_ensemble(MIXED[4:], DATA, cfg, progress=False)
    joined = concat_results([part_b, part_a], positions=[range(4, 9), range(4)])
    assert joined.members == tuple(MIXED)
    for other, index in ((shuffled, order), (joined, list(range(9)))):
        for layer in range(cfg.depth + 1):
            for a, b in ((full.generator.weights, other.generator.weights), (full.critic.weights, other.critic.weights),
                         (full.critic.biases, other.critic.biases), (full.generator.biases, other.generator.biases)):
                torch.testing.assert_close(b[layer], a[layer][index], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(other.history.g_loss, full.history.g_loss[:, index], rtol=1e-6, atol=1e-7)


def test_rmsprop_first_step_is_ten_learning_rates_per_member():
    """RMSprop's first step from a zero average is lr g / (sqrt(0.01 g^2) + eps) = 10 lr sign(g)."""
    x = blobs(64, 3)
    specs = [MemberSpec("non_saturating", seed=5, lr_d=1e-4, lr_g=7e-4),
             MemberSpec("non_saturating", seed=5, lr_d=6e-4, lr_g=2e-4)]
    cfg = EnsembleConfig(batch_size=64, n_critic=1, steps=1, width=16, log_every=1)
    before = train_ensemble(specs, x, cfg, progress=False)
    # the same seed: both members start equal, so their initial parameters are member 0's at init
    gen = torch.Generator().manual_seed(5)
    g0 = mlp_from(gen, [2, 16, 16, 2])
    d0 = mlp_from(gen, [2, 16, 16, 1])
    got = member_params(before, 0), member_params(before, 1)
    for k, spec in enumerate(specs):
        for name, net, lr in (("G", g0, spec.lr_g), ("D_raw", d0, spec.lr_d)):
            moved = torch.cat([(a - p.detach()).abs().flatten() for a, p in zip(got[k][name], net.parameters())])
            # elements whose gradient is tiny (|g| <~ 1e-6) take a smaller step; the median is exact
            assert float(moved.median()) / lr == pytest.approx(10.0, rel=1e-3), (k, name)


@pytest.mark.parametrize("kind", ["rmsprop", "adam"])
def test_stacked_optimisers_match_torch_optim_member_by_member(kind):
    gen = torch.Generator().manual_seed(0)
    lrs = [1e-3, 3e-2, 5e-4]
    p = torch.randn(3, 4, 5, generator=gen)
    q = torch.randn(3, 1, 5, generator=gen)
    mine = [p.clone(), q.clone()]
    opt = StackedRMSprop(mine, lrs) if kind == "rmsprop" else StackedAdam(mine, lrs, betas=(0.5, 0.99))
    refs = []
    for k, lr in enumerate(lrs):
        params = [p[k].clone().requires_grad_(True), q[k].clone().requires_grad_(True)]
        o = torch.optim.RMSprop(params, lr=lr) if kind == "rmsprop" else torch.optim.Adam(params, lr=lr, betas=(0.5, 0.99))
        refs.append((params, o))
    for _ in range(6):
        grads = [torch.randn(3, 4, 5, generator=gen), torch.randn(3, 1, 5, generator=gen)]
        opt.step(grads)
        for k, (params, o) in enumerate(refs):
            for prm, g in zip(params, grads):
                prm.grad = g[k].clone()
            o.step()
    for k, (params, _) in enumerate(refs):
        torch.testing.assert_close(mine[0][k], params[0].detach(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(mine[1][k], params[1].detach(), rtol=1e-6, atol=1e-7)


def test_epochs_and_sampling():
    x = blobs(100, 4)
    cfg = EnsembleConfig(batch_size=32, n_critic=1, epochs=2, width=8, log_every=100)
    result = train_ensemble([MemberSpec("hinge", seed=1), MemberSpec("wgan", seed=2, regulariser="clip")], x, cfg,
                            progress=False)
    assert result.steps == 8  # 2 epochs of ceil(100 / 32) = 4 batches
    assert list(result.history.step) == [8]
    samples = result.sample(50, seed=3)
    assert samples.shape == (2, 50, 2)
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(samples[1], result.member(1)[0](z))
    # clipping holds every critic parameter of the clipped member inside [-0.01, 0.01]
    assert max(float(w.detach()[1].abs().max()) for w in [*result.critic.weights, *result.critic.biases]) <= 0.01


def test_member_specs_are_values():
    """A spec keeps its own copy of the loss options (a later change to the caller's dict does not
    reach it past validation) and can be hashed; equal specs are equal whatever dict they came from."""
    options = {"clamp": True}
    spec = MemberSpec("fgan_kl", seed=1, loss_options=options)
    options["nope"] = 1   # would be refused at construction
    assert dict(spec.loss_options) == {"clamp": True}
    twin = MemberSpec("fgan_kl", seed=1, loss_options={"clamp": True})
    assert spec == twin and hash(spec) == hash(twin) and len({spec, twin}) == 1
    assert spec != MemberSpec("fgan_kl", seed=1, loss_options={"clamp": False})
    assert {spec: "a"}[twin] == "a"
    # the spec's own options refuse changes (they were validated), naming the way to another spec
    for change in (lambda o: o.__setitem__("nope", 1), lambda o: o.update(nope=1), lambda o: o.pop("clamp"),
                   lambda o: o.setdefault("nope", 1), lambda o: o.clear(), lambda o: o.__delitem__("clamp"),
                   lambda o: o.popitem(), lambda o: o.__ior__({"nope": 1})):
        with pytest.raises(TypeError, match=r"cannot be changed.*dataclasses\.replace"):
            change(spec.loss_options)
    assert spec.loss_options == {"clamp": True} and spec == twin
    # and still copy, pickle and save as the dict they hold
    for again in (copy.deepcopy(spec), copy.copy(spec), pickle.loads(pickle.dumps(spec))):
        assert again == spec and again.loss_options == {"clamp": True}
    changed = dataclasses.replace(spec, loss_options={"clamp": False})
    assert changed.loss_options == {"clamp": False} and spec.loss_options == {"clamp": True}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MemberSpec("no_such_loss", seed=0), "unknown loss"),
        (lambda: MemberSpec("hinge", seed=0, regulariser="dropout"), "regulariser"),
        (lambda: MemberSpec("hinge", seed=0, lr_d=-1.0), "lr_d"),
        (lambda: MemberSpec("hinge", seed=-3), "seed"),
        (lambda: MemberSpec("fgan_kl", seed=0, loss_options={"nope": 1}), "no option"),
        (lambda: EnsembleConfig(steps=3, epochs=2), "exactly one"),
        (lambda: EnsembleConfig(), "exactly one"),
        (lambda: EnsembleConfig(steps=3, optimiser="sgd"), "optimiser"),
        (lambda: EnsembleConfig(steps=3, batch_size=0), "batch_size"),
        (lambda: EnsembleConfig(steps=3, betas=(0.5, 1.0)), "betas"),
        (lambda: EnsembleConfig(steps=3, compile_losses="yes"), "compile_losses='yes' must be True or False"),
    ],
)
def test_bad_specifications_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_data_is_refused():
    cfg = EnsembleConfig(steps=1, width=4)
    one = [MemberSpec("hinge", seed=0)]
    with pytest.raises(ValueError, match="shape"):
        train_ensemble(one, torch.zeros(10), cfg, progress=False)
    bad = torch.zeros(10, 2)
    bad[3, 1], bad[7, 0] = float("nan"), float("inf")
    with pytest.raises(ValueError, match="2 of its 20 values are nan or inf"):
        train_ensemble(one, bad, cfg, progress=False)
    with pytest.raises(ValueError, match="dtype torch.int64; it must hold finite floating-point"):
        train_ensemble(one, torch.ones(10, 2, dtype=torch.long), cfg, progress=False)
    with pytest.raises(ValueError, match="not keys"):
        train_ensemble([MemberSpec("hinge", seed=0, dataset="x")], {"y": torch.zeros(10, 2)}, cfg, progress=False)
    with pytest.raises(ValueError, match="same"):
        train_ensemble([MemberSpec("hinge", seed=0), MemberSpec("hinge", seed=1)],
                       [torch.zeros(10, 2), torch.zeros(12, 2)], cfg, progress=False)
    with pytest.raises(ValueError, match="one per member"):
        train_ensemble(one * 2, [torch.zeros(10, 2)], cfg, progress=False)
    with pytest.raises(ValueError, match="empty"):
        train_ensemble([], torch.zeros(10, 2), cfg, progress=False)
    with pytest.raises(TypeError, match="MemberSpec"):
        train_ensemble(["hinge"], torch.zeros(10, 2), cfg, progress=False)


def test_a_batch_statistic_loss_without_a_row_form_still_follows_its_loop():
    """A user's batch-statistic loss that registers no row-wise form goes through vmap (or the loop
    over members), next to the library's own batch-statistic losses and their row-wise forms."""
    from gan_lib.losses import registry

    def discriminator(d_real, d_fake, **_):  # each side against the other side's batch mean
        return F.relu(1.0 - (d_real - d_fake.mean())).mean() + F.relu(1.0 + (d_fake - d_real.mean())).mean()

    def generator(d_fake, **_):
        return F.softplus(d_fake.mean() - d_fake).mean() - d_fake.mean()

    name = "test_centred_hinge"
    registry.register_fixed(name, "test", "none", registry.LossParts(discriminator, generator, "d", "g"),
                            "a test loss", batch_statistics=True)
    try:
        assert not losses.get(name).has_rows
        specs = [MemberSpec(name, seed=31, lr_d=2e-3, lr_g=2e-3, dataset="a"),
                 MemberSpec("ragan", seed=32, lr_d=2e-3, dataset="b"),
                 MemberSpec("chi2_hinge", seed=33, regulariser="spectral_norm", lr_d=3e-3, dataset="a"),
                 MemberSpec(name, seed=34, lr_d=1e-3, lr_g=3e-3, dataset="b")]
        cfg = EnsembleConfig(optimiser="rmsprop", dtype="float64", **CFG)
        check_against_reference(train_ensemble(specs, DATA, cfg, progress=False), specs, DATA, cfg, tol=TOL64)
    finally:
        del registry._SPECS[name]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_noise_draw_per_generator_step_is_the_per_step_draws_when_n_z_is_a_multiple_of_16(dtype):
    # the module docstring's claim: randn(n_critic + 1, n, z) in one call gives the numbers that
    # n_critic + 1 calls of randn(n, z) give, when n * z is a multiple of 16 (torch's block of normals)
    for n, z in [(256, 2), (136, 2), (8, 2), (100, 4)]:
        one = torch.randn(6, n, z, generator=torch.Generator().manual_seed(3), dtype=dtype)
        g = torch.Generator().manual_seed(3)
        assert torch.equal(one, torch.stack([torch.randn(n, z, generator=g, dtype=dtype) for _ in range(6)]))
    one = torch.randn(6, 5, 3, generator=torch.Generator().manual_seed(3), dtype=dtype)
    g = torch.Generator().manual_seed(3)
    assert not torch.equal(one, torch.stack([torch.randn(5, 3, generator=g, dtype=dtype) for _ in range(6)]))


def test_bad_inputs_are_refused_naming_them():
    x = torch.randn(32, 2)
    cfg = EnsembleConfig(batch_size=16, n_critic=1, steps=1, width=4)
    # finite in float64 but beyond float32, the training dtype: refused instead of training on inf
    with pytest.raises(ValueError, match=r"beyond the range of torch.float32"):
        train_ensemble([MemberSpec("hinge", seed=0)], x.double() * 1e39, cfg, progress=False)
    with pytest.raises(ValueError, match=r"members \[1\] name no dataset"):
        train_ensemble([MemberSpec("hinge", seed=0, dataset="a"), MemberSpec("hinge", seed=1)], {"a": x}, cfg,
                       progress=False)
    result = train_ensemble([MemberSpec("hinge", seed=0)], x, cfg, progress=False)
    with pytest.raises(TypeError, match=r"results\[1\] is a str"):
        concat_results([result, "result"])
    with pytest.raises(ValueError, match="positions must be integers"):
        concat_results([result], [[0.5]])
    assert len(concat_results([result, result], torch.tensor([[1], [0]]))) == 2  # integer tensors are integers
    # betas given as a list: stored as a tuple, so the frozen config stays hashable and comparable
    listed = EnsembleConfig(steps=1, betas=[0.5, 0.9])
    assert listed.betas == (0.5, 0.9) and hash(listed) == hash(EnsembleConfig(steps=1, betas=(0.5, 0.9)))
