"""Initial conditions: GRF, multiscale GRF, localized blobs and structured fields.

Every field is float32 [C, H, W] on the CPU. All draws, the IC type included, come from one
local ``torch.Generator`` in a fixed order, so a seed gives the same bytes in every process (the
original drew the type with unseeded ``random`` and the field from the global torch RNG).

Coordinates are pixel indices 0..grid−1 (x along W, y along H). Distances are periodic
(minimum image) so that blobs and discs near an edge wrap instead of being cut, matching the
periodic GRFs.
"""

from __future__ import annotations

import math

import torch

from noa_core.config import (
    IC_TYPES,
    GRFConfig,
    InitialConditionConfig,
    LocalizedConfig,
    MultiscaleGRFConfig,
    StructuredConfig,
)
from noa_core.dynamics.seeding import torch_generator

_INV_E = math.exp(-1.0)


# ---------------------------------------------------------------------------------------------
# Scalar draws (float64 so the per-IC parameters do not depend on float32 rounding)
# ---------------------------------------------------------------------------------------------


def _uniform(gen: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    u = torch.rand((), generator=gen, dtype=torch.float64).item()
    return lo + u * (hi - lo)


def _log_uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return math.exp(_uniform(gen, math.log(lo), math.log(hi)))


def _index(gen: torch.Generator, n: int) -> int:
    """⌊u n⌋, clipped because u·n can round up to n."""
    return min(int(_uniform(gen) * n), n - 1)


def _normal(gen: torch.Generator, std: float, size: tuple[int, ...] = ()) -> torch.Tensor:
    return std * torch.randn(size, generator=gen, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def _periodic_offsets(grid: int, cx: float, cy: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimum-image offsets dx [1, W], dy [H, 1] of every pixel from (cx, cy)."""
    coords = torch.arange(grid, dtype=torch.float32)
    half = grid / 2.0
    dx = torch.remainder(coords - cx + half, grid) - half
    dy = torch.remainder(coords - cy + half, grid) - half
    return dx.view(1, grid), dy.view(grid, 1)


def _gaussian_bump(grid: int, cx: float, cy: float, std: float) -> torch.Tensor:
    """Unit-peak periodic Gaussian [H, W] centred at (cx, cy) with std in pixels."""
    dx, dy = _periodic_offsets(grid, cx, cy)
    return torch.exp(-(dx * dx + dy * dy) / (2.0 * std * std))


# ---------------------------------------------------------------------------------------------
# GRF
# ---------------------------------------------------------------------------------------------


def _grf_spectrum(grid: int, length_scale: float) -> torch.Tensor:
    """S(k) = exp(−(2π|k|ℓ)²/2) [H, W], k in cycles per domain side, ℓ in domain units.

    This is the Fourier pair of a Gaussian covariance of std ℓ (domain units) = ℓ·grid pixels.
    """
    k = torch.fft.fftfreq(grid, dtype=torch.float64) * grid
    k2 = k.view(-1, 1) ** 2 + k.view(1, -1) ** 2
    return torch.exp(-0.5 * (2.0 * math.pi * length_scale) ** 2 * k2)


def gaussian_random_field(grid: int, channels: int, length_scale: float, variance: float,
                          gen: torch.Generator) -> torch.Tensor:
    """Stationary Gaussian random field [C, H, W] float32, channels independent.

    ``length_scale`` ℓ is a fraction of the domain side (covariance std ℓ·grid pixels);
    ``variance`` is the expected pointwise variance. Draws the real, then the imaginary parts of
    complex white noise [C, H, W].
    """
    spectrum = _grf_spectrum(grid, length_scale)
    # Re(Σ_k ξ_k √S_k e^{iωx}) with ξ complex standard normal has variance Σ_k S_k at every
    # pixel, so this analytic factor gives the requested variance in expectation (a per-sample
    # rescale would make every field's variance exact and fake the ensemble statistics).
    scale = math.sqrt(variance / float(spectrum.sum()))
    amplitude = (spectrum.sqrt() * scale).to(torch.float32)
    real = torch.randn((channels, grid, grid), generator=gen, dtype=torch.float32)
    imag = torch.randn((channels, grid, grid), generator=gen, dtype=torch.float32)
    noise = torch.complex(real, imag) * amplitude
    # norm="forward" leaves the inverse unscaled, which is what the variance above assumes.
    return torch.fft.ifft2(noise, norm="forward").real.contiguous()


def _grf(cfg: GRFConfig, grid: int, channels: int, gen: torch.Generator) -> torch.Tensor:
    """GRF with ℓ ~ U(cfg.length_scale) then variance log-uniform in cfg.variance."""
    length_scale = _uniform(gen, *cfg.length_scale)
    variance = _log_uniform(gen, *cfg.variance)
    return gaussian_random_field(grid, channels, length_scale, variance, gen)


def _multiscale_grf(cfg: MultiscaleGRFConfig, grid: int, channels: int,
                    gen: torch.Generator) -> torch.Tensor:
    """Sum of GRFs over one uniformly drawn band, each with variance/len(band)."""
    band = cfg.bands[_index(gen, len(cfg.bands))]
    part = cfg.variance / len(band)
    field = torch.zeros((channels, grid, grid), dtype=torch.float32)
    for scale in band:
        field += gaussian_random_field(grid, channels, scale, part, gen)
    return field


# ---------------------------------------------------------------------------------------------
# Localized and structured
# ---------------------------------------------------------------------------------------------


def _localized(cfg: LocalizedConfig, grid: int, channels: int,
               gen: torch.Generator) -> torch.Tensor:
    """Sum of ``num_blobs`` periodic Gaussian blobs with per-channel N(0, amplitude_std²)."""
    field = torch.zeros((channels, grid, grid), dtype=torch.float32)
    for _ in range(cfg.num_blobs):
        cx, cy = _uniform(gen, 0.0, grid), _uniform(gen, 0.0, grid)
        std = _uniform(gen, *cfg.width) * grid
        amps = _normal(gen, cfg.amplitude_std, (channels,))
        field += amps.view(-1, 1, 1) * _gaussian_bump(grid, cx, cy, std)
    return field


def _circle(cfg: StructuredConfig, grid: int, gen: torch.Generator) -> torch.Tensor:
    cx, cy = _uniform(gen, 0.0, grid), _uniform(gen, 0.0, grid)
    radius = _uniform(gen, 0.0, cfg.circle_radius_max) * grid
    amp = _normal(gen, cfg.circle_amplitude_std)
    dx, dy = _periodic_offsets(grid, cx, cy)
    return amp * (dx * dx + dy * dy <= radius * radius).to(torch.float32)


def _stripe(cfg: StructuredConfig, grid: int, gen: torch.Generator) -> torch.Tensor:
    freq = _uniform(gen, *cfg.stripe_frequency)
    phi = _uniform(gen, 0.0, 2.0 * math.pi)
    coords = torch.arange(grid, dtype=torch.float32)
    proj = coords.view(1, -1) * math.cos(phi) + coords.view(-1, 1) * math.sin(phi)
    return torch.sin(2.0 * math.pi * freq * proj / grid)


def _blob(cfg: StructuredConfig, grid: int, gen: torch.Generator) -> torch.Tensor:
    cx, cy = _uniform(gen, 0.0, grid), _uniform(gen, 0.0, grid)
    std = _uniform(gen, *cfg.blob_width) * grid
    amp = _normal(gen, cfg.blob_amplitude_std)
    return amp * _gaussian_bump(grid, cx, cy, std)


_STRUCTURES = {"circle": _circle, "stripe": _stripe, "blob": _blob}


def _structured(cfg: StructuredConfig, grid: int, channels: int,
                gen: torch.Generator) -> torch.Tensor:
    """``num_structures`` circles/stripes/blobs, each added to one random channel.

    Per structure the draws are: type, channel, then the structure's own parameters.
    """
    field = torch.zeros((channels, grid, grid), dtype=torch.float32)
    for _ in range(cfg.num_structures):
        kind = cfg.types[_index(gen, len(cfg.types))]
        channel = _index(gen, channels)
        field[channel] += _STRUCTURES[kind](cfg, grid, gen)
    return field


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def _choose_type(weights: dict[str, float], gen: torch.Generator) -> str:
    """searchsorted(cumsum(w)/Σw, u, right), clipped; zero-weight types are never chosen."""
    names = [name for name, w in weights.items() if w > 0]
    cum: list[float] = []
    total = 0.0
    for name in names:
        total += weights[name]
        cum.append(total)
    u = _uniform(gen) * total
    idx = sum(1 for c in cum if c <= u)  # searchsorted(side="right") on a sorted list
    return names[min(idx, len(names) - 1)]


def make_initial_condition(kind: str, cfg: InitialConditionConfig, grid: int, channels: int,
                           gen: torch.Generator) -> torch.Tensor:
    """Field of a given kind ('grf' | 'multiscale_grf' | 'localized' | 'structured'), [C, H, W]."""
    if grid < 1 or channels < 1:
        raise ValueError(f"grid and channels must be positive, got grid={grid}, "
                         f"channels={channels}")
    if kind == "grf":
        return _grf(cfg.grf, grid, channels, gen)
    if kind == "multiscale_grf":
        return _multiscale_grf(cfg.multiscale_grf, grid, channels, gen)
    if kind == "localized":
        return _localized(cfg.localized, grid, channels, gen)
    if kind == "structured":
        return _structured(cfg.structured, grid, channels, gen)
    raise ValueError(f"unknown initial-condition kind {kind!r}; expected one of {IC_TYPES}")


def sample_initial_condition(cfg: InitialConditionConfig, grid: int, channels: int,
                             seed: int) -> tuple[torch.Tensor, str]:
    """Draw the IC type from cfg.weights with the local generator, then the field [C, H, W] float32.

    Returns (field, type_name). The type is the generator's first draw, the field's draws follow.
    """
    gen = torch_generator(seed)
    kind = _choose_type(dict(cfg.weights), gen)
    return make_initial_condition(kind, cfg, grid, channels, gen), kind


def autocorrelation_length(field: torch.Tensor) -> float:
    """Mean over channels of the lag (pixels) where the autocorrelation first drops below 1/e.

    ``field`` is [C, H, W] (or [H, W]), square. The periodic autocorrelation of each channel (its
    mean removed) comes from the power spectrum via FFT; the lags along x and y are averaged and
    the 1/e crossing is linearly interpolated between pixels. A channel that never drops below
    1/e up to lag grid/2 (or a constant channel) counts as grid/2.
    """
    x = field.detach().to(torch.float64)
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"expected a square field [C, H, W], got shape {tuple(field.shape)}")
    grid = x.shape[-1]
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(x).abs() ** 2
    acf = torch.fft.ifft2(power).real
    half = grid // 2
    lengths = []
    for c in range(x.shape[0]):
        zero = float(acf[c, 0, 0])
        if zero <= 0.0:
            lengths.append(float(half))
            continue
        curve = ((acf[c, 0, : half + 1] + acf[c, : half + 1, 0]) / (2.0 * zero)).tolist()
        lengths.append(_first_crossing(curve, _INV_E, half))
    return sum(lengths) / len(lengths)


def _first_crossing(curve: list[float], level: float, default: int) -> float:
    for lag in range(1, len(curve)):
        if curve[lag] < level:
            prev = curve[lag - 1]
            return lag - 1 + (prev - level) / (prev - curve[lag])
    return float(default)
