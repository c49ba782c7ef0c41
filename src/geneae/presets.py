"""Named presets: the architectures of the literature as run configurations.

Each preset is a set of overrides (dotted keys) on the default :class:`RunConfig`, with
the source it follows. Presets only override fields; what the defaults become for a
dataset is decided in :mod:`geneae.resolve` (``recommended`` is the defaults themselves).
``geneae train --preset NAME`` and ``GeneAE.from_preset(NAME)`` use them; flags and YAML
values still override a preset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from geneae.config import RunConfig
from geneae.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A named configuration and where it comes from."""

    name: str
    summary: str
    source: str
    overrides: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "recommended",
            "geneae's defaults, decided from the data (geneae.resolve): on raw counts an NB "
            "VAE on z-scored log-normalised input, 1 x 128 hidden, 10 latent, KL warm-up to "
            "beta 0.3; otherwise a VAE with squared error on log values (log1p'd if "
            "unlogged); both with the standardised term and the clustering phase, three "
            "members of derived seeds side by side",
            "chosen by geneae's benchmark across the development datasets (BENCHMARKS.md)",
            {},
        ),
        Preset(
            "scvi-like",
            "VAE with NB likelihood, one hidden layer of 128, 10 latent, observed library",
            "Lopez et al., Deep generative modeling for single-cell transcriptomics, "
            "Nat. Methods 15:1053 (2018) (scVI)",
            {
                "preprocess.preset": "counts",
                "model.family": "vae",
                "model.likelihood": "nb",
                "model.hidden": [128],
                "model.latent_dim": 10,
                "model.dropout": 0.1,
                "model.norm": "batch",
                "train.kl_schedule": "warmup",
                "train.kl_weight": 1.0,
                "train.batch_size": 128,
                "train.lr": 1e-3,
            },
        ),
        Preset(
            "dca-zinb",
            "deterministic count autoencoder 64-32-64 with ZINB likelihood",
            "Eraslan et al., Single-cell RNA-seq denoising using a deep count autoencoder, "
            "Nat. Commun. 10:390 (2019) (DCA)",
            {
                "preprocess.preset": "counts",
                "model.family": "ae",
                "model.likelihood": "zinb",
                "model.hidden": [64],
                "model.latent_dim": 32,
                "model.decoder_hidden": [64],
                "model.norm": "batch",
                "model.dropout": 0.0,
                "train.batch_size": 32,
                "train.lr": 1e-3,
            },
        ),
        Preset(
            "scvae-gmvae",
            "Gaussian-mixture VAE with NB likelihood; its mixture components are clusters",
            "Grønbech et al., scVAE: variational auto-encoders for single-cell gene "
            "expression data, Bioinformatics 36:4415 (2020)",
            {
                "preprocess.preset": "counts",
                "model.family": "gmvae",
                "model.likelihood": "nb",
                "model.hidden": [128, 64],
                "model.latent_dim": 32,
                "model.n_components": 10,
                "model.norm": "batch",
                "train.kl_schedule": "warmup",
                "train.kl_weight": 1.0,
                "train.batch_size": 128,
                "train.lr": 1e-3,
                "evaluate.cluster_method": "gmvae",
            },
        ),
        Preset(
            "deep-ae",
            "deep autoencoder 1024-512-256-32, ReLU, batch norm, dropout 0.2, MSE",
            "the deep-autoencoder notebooks on TCGA / GTEx expression (Adam 1e-3, weight "
            "decay 1e-5, ReduceLROnPlateau)",
            {
                "preprocess.preset": "standardize",
                "model.family": "ae",
                "model.likelihood": "mse",
                "model.hidden": [1024, 512, 256],
                "model.latent_dim": 32,
                "model.activation": "relu",
                "model.norm": "batch",
                "model.dropout": 0.2,
                "train.batch_size": 128,
                "train.lr": 1e-3,
                "train.weight_decay": 1e-5,
                "train.lr_scheduler": True,
            },
        ),
        Preset(
            "masked-ae",
            "symmetric autoencoder 100-10-100 trained with the zero-masked (non-zero) MSE",
            "the single-cell autoencoder notebooks' non-zero MSE for dropout-heavy data",
            {
                "preprocess.preset": "lognorm",
                "model.family": "ae",
                "model.likelihood": "masked_mse",
                "model.hidden": [100],
                "model.latent_dim": 10,
                "model.norm": "none",
                "model.dropout": 0.0,
                "train.batch_size": 128,
                "train.lr": 1e-3,
            },
        ),
        Preset(
            "tybalt-vae",
            "Tybalt: top 5,000 genes by MAD, min-max to [0, 1], one hidden layer of 100, "
            "100 latent, Bernoulli (BCE), kappa warm-up, batch 50, lr 5e-4",
            "Way & Greene, Extracting a biologically relevant latent space from cancer "
            "transcriptomes with variational autoencoders, PSB 23:80 (2018)",
            {
                "preprocess.preset": "minmax",
                "preprocess.hvg_flavor": "mad",
                "preprocess.n_top_genes": 5000,
                "model.family": "vae",
                "model.likelihood": "bernoulli",
                "model.hidden": [100],
                "model.latent_dim": 100,
                "model.activation": "relu",
                "model.norm": "batch",
                "model.dropout": 0.0,
                "train.kl_schedule": "warmup",
                "train.kl_kappa": 1.0,
                "train.kl_weight": 1.0,
                "train.batch_size": 50,
                "train.lr": 5e-4,
                "train.max_epochs": 50,
            },
        ),
        Preset(
            "adage-dae",
            "ADAGE: denoising autoencoder, one hidden layer of 50, masking noise 0.1",
            "Tan et al., ADAGE-based integration of publicly available Pseudomonas "
            "aeruginosa gene expression data, mSystems 1:e00025-15 (2016)",
            {
                "preprocess.preset": "minmax",
                "model.family": "dae",
                "model.likelihood": "bernoulli",
                "model.hidden": [],
                "model.latent_dim": 50,
                "model.decoder_hidden": [],
                "model.activation": "sigmoid",
                "model.norm": "none",
                "model.dropout": 0.0,
                "model.noise": "mask",
                "model.mask_rate": 0.1,
                "train.batch_size": 10,
                "train.lr": 1e-3,
            },
        ),
        Preset(
            "beta-vae",
            "beta-VAE: ELU, batch norm, dropout, cyclic cosine KL annealing to 0.1, "
            "dynamic input masking 5-25%, early stopping",
            "beta-VAE with cyclical annealing used on GTEx expression (cyclical schedule: "
            "Fu et al., NAACL 2019)",
            {
                "preprocess.preset": "standardize",
                "model.family": "vae",
                "model.likelihood": "gaussian",
                "model.hidden": [512, 256],
                "model.latent_dim": 32,
                "model.activation": "elu",
                "model.norm": "batch",
                "model.dropout": 0.1,
                "model.noise": "dynamic_mask",
                "model.mask_rate_min": 0.05,
                "model.mask_rate_max": 0.25,
                "train.kl_schedule": "cyclic",
                "train.kl_weight": 0.1,
                "train.kl_cycles": 4,
                "train.batch_size": 128,
                "train.lr": 1e-3,
                "train.early_stopping": True,
            },
        ),
    ]
}


# geneae's own additions to a model, which the published architectures do not have: the
# presets named after a paper leave them off, so that they are the paper's model. (They
# also name their batch size and learning rate: geneae's defaults, 256 at 2e-3, are not
# the papers'.)
GENEAE_ADDITIONS: dict[str, Any] = {
    "model.standardized_weight": 0.0,
    "train.cluster_epochs": 0,
    "model.members": 1,
}


def preset_overrides(name: str) -> dict[str, Any]:
    """The dotted-key overrides of preset ``name`` (ConfigError listing names if unknown).

    Every preset but ``recommended`` also turns :data:`GENEAE_ADDITIONS` off unless it sets
    them itself.
    """
    try:
        overrides = dict(PRESETS[name].overrides)
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}."
        ) from None
    if name == "recommended":
        return overrides
    return {**GENEAE_ADDITIONS, **overrides}


def preset_config(name: str, base: RunConfig | None = None) -> RunConfig:
    """The run configuration of preset ``name`` (on top of ``base`` or the defaults)."""
    config = (base or RunConfig()).updated(preset_overrides(name), source=f"preset {name!r}")
    config.preset = name
    return config
