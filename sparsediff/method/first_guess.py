"""The first guess: a cheap estimate of the gaps from the shown points only.

The v2 method (DESIGN §3) learns the *departure* from a classical first guess,
which is also an input channel of the networks: a model that has learned
nothing reproduces the guess exactly. The guesses are batched torch code that
runs on the model's device, 2D or 3D, computed from the shown points alone
(never from hidden truth), and registered by name in
[`FIRST_GUESSES`][FIRST_GUESSES], the one list of names that training configs
and model specs are checked against; adding a guess is one function and one
[`register_first_guess`][register_first_guess] call. The built-in ones:

``"laplace"``: [`harmonic_fill`][harmonic_fill]
    Laplace relaxation: the harmonic interpolant of the shown values (the
    classical "Laplace relaxation of the anomaly around climatology" when the
    input is an anomaly), solved by a coarse-to-fine cascade (full multigrid
    without V-cycles): each level starts from the upsampled solution of the
    level below and is smoothed with Jacobi sweeps. Known points are Dirichlet
    values; window edges and inactive (invalid) points are zero-flux; a
    periodic dim (global longitude) wraps.
``"normconv"``: [`normalized_convolution`][normalized_convolution]
    Masked Gaussian blur divided by the blurred mask, over a few scales, the
    finest scale with enough support winning (Knutsson & Westin 1993).
``"zero"``: [`zero_guess`][zero_guess]
    No guess: 0 at every point not shown (the model learns the field itself).

All return the shown values unchanged at shown points (bit for bit) and
leave inactive points at 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sparsediff.errors import ConfigError, InputError

__all__ = [
    "FIRST_GUESSES",
    "FirstGuess",
    "GuessFunction",
    "check_first_guess",
    "first_guess",
    "get_first_guess",
    "harmonic_fill",
    "normalized_convolution",
    "register_first_guess",
    "zero_guess",
]


def _check(values: torch.Tensor, known: torch.Tensor, active: torch.Tensor | None) -> int:
    nd = values.ndim - 2
    if nd not in (2, 3):
        raise InputError(f"first guess needs (N, C, *spatial) with 2 or 3 spatial dims, got {nd}")
    if known.shape != values.shape or (active is not None and active.shape != values.shape):
        raise InputError(
            "first guess: values, known and active must share one shape, got "
            f"{tuple(values.shape)}, {tuple(known.shape)}, "
            f"{None if active is None else tuple(active.shape)}"
        )
    return nd


def _periodic(periodic: Sequence[bool] | None, nd: int) -> tuple[bool, ...]:
    out = (False,) * nd if periodic is None else tuple(bool(p) for p in periodic)
    if len(out) != nd:
        raise InputError(f"periodic has {len(out)} entries for {nd} spatial dims")
    return out


def _neighbour_sum(u: torch.Tensor, w: torch.Tensor, periodic: tuple[bool, ...]) -> torch.Tensor:
    """Sum over the 2·nd grid neighbours of ``u * w`` (zero outside non-periodic edges)."""
    uw = u * w
    total = torch.zeros_like(uw)
    for ax, wrap in enumerate(periodic):
        dim = 2 + ax
        n = u.shape[dim]
        if n == 1:
            continue
        if wrap:
            total += torch.roll(uw, 1, dim)
            total += torch.roll(uw, -1, dim)
        else:
            total.narrow(dim, 1, n - 1).add_(uw.narrow(dim, 0, n - 1))
            total.narrow(dim, 0, n - 1).add_(uw.narrow(dim, 1, n - 1))
    return total


def _pool2(x: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Sum-pool by ``factors`` (1 or 2 per spatial dim; ceil: a last odd row pools alone)."""
    nd = x.ndim - 2
    pad: list[int] = []
    for s, f in zip(reversed(x.shape[2:]), reversed(factors), strict=True):
        pad += [0, s % f]
    x = F.pad(x, pad)
    pool = F.avg_pool2d if nd == 2 else F.avg_pool3d
    k = tuple(int(f) for f in factors)
    return pool(x, k) * math.prod(k)


def _upsample(x: torch.Tensor, shape: Sequence[int], factors: Sequence[int]) -> torch.Tensor:
    """Nearest-neighbour upsampling by ``factors``, cropped to ``shape``."""
    for ax, f in enumerate(factors):
        if f > 1:
            x = x.repeat_interleave(int(f), dim=2 + ax)
    index = tuple(slice(0, s) for s in shape)
    return x[(slice(None), slice(None), *index)]


