"""ESTAG's equivariant discrete Fourier transform (EDFT): invariant spectral features of motion.

Each node's centred trajectory over the T past frames is Fourier-transformed per Cartesian axis.
Rotations, reflections and translations act on the 3-vector of coefficients f_i(k) linearly and
real-orthogonally, so inner products of such vectors are E(3)-invariant; circular time shifts
only multiply f(k) by a phase, which the moduli below remove. The features are computed once
from the input coordinates (spec D5) and feed every ESM layer: the cross-spectrum of each edge
replaces its edge attributes and the amplitude of each node enters the node update.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dynforecast.models.batch import WindowBatch
from dynforecast.ops.scatter import scatter_sum

AMPLITUDE_FORMS = ("code", "paper")
NORMALISATION_EPS = 1e-9


def centre_per_graph(
    positions: Tensor, node_graph: Tensor, num_graphs: int, node_mask: Tensor | None
) -> Tensor:
    """Subtract, per frame, the unweighted centroid of each window's real nodes.

    A segment mean over ``node_graph``, so windows of different sizes share a batch (spec D20);
    padding nodes (node_mask False) neither enter the centroid nor change other nodes.
    Shapes: positions [V, T, 3], node_graph [V] -> [V, T, 3].
    """
    if node_mask is None:
        weight = torch.ones_like(positions[:, :1, :1])
    else:
        weight = node_mask.to(positions.dtype).view(-1, 1, 1)
    total = scatter_sum(positions * weight, node_graph, num_graphs)
    count = scatter_sum(weight.view(-1), node_graph, num_graphs).clamp_min(1.0)
    centroid = total / count.view(-1, 1, 1)
    return positions - centroid.index_select(0, node_graph)


def fourier_coefficients(centred: Tensor) -> Tensor:
    """Unnormalised complex DFT over frames, DC term dropped: k = 1..T-1 (spec D2).

    All T-1 frequencies are kept although |f(k)| = |f(T-k)| for real input, because the
    reference gates the duplicates differently. Shapes: [V, T, 3] -> complex [V, K, 3], K = T-1.
    """
    return torch.fft.fft(centred, dim=1)[:, 1:]


def normalise_over_frequencies(values: Tensor) -> Tensor:
    """values / (sum over k + 1e-9): a spectrum shape that no longer carries the motion's scale."""
    return values / (values.sum(-1, keepdim=True) + NORMALISATION_EPS)


def cross_spectrum(coefficients: Tensor, edge_src: Tensor, edge_dst: Tensor) -> Tensor:
    """|sum_d conj(f_i,d(k)) f_j,d(k)| per edge and frequency, i = edge_dst, j = edge_src.

    The modulus of a Hermitian inner product: symmetric in i and j, invariant to O(3) and phases.
    Computed in real arithmetic on (real, imaginary) pairs, a = f_i, b = f_j:
    conj(a).b = sum_d (a_re b_re + a_im b_im) + i sum_d (a_re b_im - a_im b_re). On the CPU,
    gathering and multiplying complex tensors is several times slower than the same on reals.
    Shapes: complex [V, K, 3] -> real [E, K].
    """
    pairs = torch.view_as_real(coefficients.contiguous())  # [V, K, 3, 2]
    receiver = pairs.index_select(0, edge_dst)
    sender = pairs.index_select(0, edge_src)
    real = (receiver * sender).sum((-2, -1))
    imaginary = (receiver[..., 0] * sender[..., 1] - receiver[..., 1] * sender[..., 0]).sum(-1)
    return torch.hypot(real, imaginary)


def amplitude(coefficients: Tensor, form: str) -> Tensor:
    """Per-node spectral amplitude.

    ``"code"`` (reference code): |sum_d f_d(k)^2|, the modulus of the non-conjugated square sum.
    ``"paper"`` (paper, poster): sum_d |f_d(k)|^2 = ||f(k)||^2. Both are O(3)-invariant.
    Shapes: complex [V, K, 3] -> real [V, K].
    """
    if form == "code":
        return (coefficients * coefficients).sum(-1).abs()
    if form == "paper":
        return (coefficients.real.square() + coefficients.imag.square()).sum(-1)
    raise ValueError(f"expected amplitude form in {AMPLITUDE_FORMS} (got {form!r})")


def edft_features(
    positions: Tensor,
    node_graph: Tensor,
    num_graphs: int,
    edge_src: Tensor,
    edge_dst: Tensor,
    gates: Tensor | None,
    *,
    amplitude_form: str = "code",
    node_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Gated, frequency-normalised edge cross-spectra A_ij(k) and node amplitudes c_i(k).

    a_ij(k) = g_i(k) g_j(k) |<f_i(k), f_j(k)>|, b_i(k) = g_i(k) amplitude_i(k), each divided by its
    sum over k (+1e-9). ``gates`` None means all gates 1 (option ``frequency_gate=False``).
    Shapes: positions [V, T, 3], gates [V, K] or None -> A [E, K], c [V, K].
    """
    centred = centre_per_graph(positions, node_graph, num_graphs, node_mask)
    coefficients = fourier_coefficients(centred)
    edge_spectrum = cross_spectrum(coefficients, edge_src, edge_dst)
    node_amplitude = amplitude(coefficients, amplitude_form)
    if gates is not None:
        edge_spectrum = edge_spectrum * gates.index_select(0, edge_dst)
        edge_spectrum = edge_spectrum * gates.index_select(0, edge_src)
        node_amplitude = node_amplitude * gates
    return normalise_over_frequencies(edge_spectrum), normalise_over_frequencies(node_amplitude)


def batch_edft_features(
    batch: WindowBatch, gates: Tensor | None, amplitude_form: str = "code"
) -> tuple[Tensor, Tensor]:
    """`edft_features` of a batch's past positions, graph and node mask."""
    return edft_features(
        batch.positions,
        batch.node_graph,
        batch.num_graphs,
        batch.edge_src,
        batch.edge_dst,
        gates,
        amplitude_form=amplitude_form,
        node_mask=batch.node_mask,
    )
