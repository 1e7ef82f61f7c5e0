"""The camera autoencoders' arithmetic for many models at once: stacked weights, batched matrix products.

Each asset has its own small :class:`~models.camera.FrameAutoencoder`, so a batch of frames of different
assets is a batch of *different models*. Called one by one, most of the time goes to torch's per-call overhead;
here the models of one architecture have their weights stacked (a fresh copy per call: weights change whenever a
model learns) and every layer runs as one batched matrix product (``torch.bmm``) over all of them:

- a strided 4x4 convolution (padding 1, stride 2) reads a space-to-depth copy of its zero-padded input (rows
  ``channel x 2 x 2``, columns the ``(n + 1) x (n + 1)`` grid of 2x2 cells of each image); its 4x4 kernel is
  four 2x2 kernels, each a matrix product with the same rows shifted by 0, 1, ``n + 1`` or ``n + 2`` columns, so
  no patch matrix (im2col) is copied out. The output keeps one extra row and column per image, never read;
- a non-overlapping 2x2 transposed convolution is a per-pixel linear map to ``4 x channels``: its product's rows
  ``(channel, ki, kj)`` *are* the next layer's input with the sub-pixel position in the columns, so the decoder
  copies nothing, and one index gather puts the reconstruction's pixels in place at the end.

Every model's rows are computed alone: a model gets the same numbers in a batch of any size, bit for bit. The
former convolution modules round differently, within float32 rounding (~1e-7 relative on the scores).
:func:`learning_step` trains by the same products, with their gradients written out, and one stacked Adam update
that is ``torch.optim.Adam``'s operation for operation.

>>> import torch
>>> from models.camera import FrameAutoencoder
>>> models = [FrameAutoencoder() for _ in range(3)]
>>> frames = np.random.default_rng(0).normal(size=(3, 1, 64, 64)).astype(np.float32)
>>> with torch.inference_mode():
...     one_by_one = [model(torch.from_numpy(frame[None])).numpy() for model, frame in zip(models, frames)]
>>> batched = reconstruct([list(model.parameters()) for model in models], frames)
>>> batched.shape, max(float(np.abs(b - o).max()) for b, o in zip(batched, one_by_one)) < 1e-6
((3, 1, 64, 64), True)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

Parameters = Sequence[torch.Tensor]
"""One model's parameters, in ``model.parameters()`` order."""
_Shapes = tuple[tuple[int, ...], ...]


@functools.lru_cache(maxsize=32)
def _spatial(size: int, depth: int, count: int) -> torch.Tensor:
    """The gather of the decoder's output columns into ``(image, row, column)`` order.

    The output's columns are ``(ki, kj)`` of the last decoder layer, ..., of the first, then the bottleneck grid
    ``(image, a, b)`` with its extra row and column; a pixel's row is ``a``, then the ``ki`` from first to last.
    """
    n = size >> depth
    order = np.arange(4**depth * count * (n + 1) ** 2).reshape([2, 2] * depth + [count, n + 1, n + 1])
    rows = [2 * (depth - layer) for layer in range(1, depth + 1)]
    axes = [2 * depth, 2 * depth + 1, *rows, 2 * depth + 2, *(row + 1 for row in rows)]
    with torch.inference_mode(False):  # kept for learning too: not an inference tensor
        return torch.from_numpy(np.ascontiguousarray(order[..., :n, :n].transpose(axes)).ravel())


@functools.lru_cache(maxsize=8)
def _weight_orders(shapes: _Shapes) -> tuple[torch.Tensor, ...]:
    """Per weight tensor, the gather into the layout of its matrix products (biases: nothing to reorder).

    An encoder weight ``(out, in, 4, 4)`` becomes ``(shift di dj, out, in pi pj)`` (ki = 2 di + pi); a decoder
    weight ``(in, out, 2, 2)`` becomes ``(out ki kj, in)``.
    """
    orders = []
    for shape in shapes[::2]:
        first, second = shape[0], shape[1]
        if shape[2:] == (4, 4):
            index = np.arange(first * second * 16).reshape(first, second, 2, 2, 2, 2).transpose(2, 4, 0, 1, 3, 5)
        else:
            index = np.arange(first * second * 4).reshape(first, second, 2, 2).transpose(1, 2, 3, 0)
        with torch.inference_mode(False):  # kept for learning too: not an inference tensor
            orders.append(torch.from_numpy(np.ascontiguousarray(index).ravel()))
    return tuple(orders)