def _jacobi(
    u: torch.Tensor,
    fixed: torch.Tensor,
    active: torch.Tensor,
    periodic: tuple[bool, ...],
    sweeps: int,
) -> torch.Tensor:
    w = active.to(u.dtype)
    count = _neighbour_sum(torch.ones_like(u), w, periodic)
    free = active & ~fixed & (count > 0)
    inv = 1.0 / count.clamp_min(1.0)
    for _ in range(sweeps):
        new = _neighbour_sum(u, w, periodic) * inv
        u = torch.where(free, new, u)
    return u


def _cascade(
    values: torch.Tensor,
    known: torch.Tensor,
    active: torch.Tensor,
    periodic: tuple[bool, ...],
    sweeps: int,
    coarsest: int,
) -> torch.Tensor:
    spatial = values.shape[2:]
    if max(spatial) <= coarsest:
        # the coarsest level: start from the mean of the known points (per sample, channel)
        k = known.to(values.dtype)
        dims = tuple(range(2, values.ndim))
        mean = (values * k).sum(dims, keepdim=True) / k.sum(dims, keepdim=True).clamp_min(1.0)
        u = torch.where(known, values, mean.expand_as(values))
        return _jacobi(u, known, active, periodic, 4 * sweeps)
    # coarsen only the dims that are still long (anisotropic grids keep converging)
    factors = [2 if s > coarsest else 1 for s in spatial]
    k = known.to(values.dtype)
    weight = _pool2(k, factors)
    coarse_known = weight > 0
    coarse_values = _pool2(values * k, factors) / weight.clamp_min(1.0)
    coarse_active = _pool2(active.to(values.dtype), factors) > 0
    coarse = _cascade(coarse_values, coarse_known, coarse_active, periodic, sweeps, coarsest)
    u = torch.where(known, values, _upsample(coarse, spatial, factors))
    return _jacobi(u, known, active, periodic, sweeps)


def harmonic_fill(
    values: torch.Tensor,
    known: torch.Tensor,
    active: torch.Tensor | None = None,
    *,
    periodic: Sequence[bool] | None = None,
    sweeps: int = 24,
    coarsest: int = 4,
    cg_iters: int = 200,
    tol: float = 1e-4,
) -> torch.Tensor:
    """Harmonic (Laplace) interpolation of the known points, batched.

    Parameters
    ----------
    values
        ``(N, C, *spatial)`` with 2 or 3 spatial dims; values at unknown points
        are ignored (NaN is fine).
    known
        Same shape, bool: the Dirichlet points (the shown values).
    active
        Same shape, bool: points that belong to the domain (default: all).
        Inactive points are zero-flux walls and come back as 0.
    periodic
        Per spatial dim, whether it wraps around (a global longitude).
    sweeps
        Jacobi sweeps per level of the coarse-to-fine cascade (4× at the
        coarsest level).
    coarsest
        Dims longer than this are halved level by level (each dim on its
        own, so elongated grids coarsen fully); the cascade stops when every
        dim is this short.
    cg_iters, tol
        Conjugate-gradient refinement of the cascade's result (at most
        ``cg_iters`` iterations, until the residual is below ``tol`` times
        the largest known value): the cascade alone is close for small gaps
        but not converged across large ones.

    Returns
    -------
    torch.Tensor
        ``values`` at known points (bit for bit), the harmonic estimate at
        the other active points, 0 at inactive points. A sample/channel with
        no known point comes back 0 at every active point.
    """
    nd = _check(values, known, active)
    wrap = _periodic(periodic, nd)
    known = known.bool()
    act = torch.ones_like(known) if active is None else active.bool()
    known = known & act
    clean = torch.where(known, values, torch.zeros_like(values))
    out = _cascade(clean, known, act, wrap, int(sweeps), int(coarsest))
    if cg_iters:
        out = _conjugate_gradients(out, known, act, wrap, int(cg_iters), float(tol))
    out = torch.where(known, values, out)
    return torch.where(act, out, torch.zeros_like(out))


