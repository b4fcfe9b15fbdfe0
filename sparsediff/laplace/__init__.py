"""The Laplace fill: the harmonic interpolant of the known points, with two backends.

"Laplace relaxation" fills the unknown points of a field so that each is the
mean of its neighbours: the discrete Laplace equation
``n_i u_i - sum_{j ~ i} u_j = 0`` at every unknown point ``i`` over its ``n_i``
active grid neighbours (2 per spatial dim), with the known points as Dirichlet
values, zero flux at domain edges and at inactive (invalid) points, and
periodic dims (a global longitude) wrapping. Around a climatology (the fill of
the anomaly) it is the classical "Laplace relaxation around climatology".

This package owns that equation, solved by two backends that keep their own
numbers:

[`sparsediff.laplace.sparse`][sparsediff.laplace.sparse] (numpy + scipy, torch-free)
    One exact sparse solve per slice in float64 (SuperLU, or conjugate
    gradients for large slices): the classical baseline
    ([`sparsediff.evaluation.baselines.laplace`][sparsediff.evaluation.baselines.laplace]).
[`sparsediff.laplace.relaxation`][sparsediff.laplace.relaxation] (torch)
    Batched on the model's device: a coarse-to-fine Jacobi cascade refined
    by conjugate gradients; the method's ``"laplace"`` first guess and the
    training climatology's completed fields.

Importing this package imports neither backend; the torch one sits a layer
above the data layer (``tests/test_layers.py``), so ``sparsediff.data`` never
reaches torch through it.
"""

from __future__ import annotations
