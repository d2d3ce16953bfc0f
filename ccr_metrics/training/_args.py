"""The argument checks of the training path, in one place.

The losses (:mod:`ccr_metrics.training._contrastive`, :mod:`ccr_metrics.training.losses`)
and the samplers (:mod:`ccr_metrics.training.sampling`) take the same kinds of
arguments: floating-point tensors of a stated layout (embeddings, similarities), a
``[B, K]`` text mask, a temperature or logit scale, a generator, index tensors. Each is
checked here, once, and refused with an :class:`~ccr_metrics.InputError` that names the
argument and the first offending place.

Checks that read tensor values (finiteness, a mask row without a text) are host syncs
on a GPU; the callers' ``validate=False`` paths skip them and keep the checks that read
only types, dimensions, shapes and devices.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from ..core._backend import ArrayLike, to_tensor
from ..core._validation import (
    InputError,
    check_bool_mask,
    check_floating,
    check_has_data,
    check_integer,
    check_ndim,
    dtype_str,
    first_nonfinite,
    is_integer,
    shape_str,
)

#: The temperature of the paper (and of CLIP's initialisation), used when none is given.
DEFAULT_TEMPERATURE = 0.07
# The dtypes the loss computes in (half precision through float32, see compute_dtype).
_LOSS_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_float_tensor(t: object, name: str, ndim: int, layout: str) -> torch.Tensor:
    """Return ``t`` if it is a floating-point tensor with ``ndim`` dimensions ``layout``."""
    if not isinstance(t, torch.Tensor):
        raise InputError(
            f"{name} must be a torch.Tensor {layout}, got {type(t).__name__}", argument=name
        )
    check_floating(t, name)
    check_ndim(t, name, ndim, layout)
    return t


def check_finite_where(t: torch.Tensor, name: str, used: torch.Tensor | None = None) -> None:
    """Raise on the first NaN or infinity of ``t`` where ``used`` is True (all if None)."""
    found = first_nonfinite(t if used is None else t.masked_fill(~used, 0))
    if found is not None:
        index, value = found
        raise InputError(
            f"{name} {shape_str(t)} contains {value} at index {list(index)}; it must be finite",
            argument=name,
            position=index,
            value=value,
        )


def check_embeddings(
    t: object, name: str, ndim: int, layout: str, *, finite: bool = True
) -> torch.Tensor:
    """Return ``t`` if it is a dense floating-point tensor with ``ndim`` dimensions.

    With ``finite`` also refuse NaN and infinity, which reads the values (a host sync).
    """
    t = check_float_tensor(t, name, ndim, layout)
    if t.dtype not in _LOSS_DTYPES or t.layout != torch.strided:
        dense = t.layout == torch.strided
        kind = "dense" if dense else str(t.layout).removeprefix("torch.").replace("_", " ")
        raise InputError(
            f"{name} is a {kind} tensor of dtype {dtype_str(t)}; the loss takes dense "
            "float16, bfloat16, float32 or float64",
            argument=name,
        )
    if not finite:
        return t  # shapes only: meta tensors (tracing a training step) pass
    check_has_data(t, name)
    check_finite_where(t, name)
    return t


def check_batch(
    image_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    text_mask: ArrayLike | None,
    *,
    validate: bool = True,
) -> torch.Tensor | None:
    """Validate a 1-to-K batch; return the mask as a bool tensor on the data's device.

    Without ``validate`` only what reads no tensor value is checked (types, dimensions,
    shapes, devices): no host sync.
    """
    check_embeddings(image_embeds, "image_embeds", 2, "[B, D]", finite=validate)
    check_embeddings(text_embeds, "text_embeds", 3, "[B, K, D]", finite=validate)
    n_images, dim = image_embeds.shape
    n_rows, n_languages, text_dim = text_embeds.shape
    if n_rows != n_images or text_dim != dim:
        raise InputError(
            f"text_embeds {shape_str(text_embeds)} must be [B, K, D] with the B and D of "
            f"image_embeds {shape_str(image_embeds)}",
            argument="text_embeds",
        )
    if n_images == 0 or n_languages == 0 or dim == 0:
        raise InputError(
            f"the batch must not be empty: image_embeds {shape_str(image_embeds)}, "
            f"text_embeds {shape_str(text_embeds)}"
        )
    if image_embeds.device != text_embeds.device:
        raise InputError(
            f"image_embeds is on {image_embeds.device} but text_embeds on {text_embeds.device}",
            argument="image_embeds",
        )
    if text_mask is None:
        return None
    return check_text_mask(text_mask, n_images, n_languages, text_embeds.device, every_row=validate)


def check_text_mask(
    text_mask: ArrayLike,
    n_images: int,
    n_languages: int,
    device: torch.device,
    *,
    every_row: bool = True,
) -> torch.Tensor:
    """``text_mask`` as a bool tensor ``[B, K]`` on ``device``; every row needs a True.

    ``every_row=False`` skips that last check, the one that reads the mask's values.
    """
    # A tensor is taken as it is, so that a meta mask can trace a step without checks.
    mask = (
        text_mask if isinstance(text_mask, torch.Tensor) else to_tensor(text_mask, "text_mask")[0]
    )
    mask = check_bool_mask(mask, "text_mask", (n_images, n_languages), "([B, K])", device)
    if not every_row:
        return mask
    check_has_data(mask, "text_mask")
    empty = ~mask.any(1)
    if bool(empty.any()):
        row = int(empty.nonzero()[0, 0])
        raise InputError(
            f"text_mask {shape_str(mask)} leaves image {row} without any text; "
            "every image needs at least one",
            argument="text_mask",
        )
    return mask


def check_temperature(temperature: float) -> float:
    """Return ``temperature`` as a float if it is finite and positive, else raise."""
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise InputError(
            f"temperature must be a finite positive number, got {temperature!r}",
            argument="temperature",
        )
    return float(temperature)


def check_logit_scale(
    temperature: float | None, logit_scale: float | torch.Tensor | None, *, validate: bool
) -> float | torch.Tensor:
    """Return the multiplier of the cosines, from ``temperature`` or ``logit_scale``.

    ``1 / 0.07`` if neither is given. A float comes back as a float, a tensor as itself
    (its gradient kept). Only the value check of a tensor reads it (a host sync), and
    only with ``validate``.
    """
    if logit_scale is None:
        return 1.0 / check_temperature(DEFAULT_TEMPERATURE if temperature is None else temperature)
    if temperature is not None:
        raise InputError(
            f"pass temperature or logit_scale, not both (got temperature={temperature!r} "
            "and a logit_scale); logit_scale is 1 / temperature",
            argument="logit_scale",
        )
    if isinstance(logit_scale, torch.Tensor):
        if not logit_scale.is_floating_point() or logit_scale.ndim != 0:
            raise InputError(
                "logit_scale must be a 0-dim floating-point tensor (the multiplier "
                f"1 / temperature), got dtype {logit_scale.dtype} {shape_str(logit_scale)}",
                argument="logit_scale",
            )
        if validate:
            check_has_data(logit_scale, "logit_scale")
            value = float(logit_scale.detach())
            if not math.isfinite(value) or value <= 0:
                raise InputError(
                    f"logit_scale must be finite and positive, got {value!r}",
                    argument="logit_scale",
                    value=value,
                )
        return logit_scale
    if (
        isinstance(logit_scale, bool)
        or not isinstance(logit_scale, numbers.Real)
        or not math.isfinite(logit_scale)
        or logit_scale <= 0
    ):
        raise InputError(
            f"logit_scale must be a finite positive number or a 0-dim tensor, got {logit_scale!r}",
            argument="logit_scale",
        )
    return float(logit_scale)


def check_query_rows(query_rows: slice | None, n_images: int) -> tuple[int, int] | None:
    """``(start, stop)`` of a non-empty step-1 slice of ``[0, n_images)``; None for all rows."""
    if query_rows is None:
        return None
    if not isinstance(query_rows, slice):
        raise InputError(
            f"query_rows must be a slice of the B = {n_images} rows, "
            f"got {type(query_rows).__name__}",
            argument="query_rows",
        )
    start = 0 if query_rows.start is None else query_rows.start
    stop = n_images if query_rows.stop is None else query_rows.stop
    step = 1 if query_rows.step is None else query_rows.step
    bounds = (start, stop, step)
    if (
        any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in bounds)
        or step != 1
        or not 0 <= start < stop <= n_images
    ):
        raise InputError(
            "query_rows must be a non-empty slice of step 1 within the rows "
            f"[0, B) = [0, {n_images}), got {query_rows!r}",
            argument="query_rows",
        )
    if start == 0 and stop == n_images:
        return None  # every row: the plain computation
    return int(start), int(stop)


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """Refuse a generator that torch.multinomial cannot use on ``device``."""
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise InputError(
            f"generator must be a torch.Generator, got {type(generator).__name__}",
            argument="generator",
        )
    if generator.device.type != device.type:
        raise InputError(
            f"generator is on {generator.device} but the data is on {device}; "
            f"create it with torch.Generator(device={str(device)!r})",
            argument="generator",
        )


def check_language(
    language: ArrayLike,
    n_images: int,
    n_languages: int,
    mask: torch.Tensor | None,
    device: torch.device,
) -> torch.Tensor:
    """``language`` as a LongTensor ``[B]`` of present slots in ``[0, K)``, on ``device``."""
    chosen, _ = to_tensor(language, "language")
    check_integer(chosen, "language", "language slots")
    if tuple(chosen.shape) != (n_images,):
        raise InputError(
            f"language must have shape [B] = [{n_images}] (one slot per image), "
            f"got {shape_str(chosen)}",
            argument="language",
        )
    chosen = chosen.to(device=device, dtype=torch.long)
    outside = (chosen < 0) | (chosen >= n_languages)
    if bool(outside.any()):
        row = int(outside.nonzero()[0, 0])
        raise InputError(
            f"language[{row}] = {int(chosen[row])} is outside [0, K) = [0, {n_languages})"
        )
    if mask is not None:
        absent = ~mask[torch.arange(n_images, device=device), chosen]
        if bool(absent.any()):
            row = int(absent.nonzero()[0, 0])
            raise InputError(
                f"language[{row}] = {int(chosen[row])} names a text that text_mask marks missing"
            )
    return chosen


def check_hard_samples(
    hard: object, fields: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return the three index tensors of ``hard``, checked for dtype, shape and device.

    ``fields`` names them, as :class:`~ccr_metrics.HardSamples` does.
    """
    given: tuple[object, ...] = tuple(hard) if isinstance(hard, tuple) else ()
    if len(given) != len(fields):
        raise InputError(
            f"hard must be HardSamples({', '.join(fields)}), got {type(hard).__name__}",
            argument="hard",
        )
    checked: list[torch.Tensor] = []
    for name, t in zip(fields, given, strict=True):
        if not isinstance(t, torch.Tensor) or not is_integer(t) or t.ndim != 1:
            got = (
                f"dtype {t.dtype} {shape_str(t)}"
                if isinstance(t, torch.Tensor)
                else type(t).__name__
            )
            raise InputError(
                f"hard.{name} must be a 1-D integer tensor [B], got {got}",
                argument=f"hard.{name}",
            )
        first = checked[0] if checked else t
        if t.shape != first.shape or t.device != first.device or not len(t):
            raise InputError(
                f"hard.{name} {shape_str(t)} on {t.device} must have the non-zero length "
                f"and the device of hard.positive_text {shape_str(first)} on {first.device}",
                argument=f"hard.{name}",
            )
        checked.append(t)
    return checked[0], checked[1], checked[2]