def _conjugate_gradients(
    u: torch.Tensor,
    known: torch.Tensor,
    active: torch.Tensor,
    periodic: tuple[bool, ...],
    iters: int,
    tol: float,
) -> torch.Tensor:
    """Refine ``u`` on the free points with Jacobi-preconditioned conjugate gradients.

    The discrete Laplace equation at every free point (active, not known):
    ``count * u_i - sum(active neighbours u_j) = 0`` with the known points as
    Dirichlet values; one independent system per sample and channel, solved
    together in float64. A system stops (is frozen) once its residual is below
    ``tol`` times the scale of its known values: iterating a converged system
    further only amplifies rounding.
    """
    dtype = u.dtype
    u = u.double()
    w = active.double()
    count = _neighbour_sum(torch.ones_like(u), w, periodic)
    free = active & ~known & (count > 0)
    f = free.double()
    dims = tuple(range(2, u.ndim))

    def apply(x: torch.Tensor) -> torch.Tensor:  # the operator on free points (x = 0 elsewhere)
        return f * (count * x - _neighbour_sum(x, w, periodic))

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum(dims, keepdim=True)

    # b - A u with the Dirichlet values in b: the residual of the full equation at free points
    r = f * (_neighbour_sum(u, w, periodic) - count * u)
    inv_diag = f / count.clamp_min(1.0)
    z = inv_diag * r
    p = z
    rz = dot(r, z)
    known_scale = torch.where(known, u, torch.zeros_like(u)).abs().amax(dims, keepdim=True)
    limit = tol * (known_scale + 1e-12)
    for _ in range(iters):
        running = r.abs().amax(dims, keepdim=True) > limit
        if not bool(running.any()):
            break
        ap = apply(p)
        pap = dot(p, ap)
        ok = running & (pap > 0)
        alpha = torch.where(ok, rz / torch.where(ok, pap, torch.ones_like(pap)), 0.0)
        u = u + alpha * p
        r = r - alpha * ap
        z = inv_diag * r
        rz_new = dot(r, z)
        good = ok & (rz > 0)
        beta = torch.where(good, rz_new / torch.where(good, rz, torch.ones_like(rz)), 0.0)
        p = torch.where(ok, z + beta * p, p)
        rz = torch.where(ok, rz_new, rz)
    return u.to(dtype)