def _stack(models: Sequence[Parameters]) -> list[torch.Tensor]:
    """Each parameter of all models stacked along a new first axis (a copy; one model: a view)."""
    if len(models) == 1:
        return [param.detach()[None] for param in models[0]]
    return [torch.stack([params[k] for params in models]).detach() for k in range(len(models[0]))]


def _matrices(stacked: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weights, bias)`` per layer, the weights gathered into their matrix-product layout."""
    b = stacked[0].shape[0]
    orders = _weight_orders(tuple(tuple(t.shape[1:]) for t in stacked))
    layers = []
    for order, weight, bias in zip(orders, stacked[::2], stacked[1::2], strict=True):
        flat = weight.reshape(b, -1).index_select(1, order)
        if weight.shape[3:] == (4, 4):
            matrix = flat.view(b, 4, weight.shape[1], -1)  # (shift, out, in pi pj)
        else:
            matrix = flat.view(b, -1, weight.shape[1])  # (out ki kj, in)
            bias = bias.repeat_interleave(4, dim=1)  # the bias of each output row
        layers.append((matrix, bias))
    return layers


def _cells(frames: np.ndarray) -> torch.Tensor:
    """Frames ``(B, count, S, S)`` → the first layer's input, see :func:`_space_to_depth`."""
    b, count, size, _ = frames.shape
    flat = np.zeros((b, 4, count * (size // 2 + 1) ** 2 + size // 2 + 2), np.float32)
    _move_cells(_cell_view(flat, count, size // 2), frames[:, None], size // 2)
    return torch.from_numpy(flat)


def _space_to_depth(y: torch.Tensor, count: int, m: int) -> torch.Tensor:
    """A layer's output ``(B, C, count * (m + 1)**2)`` (valid ``m x m``) → the next layer's input.

    Rows ``(channel, pi, pj)``, columns the ``(m/2 + 1)**2`` cells of each zero-padded image, then ``m/2 + 2``
    spare zeros that the shifted reads of the last image's extra row and column reach (numpy: its strided copies
    are faster than torch's).
    """
    b, channels, _ = y.shape
    n = m // 2
    flat = np.zeros((b, channels * 4, count * (n + 1) ** 2 + n + 2), np.float32)
    _move_cells(_cell_view(flat, count, n), y.numpy().reshape(b, channels, count, m + 1, m + 1), n)
    return torch.from_numpy(flat)


def _cell_view(flat: np.ndarray, count: int, n: int) -> np.ndarray:
    """``flat`` ``(B, C * 4, length)`` seen as ``(B, C, pi, pj, image, a, b)`` (a view: the writes land in it)."""
    b, rows, length = flat.shape
    step = flat.itemsize
    return np.ndarray((b, rows // 4, 2, 2, count, n + 1, n + 1), flat.dtype, flat, 0, (
        rows * length * step, 4 * length * step, 2 * length * step, length * step, (n + 1) ** 2 * step,
        (n + 1) * step, step))


def _move_cells(cells: np.ndarray, images: np.ndarray, n: int, back: bool = False) -> None:
    """``cells[..., pi, pj, :, a, b]`` = ``images[..., 2a + pi - 1, 2b + pj - 1]`` (the padding stays 0);
    ``back``: the other way (the gradient)."""
    for (pi, pj), cell, image in (((0, 0), np.s_[1:, 1:], np.s_[1:2 * n:2, 1:2 * n:2]),
                                  ((0, 1), np.s_[1:, :n], np.s_[1:2 * n:2, 0:2 * n:2]),
                                  ((1, 0), np.s_[:n, 1:], np.s_[0:2 * n:2, 1:2 * n:2]),
                                  ((1, 1), np.s_[:n, :n], np.s_[0:2 * n:2, 0:2 * n:2])):
        if back:
            images[(..., *image)] = cells[(..., pi, pj, slice(None), *cell)]
        else:
            cells[(..., pi, pj, slice(None), *cell)] = images[(..., *image)]


def _encode(x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, n: int, count: int) -> torch.Tensor:
    """A strided 4x4 convolution and ReLU: four products with the input columns shifted by 0, 1, n + 1, n + 2.

    The output has ``count * (n + 1)**2`` columns: one extra row and column per image, never read.
    """
    columns = count * (n + 1) ** 2
    y = torch.bmm(weights[:, 0], x[:, :, :columns])
    for shift, start in enumerate((1, n + 1, n + 2), start=1):
        y.baddbmm_(weights[:, shift], x[:, :, start:start + columns])
    y += bias[:, :, None]
    return y.relu_()


class _Encode(torch.autograd.Function):
    """:func:`_encode` with its gradient written out (autograd's would copy the input once per shift)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weights: torch.Tensor, bias: torch.Tensor, n: int,
                count: int) -> torch.Tensor:
        y = _encode(x, weights, bias, n, count)
        ctx.save_for_backward(x, weights, y)
        ctx.n, ctx.count = n, count
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weights, y = ctx.saved_tensors
        n, columns = ctx.n, ctx.count * (ctx.n + 1) ** 2
        grad = torch.ops.aten.threshold_backward(grad, y, 0.0)  # ReLU's own backward
        starts = (0, 1, n + 1, n + 2)
        grad_weights = torch.stack([torch.bmm(grad, x[:, :, start:start + columns].transpose(1, 2))
                                    for start in starts], dim=1)
        grad_x = None
        if ctx.needs_input_grad[0]:  # one product for the four shifts, then added up where they read
            b, _, rows, inputs = weights.shape
            shifted = torch.bmm(weights.transpose(2, 3).reshape(b, 4 * inputs, rows), grad)
            shifted = shifted.view(b, 4, inputs, columns)
            grad_x = torch.empty_like(x)
            grad_x[:, :, :columns] = shifted[:, 0]
            grad_x[:, :, columns:] = 0.0
            for shift, start in enumerate(starts[1:], start=1):
                grad_x[:, :, start:start + columns] += shifted[:, shift]
        return grad_x, grad_weights, grad.sum(2), None, None


class _SpaceToDepth(torch.autograd.Function):
    """:func:`_space_to_depth` with its gradient (each valid output pixel is exactly one cell)."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, count: int, m: int) -> torch.Tensor:
        ctx.shape, ctx.count, ctx.m = y.shape, count, m
        return _space_to_depth(y, count, m)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        b, channels, _ = ctx.shape
        count, m = ctx.count, ctx.m
        images = np.zeros((b, channels, count, m + 1, m + 1), np.float32)
        _move_cells(_cell_view(grad.contiguous().numpy(), count, m // 2), images, m // 2, back=True)
        return torch.from_numpy(images.reshape(ctx.shape)), None, None


def _decoded(layers: Sequence[tuple[torch.Tensor, torch.Tensor]], frames: np.ndarray) -> torch.Tensor:
    """The autoencoders' outputs for ``frames`` ``(B, count, S, S)``, in the decoder's column order.

    With autograd (learning) the encoder layers are the functions above with their written-out gradients.
    """
    b, count, size, _ = frames.shape
    depth = len(layers) // 2
    learning = torch.is_grad_enabled() and layers[0][0].requires_grad
    y = _cells(frames)
    for layer, (weights, bias) in enumerate(layers[:depth]):
        n = size >> (layer + 1)
        if learning:
            x = _SpaceToDepth.apply(y, count, 2 * n) if layer else y
            y = _Encode.apply(x, weights, bias, n, count)
        else:
            y = _encode(_space_to_depth(y, count, 2 * n) if layer else y, weights, bias, n, count)
    decoder = layers[depth:]
    for index, (weights, bias) in enumerate(decoder):
        y = torch.bmm(weights, y)
        y += bias[:, :, None]  # in place (not on a view: autograd would copy): the product needs its inputs only
        if index < len(decoder) - 1:
            y.relu_()
        y = y.view(b, weights.shape[1] // 4, -1)
    return y.view(b, -1)


def reconstruct(models: Sequence[Parameters], frames: np.ndarray) -> np.ndarray:
    """The reconstructions ``(B, count, S, S)`` of ``frames`` ``(B, count, S, S)`` by the B models."""
    _, count, size, _ = frames.shape
    with torch.inference_mode():
        decoded = _decoded(_matrices(_stack(models)), frames)
        return decoded.index_select(1, _spatial(size, len(models[0]) // 4, count)).numpy().reshape(frames.shape)


def learning_step(models: Sequence[Parameters], optimizers: Sequence[torch.optim.Optimizer],
                  batches: np.ndarray) -> np.ndarray:
    """One Adam step per model on its mini-batch ``(B, count, S, S)`` (loss: the mean squared error).

    The optimizers must be plain Adams of the same betas and eps (:func:`adam_settings`); returns the
    reconstructions before the step.
    """
    with torch.no_grad():
        stacked = [torch.stack([own[k] for own in models]) for k in range(len(models[0]))]
    for tensor in stacked:
        tensor.requires_grad_()
    decoded = _decoded(_matrices(stacked), batches)
    spatial = _spatial(batches.shape[2], len(stacked) // 4, batches.shape[1])
    with torch.no_grad():  # the gradient of each model's mean squared error, as autograd computes it
        reconstruction = decoded.index_select(1, spatial)
        residual = reconstruction - torch.from_numpy(batches.reshape(len(models), -1))
        grad = torch.zeros_like(decoded).index_copy_(1, spatial, residual * (2.0 / residual.shape[1]))
    decoded.backward(grad)  # type: ignore[no-untyped-call]
    with torch.no_grad():
        _adam(optimizers, models, stacked)
    return reconstruction.numpy().reshape(batches.shape)


def adam_settings(optimizer: torch.optim.Optimizer) -> tuple[float, float, float] | None:
    """``(beta1, beta2, eps)`` of a plain Adam (one group, float rate, no weight decay, no variant), else None."""
    if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    variant = any(group.get(key) for key in ("amsgrad", "maximize", "capturable", "differentiable", "foreach",
                                                "fused", "decoupled_weight_decay"))
    if variant or group["weight_decay"] != 0 or not isinstance(group["lr"], float):
        return None
    beta1, beta2 = group["betas"]
    return float(beta1), float(beta2), float(group["eps"])


def _adam(optimizers: Sequence[torch.optim.Optimizer], params: Sequence[Parameters],
          stacked: Sequence[torch.Tensor]) -> None:
    """``torch.optim.Adam.step`` (its single-tensor form, operation for operation) over stacked parameters.

    Each model keeps its own step count and rate; the new parameters and moments go back into each
    model and its optimizer's state (created as Adam creates it on a first step).
    """
    beta1, beta2, eps = adam_settings(optimizers[0])  # type: ignore[misc]
    states = [optimizer.state for optimizer in optimizers]
    for state, own in zip(states, params, strict=True):
        for param in own:
            if param not in state:
                state[param] = {"step": torch.tensor(0.0, dtype=_step_dtype()), "exp_avg": torch.zeros_like(param),
                                "exp_avg_sq": torch.zeros_like(param)}
    counters = [state[param]["step"] for state, own in zip(states, params, strict=True) for param in own]
    steps = [float(state[own[0]]["step"]) + 1.0 for state, own in zip(states, params, strict=True)]
    rates = [optimizer.param_groups[0]["lr"] for optimizer in optimizers]
    correction2 = torch.tensor([(1 - beta2**step) ** 0.5 for step in steps])
    step_size = torch.tensor([-(rate / (1 - beta1**step)) for rate, step in zip(rates, steps, strict=True)])
    targets: list[torch.Tensor] = []
    sources: list[torch.Tensor] = []
    for k, leaf in enumerate(stacked):
        shape = (len(optimizers),) + (1,) * (leaf.dim() - 1)
        slots = [state[own[k]] for state, own in zip(states, params, strict=True)]
        exp_avg = torch.stack([slot["exp_avg"] for slot in slots])
        exp_avg_sq = torch.stack([slot["exp_avg_sq"] for slot in slots])
        grad = leaf.grad
        assert grad is not None
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (exp_avg_sq.sqrt() / correction2.view(shape)).add_(eps)
        updated = leaf.detach().add_(step_size.view(shape) * exp_avg / denom)
        targets += [own[k] for own in params]
        sources += updated.unbind(0)
        for slot, avg, avg_sq in zip(slots, exp_avg.unbind(0), exp_avg_sq.unbind(0), strict=True):
            targets += (slot["exp_avg"], slot["exp_avg_sq"])
            sources += (avg, avg_sq)
    torch._foreach_copy_(targets, sources)
    torch._foreach_add_(counters, 1.0)


def _step_dtype() -> torch.dtype:
    """The dtype ``torch.optim.Adam`` keeps its step count in (float32 unless the default dtype is float64)."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
