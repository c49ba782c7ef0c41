"""How much of the latent space a model uses: variance and KL divergence per dimension.

A latent dimension a VAE does not use ("posterior collapse") has q(z|x) equal to the prior
for every cell: its KL to N(0, 1) is ~0 and its posterior means do not vary across cells.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geneae.errors import InputError

# Dimensions whose KL (nats, averaged over cells) or variance is at or below this count as
# unused; 0.01 is the customary threshold for "active units" in the VAE literature.
ACTIVE_THRESHOLD = 0.01
_FLOAT32_SMALLEST = float(np.finfo(np.float32).smallest_subnormal)


def kl_per_dimension(qz_mean: Any, qz_var: Any) -> np.ndarray:
    """KL divergence of N(mean, var) to N(0, 1) per latent dimension, averaged over cells.

    Parameters
    ----------
    qz_mean, qz_var
        Cells x latent dims arrays of the posterior means and variances (not log-variances).
        Variances of exactly 0 (float32 underflow) count as the smallest positive float32.

    Returns
    -------
    numpy.ndarray
        Shape (latent dims,): ``mean_cells(0.5 * (mean**2 + var - 1 - log(var)))`` in nats.
    """
    mean = np.asarray(qz_mean, dtype=np.float64)
    var = np.asarray(qz_var, dtype=np.float64)
    if mean.ndim != 2 or mean.shape != var.shape:
        raise InputError(
            f"qz_mean {mean.shape} and qz_var {var.shape} must both be cells x latent dims; "
            "for a GMVAE pass the moments of the mixture-weighted posterior."
        )
    if np.any(var < 0) or not np.all(np.isfinite(var)):
        raise InputError(
            "qz_var must hold non-negative finite variances (pass exp(log_var), not log_var)."
        )
    # Exact zeros come from exp(log_var) underflowing in float32: use the smallest positive
    # float32 instead, which bounds the KL from below rather than making it infinite.
    var = np.maximum(var, _FLOAT32_SMALLEST)
    kl = 0.5 * (mean**2 + var - 1.0 - np.log(var))
    return kl.mean(axis=0)


def latent_usage(
    latent: Any, qz_var: Any = None, *, threshold: float = ACTIVE_THRESHOLD
) -> dict[str, Any]:
    """Summarise which latent dimensions carry information.

    Parameters
    ----------
    latent
        Cells x latent dims: the latent means (or codes of a deterministic autoencoder).
    qz_var
        Optional cells x latent dims posterior variances of a variational model.
    threshold
        A dimension is active when its KL (variational models) or, without ``qz_var``, the
        variance of its codes across cells exceeds this.

    Returns
    -------
    dict
        JSON-ready: ``variance`` (list per dim), ``kl`` (list per dim, or None),
        ``n_dims``, ``n_active``, ``active`` (list of bools), ``criterion`` ("kl" or
        "variance") and ``threshold``.

    Notes
    -----
    The variance criterion depends on the scale of the codes: a deterministic autoencoder
    whose codes are all tiny shows few active dimensions. Read it together with the
    variance bars in the report.
    """
    z = np.asarray(latent, dtype=np.float64)
    if z.ndim != 2:
        raise InputError(f"latent must be cells x latent dims, got shape {z.shape}.")
    variance = z.var(axis=0)
    kl = None if qz_var is None else kl_per_dimension(z, qz_var)
    criterion = "variance" if kl is None else "kl"
    active = (variance if kl is None else kl) > threshold
    return {
        "variance": [float(v) for v in variance],
        "kl": None if kl is None else [float(v) for v in kl],
        "n_dims": int(z.shape[1]),
        "n_active": int(active.sum()),
        "active": [bool(a) for a in active],
        "criterion": criterion,
        "threshold": float(threshold),
    }