def _gauss_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(x: torch.Tensor, sigma: float, periodic: tuple[bool, ...]) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, *spatial)`` (zero outside non-periodic edges)."""
    nd = x.ndim - 2
    kernel = _gauss_kernel(sigma, x.dtype, x.device)
    r = (kernel.numel() - 1) // 2
    n, c = x.shape[:2]
    conv = F.conv2d if nd == 2 else F.conv3d
    h = x.reshape(n * c, 1, *x.shape[2:])
    for ax, wrap in enumerate(periodic):
        shape = [1, 1] + [1] * nd
        shape[2 + ax] = kernel.numel()
        pad = [0, 0] * nd
        pad[2 * (nd - 1 - ax)] = r
        pad[2 * (nd - 1 - ax) + 1] = r
        if wrap:
            size = h.shape[2 + ax]
            reps = math.ceil(r / size)
            parts = [h] * (2 * reps + 1)
            big = torch.cat(parts, dim=2 + ax)
            start = reps * size - r
            h = big.narrow(2 + ax, start, size + 2 * r)
        else:
            h = F.pad(h, pad)
        h = conv(h, kernel.view(shape))
    return h.reshape(n, c, *x.shape[2:])


def normalized_convolution(
    values: torch.Tensor,
    known: torch.Tensor,
    active: torch.Tensor | None = None,
    *,
    periodic: Sequence[bool] | None = None,
    scales: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
    support: float = 0.1,
) -> torch.Tensor:
    """Normalized convolution of the known points over several scales, batched.

    At each point the estimate of the finest scale whose blurred mask reaches
    ``support`` is used, blended smoothly with the next coarser one; beyond
    the coarsest scale, the coarsest estimate (or the mean of the known points).

    Parameters
    ----------
    values, known, active, periodic
        As for [`harmonic_fill`][harmonic_fill].
    scales
        Gaussian standard deviations in grid points, increasing.
    support
        Blurred-mask level above which a scale is trusted.

    Returns
    -------
    torch.Tensor
        As for [`harmonic_fill`][harmonic_fill].
    """
    nd = _check(values, known, active)
    wrap = _periodic(periodic, nd)
    act = torch.ones_like(known, dtype=torch.bool) if active is None else active.bool()
    k = (known.bool() & act).to(values.dtype)
    clean = torch.where(k > 0, values, torch.zeros_like(values))
    dims = tuple(range(2, values.ndim))
    est = (clean * k).sum(dims, keepdim=True) / k.sum(dims, keepdim=True).clamp_min(1.0)
    est = est.expand_as(values)
    # coarse to fine: a finer scale overrides where it has support
    for sigma in sorted((float(s) for s in scales), reverse=True):
        num = _blur(clean * k, sigma, wrap)
        den = _blur(k, sigma, wrap)
        local = num / den.clamp_min(1e-12)
        trust = (den / support).clamp(0.0, 1.0)
        est = trust * local + (1.0 - trust) * est
    out = torch.where(k > 0, values, est)
    return torch.where(act, out, torch.zeros_like(out))


def zero_guess(
    values: torch.Tensor,
    known: torch.Tensor,
    active: torch.Tensor | None = None,
    *,
    periodic: Sequence[bool] | None = None,
) -> torch.Tensor:
    """No first guess: the shown values, and 0 at every other point.

    A model with this guess learns the field itself, not a departure.

    Parameters
    ----------
    values, known, active, periodic
        As for [`harmonic_fill`][harmonic_fill] (``periodic`` is not needed).

    Returns
    -------
    torch.Tensor
        As for [`harmonic_fill`][harmonic_fill].
    """
    _check(values, known, active)
    act = torch.ones_like(known, dtype=torch.bool) if active is None else active.bool()
    keep = known.bool() & act
    return torch.where(keep, values, torch.zeros_like(values))


GuessFunction = Callable[..., torch.Tensor]
"""A first guess: ``fn(values, known, active, *, periodic) -> Tensor`` (see
[`harmonic_fill`][harmonic_fill] for the contract)."""


@dataclass(frozen=True)
class FirstGuess:
    """A registered first guess: its name, its function and how it meets context.

    Calling it calls the function.

    Attributes
    ----------
    name
        The name models and configs use (``first_guess: <name>``).
    fn
        The function, ``fn(values, known, active, *, periodic) -> Tensor``: the
        shown values at shown points, an estimate at the other active points,
        0 at inactive points.
    follows_context
        With context frames and ``guess_context``, build the space-time guess
        from it (the mean of the context frames' own guesses plus the guess
        of the departure from it). ``False`` keeps the guess of the step
        alone (``"zero"``: a model without a first guess).
    """

    name: str
    fn: GuessFunction
    follows_context: bool = True

    def __call__(
        self,
        values: torch.Tensor,
        known: torch.Tensor,
        active: torch.Tensor | None = None,
        *,
        periodic: Sequence[bool] | None = None,
    ) -> torch.Tensor:
        return self.fn(values, known, active, periodic=periodic)


FIRST_GUESSES: dict[str, FirstGuess] = {}
"""Registry: first-guess name -> [`FirstGuess`][FirstGuess]. The one list of
first-guess names: model specs and training configs are validated against it."""


def register_first_guess(
    name: str, fn: GuessFunction, *, follows_context: bool = True, replace: bool = False
) -> GuessFunction:
    """Add a first guess to [`FIRST_GUESSES`][FIRST_GUESSES] under ``name``.

    Once registered, the name works everywhere a first-guess name does: the
    ``first_guess`` key of a training config, a model's spec, and
    [`first_guess`][first_guess].

    Parameters
    ----------
    name
        The name (a non-empty string).
    fn
        The function, ``fn(values, known, active, *, periodic) -> Tensor``.
    follows_context
        See [`FirstGuess`][FirstGuess].
    replace
        Allow replacing a registered guess of the same name.

    Returns
    -------
    callable
        ``fn`` itself.

    Raises
    ------
    ConfigError
        An empty name, a function that is not callable, or a name that is
        taken (without ``replace``).
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a first guess needs a non-empty name, got {name!r}")
    if not callable(fn):
        raise ConfigError(f"first guess {name!r}: {fn!r} is not callable")
    old = FIRST_GUESSES.get(name)
    if old is not None and old.fn is not fn and not replace:
        raise ConfigError(f"a first guess named {name!r} is already registered")
    FIRST_GUESSES[name] = FirstGuess(name, fn, follows_context=follows_context)
    return fn


def get_first_guess(name: str) -> FirstGuess:
    """The registered first guess ``name``.

    Raises
    ------
    InputError
        An unknown name (the message lists the registered ones).
    """
    try:
        return FIRST_GUESSES[name]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown first guess {name!r}; registered: {', '.join(FIRST_GUESSES)}"
        ) from None


def check_first_guess(name: str) -> str:
    """``name`` if it is a registered first guess (a pydantic validator of specs and configs).

    Raises
    ------
    InputError
        An unknown name (a ``ValueError``, so pydantic reports it at its key).
    """
    return get_first_guess(name).name


def first_guess(
    name: str,
    values: torch.Tensor,
    known: torch.Tensor,
    active: torch.Tensor | None = None,
    *,
    periodic: Sequence[bool] | None = None,
) -> torch.Tensor:
    """Run the registered first guess ``name`` (``"laplace"``, ``"normconv"``, ``"zero"``, ...)."""
    return get_first_guess(name)(values, known, active, periodic=periodic)


register_first_guess("laplace", harmonic_fill)
register_first_guess("normconv", normalized_convolution)
register_first_guess("zero", zero_guess, follows_context=False)