def check_sim(sim: object, layout: str, *, name: str = "sim") -> torch.Tensor:
    """Return ``sim`` if it is a floating-point 2-D tensor with a row and a column."""
    sim = check_float_tensor(sim, name, 2, layout)
    check_has_data(sim, name)
    if sim.shape[0] == 0 or sim.shape[1] == 0:
        raise InputError(
            f"{name} must have at least one row and one column, got {shape_str(sim)}", argument=name
        )
    return sim


def check_sim_i2t(
    sim_i2t: torch.Tensor, text_mask: ArrayLike | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``sim_i2t`` checked as ``[B, B * K]``, finite where present; the ``[B, K]`` mask."""
    layout = "[B, B * K] (images x texts, image-major)"
    s = check_sim(sim_i2t, layout, name="sim_i2t")
    n_images, n_texts = s.shape
    if n_texts % n_images != 0:
        raise InputError(
            f"sim_i2t must be {layout}: its {n_texts} columns must be K texts for each of "
            f"its {n_images} rows, but {n_texts} is not a multiple of {n_images} "
            f"(shape {shape_str(s)})",
            argument="sim_i2t",
        )
    n_languages = n_texts // n_images
    if text_mask is None:
        present = torch.ones(n_images, n_languages, dtype=torch.bool, device=s.device)
        check_finite_where(s, "sim_i2t")
    else:
        present = check_text_mask(text_mask, n_images, n_languages, s.device)
        check_finite_where(s, "sim_i2t", present.reshape(1, -1).expand_as(s))
    return s, present


def check_mask_like(
    mask: ArrayLike, name: str, sim: torch.Tensor, *, allow_row: bool
) -> torch.Tensor:
    """``mask`` as a bool tensor broadcast to the shape of ``sim``, on its device."""
    t, _ = to_tensor(mask, name)
    layout = f"to match sim {shape_str(sim)}"
    return check_bool_mask(t, name, tuple(sim.shape), layout, sim.device, row_ok=allow_row)


def check_matching(logits: object, labels: object, *, validate: bool) -> None:
    """Check the inputs of the matching loss: ``logits [N, 2]`` or ``[N]``, ``labels [N]``.

    With ``validate`` also refuse non-finite logits and labels other than 0 and 1,
    which reads their values.
    """
    if isinstance(logits, torch.Tensor):
        check_has_data(logits, "logits")
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point():
        kind = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(
            f"logits must be a floating-point tensor [N, 2] or [N], got {kind}", argument="logits"
        )
    if not (logits.ndim == 1 or (logits.ndim == 2 and logits.shape[1] == 2)) or not len(logits):
        raise InputError(
            f"logits must have shape [N, 2] (two class logits) or [N] (the match logit) "
            f"with N > 0, got {shape_str(logits)}",
            argument="logits",
        )
    n_pairs = logits.shape[0]
    if (
        not isinstance(labels, torch.Tensor)
        or labels.is_floating_point()
        or labels.is_complex()
        or tuple(labels.shape) != (n_pairs,)
    ):
        got = (
            f"dtype {labels.dtype} {shape_str(labels)}"
            if isinstance(labels, torch.Tensor)
            else type(labels).__name__
        )
        raise InputError(
            f"labels must be an integer or bool tensor [N] = [{n_pairs}] matching logits "
            f"{shape_str(logits)}, got {got}",
            argument="labels",
        )
    if labels.device != logits.device:
        raise InputError(
            f"labels is on {labels.device} but logits on {logits.device}", argument="labels"
        )
    if validate:
        check_finite_where(logits, "logits")
        bad = (labels != 0) & (labels != 1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            raise InputError(
                f"labels[{row}] = {int(labels[row])}; labels must be 0 or 1",
                argument="labels",
                position=(row,),
            )
