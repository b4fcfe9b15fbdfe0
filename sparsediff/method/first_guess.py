"""The first guess: a cheap estimate of the gaps from the shown points only.

The v2 method (DESIGN §3) learns the *departure* from a classical first guess,
which is also an input channel of the networks: a model that has learned
nothing reproduces the guess exactly. The guesses are batched torch code that
runs on the model's device, 2D or 3D, computed from the shown points alone
(never from hidden truth), and registered by name in
[`FIRST_GUESSES`][FIRST_GUESSES], the one list of names that training configs
and model specs are checked against; adding a guess is one function and one
[`register_first_guess`][register_first_guess] call. The built-in ones:

``"laplace"``: [`harmonic_fill`][sparsediff.laplace.relaxation.harmonic_fill]
    Laplace relaxation: the harmonic interpolant of the shown values (the
    classical "Laplace relaxation of the anomaly around climatology" when the
    input is an anomaly), by the torch backend of
    [`sparsediff.laplace`][sparsediff.laplace] (a coarse-to-fine Jacobi
    cascade refined by conjugate gradients). Known points are Dirichlet
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
from sparsediff.laplace.relaxation import check_grid, harmonic_fill, periodic_flags

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


def _gauss_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float, periodic: tuple[bool, ...]) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, *spatial)`` (zero outside non-periodic edges).

    The kernel reaches ``ceil(3 sigma)`` points each side and sums to 1; a
    periodic dim wraps.
    """
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
        As for [`harmonic_fill`][sparsediff.laplace.relaxation.harmonic_fill].
    scales
        Gaussian standard deviations in grid points, increasing.
    support
        Blurred-mask level above which a scale is trusted.

    Returns
    -------
    torch.Tensor
        As for [`harmonic_fill`][sparsediff.laplace.relaxation.harmonic_fill].
    """
    nd = check_grid(values, known, active)
    wrap = periodic_flags(periodic, nd)
    act = torch.ones_like(known, dtype=torch.bool) if active is None else active.bool()
    k = (known.bool() & act).to(values.dtype)
    clean = torch.where(k > 0, values, torch.zeros_like(values))
    dims = tuple(range(2, values.ndim))
    est = (clean * k).sum(dims, keepdim=True) / k.sum(dims, keepdim=True).clamp_min(1.0)
    est = est.expand_as(values)
    # coarse to fine: a finer scale overrides where it has support
    for sigma in sorted((float(s) for s in scales), reverse=True):
        num = gaussian_blur(clean * k, sigma, wrap)
        den = gaussian_blur(k, sigma, wrap)
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
        As for [`harmonic_fill`][sparsediff.laplace.relaxation.harmonic_fill]
        (``periodic`` is not needed).

    Returns
    -------
    torch.Tensor
        As for [`harmonic_fill`][sparsediff.laplace.relaxation.harmonic_fill].
    """
    check_grid(values, known, active)
    act = torch.ones_like(known, dtype=torch.bool) if active is None else active.bool()
    keep = known.bool() & act
    return torch.where(keep, values, torch.zeros_like(values))


GuessFunction = Callable[..., torch.Tensor]
"""A first guess: ``fn(values, known, active, *, periodic) -> Tensor`` (see
[`harmonic_fill`][sparsediff.laplace.relaxation.harmonic_fill] for the contract)."""


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
