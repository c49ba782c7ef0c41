"""What a trained module computes: the forward pass, reconstruction spaces, loadings.

The work behind :meth:`GeneAE.predict` (:func:`forward_pass`, every output of one pass
over prepared data), :meth:`GeneAE.reconstruct` in each of its spaces (:func:`in_space`,
:func:`in_values_space`, :func:`units_of_space`) and :meth:`GeneAE.gene_loadings`
(:func:`decoder_loadings`). Pure functions of a module or preprocessor and their inputs;
the facade (:mod:`geneae.model`) checks that the model is fitted and prepares the data.
"""

from __future__ import annotations

from collections.abc import Callable

import anndata as ad
import numpy as np
import torch

from geneae.batches import ExpressionTensors
from geneae.errors import InputError
from geneae.facts import DataFacts
from geneae.likelihoods import COUNT_LIKELIHOODS
from geneae.module import Ensemble, member_codes_of
from geneae.pp import Preprocessor
from geneae.prepared import Outputs

__all__ = [
    "SPACES",
    "check_space",
    "decoder_loadings",
    "forward_pass",
    "in_space",
    "in_values_space",
    "units_of_space",
]

SPACES = ("target", "input", "values")


def check_space(space: str) -> None:
    """Raise :class:`InputError` unless ``space`` is one of :data:`SPACES`."""
    if space not in SPACES:
        raise InputError(f"space must be one of {', '.join(SPACES)}; got {space!r}.")


@torch.no_grad()
def forward_pass(
    module: torch.nn.Module,
    tensors: ExpressionTensors,
    obs_names: np.ndarray,
    *,
    n_genes: int,
    likelihood: str,
    reconstruction_rows: np.ndarray | None,
    batch_size: int,
) -> Outputs:
    """Every output of ``module`` for ``tensors``, one batch of rows at a time.

    Parameters
    ----------
    module
        A trained module (put in eval mode here).
    tensors
        The prepared data's tensors.
    obs_names
        The samples, in row order.
    n_genes
        Number of model genes (the width of an empty reconstruction).
    likelihood
        The model's likelihood (count likelihoods decode from each row's library size).
    reconstruction_rows
        Sorted row indices whose reconstruction to keep (None: all rows; empty: decode
        nothing, latent summaries only).
    batch_size
        Rows per forward pass.

    Returns
    -------
    Outputs
        Latent means and, where the module has them, variances, responsibilities and the
        reconstruction of the kept rows.

    Raises
    ------
    InputError
        When a count model is to decode data without raw counts.
    """
    keep = None if reconstruction_rows is None else np.asarray(reconstruction_rows)
    decode = keep is None or len(keep) > 0
    if decode and likelihood in COUNT_LIKELIHOODS and tensors.library is None:
        raise InputError(
            f"likelihood {likelihood!r} reconstructs counts from each "
            "cell's library size, but the data have no raw counts. Give raw counts (X or "
            "layers['counts']); encoding needs none."
        )
    module.eval()
    device = next(module.parameters()).device
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, tensors.n_obs, batch_size):
        stop = min(start + batch_size, tensors.n_obs)
        batch = {k: v.to(device) for k, v in tensors.inputs(start, stop).items()}
        out = module.predict(
            batch["x"], batch.get("library"), batch.get("covariate"), decode=decode
        )
        if decode and keep is not None:
            local = keep[(keep >= start) & (keep < stop)] - start
            out["reconstruction"] = out["reconstruction"][torch.as_tensor(local)]
        for key, value in out.items():
            parts.setdefault(key, []).append(value.float().cpu().numpy())
    arrays = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
    return Outputs(
        obs_names=obs_names,
        latent=arrays["latent"],
        latent_var=arrays.get("latent_var"),
        cluster_probabilities=arrays.get("cluster_probabilities"),
        reconstruction=arrays.get("reconstruction", np.zeros((0, n_genes), np.float32)),
        reconstruction_rows=keep,
    )


def decoder_loadings(
    module: torch.nn.Module,
    latent: np.ndarray,
    *,
    counts_model: bool,
    has_covariate: bool,
    max_cells: int,
    seed: int,
) -> np.ndarray:
    """Genes x latent dims: the mean Jacobian of a deep decoder's mean at given codes.

    The decoded mean is taken as log1p of the mean at a library of 1e4 for count models;
    the Jacobian with respect to the latent code is averaged over up to ``max_cells`` of
    the codes in ``latent``, drawn with ``seed``.

    Parameters
    ----------
    module
        A trained module.
    latent
        Latent codes (n x latent_dim), e.g. from :meth:`GeneAE.encode`.
    counts_model
        Whether the likelihood models counts.
    has_covariate
        Whether the module takes a covariate (level 0 is used).
    max_cells
        Most codes to average over.
    seed
        Seed of the draw of codes.

    Returns
    -------
    numpy.ndarray
        Genes x latent dims, positive where the gene rises as the dimension grows; an
        ensemble's PCA block gives its axes (see :class:`~geneae.module.ensemble.Ensemble`).
    """
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(latent), size=min(max_cells, len(latent)), replace=False)
    z = torch.as_tensor(latent[np.sort(rows)], dtype=torch.float32)
    library = torch.full((len(z),), 1e4) if counts_model else None
    covariate = torch.zeros(len(z), dtype=torch.int64) if has_covariate else None
    # An ensemble decodes the mean of its members' means, each from its own block of the
    # code: a dimension of block i moves member i's mean only, so only that member is
    # differentiated (a third of the work for three members).
    parts = member_codes_of(module, z)

    def mean_of(member: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        # In the model input's units over the member's genes (geneae.module.views); beside
        # a count likelihood, a wide member's as counts (Ensemble.in_target_units).
        if isinstance(module, Ensemble):
            return lambda code: module.in_target_units(
                member, member.decoded_mean(code, library, covariate), library
            )
        return lambda code: member.decoded_mean(code, library, covariate)

    module.eval()
    # One Jacobian-vector product per latent dimension, for all cells at once (one backward
    # pass per gene otherwise), by autograd's double backward: the gradient of
    # <J^T probe, e_dim> with respect to the probe is J e_dim. Not forward mode: torch's
    # forward mode of a linear layer imports torch._dynamo (~2 s of CPU in a process that
    # has no other use for it); and only scalar outputs are differentiated, since an
    # explicit output gradient imports sympy (0.5 s).
    graphs = []
    with torch.enable_grad():
        for member, code, scale in parts:
            code = code.detach().requires_grad_(True)
            out = mean_of(member)(code)
            probe = torch.zeros_like(out, requires_grad=True)
            (pulled,) = torch.autograd.grad((out * probe).sum(), code, create_graph=True)
            graphs.append((out.detach(), probe, pulled, scale))
    # Each member's mean counts 1/K in the ensemble's (of a gene, 1 / the members that
    # decode it, where members read different genes); its code moves by scale.
    views = isinstance(module, Ensemble) and module.has_views
    share = module.coverage() if views else torch.tensor(float(len(graphs)))
    # d log1p(mean) = d mean / (1 + mean), at the mean of the members' means.
    mean = None
    if counts_model:
        outs = [out for out, *_ in graphs]
        mean = module.gene_mean(outs) if views else sum(outs) / len(outs)
    columns = []
    for out, probe, pulled, scale in graphs:
        for dim in range(pulled.shape[1]):
            (derivative,) = torch.autograd.grad(pulled[:, dim].sum(), probe, retain_graph=True)
            if mean is not None:
                derivative = derivative / (1.0 + mean[..., : out.shape[-1]])
            column = derivative.mean(0)
            if views:  # a member's genes lead the model genes; 0 on those it does not read
                column = torch.nn.functional.pad(column, (0, len(share) - len(column)))
            columns.append(column * scale / share)
    if isinstance(module, Ensemble) and module.pca_genes:
        columns.extend(module.pca_loadings().unbind(1))  # a PCA block decodes nothing
    return torch.stack(columns, dim=1).numpy()


def in_space(
    preprocessor: Preprocessor,
    reconstruction: np.ndarray,
    space: str,
    data: ad.AnnData | None,
    *,
    counts_model: bool,
    facts: DataFacts | None = None,
) -> np.ndarray:
    """A reconstruction in ``space`` (see :meth:`GeneAE.reconstruct` for the spaces).

    Parameters
    ----------
    preprocessor
        The model's fitted preprocessor.
    reconstruction
        Expected values in the model's target space (cells x model genes).
    space
        One of :data:`SPACES`.
    data
        The cells the reconstruction is of, as given (not preprocessed), rows in the order
        of ``reconstruction``: all of the data or one chunk of it. Their library sizes put
        a non-count model's ``values`` on each cell's scale; other spaces need no data
        (None).
    counts_model
        Whether the likelihood models counts (its target space is already the counts).
    facts
        The facts of the whole data (where the raw counts are), when ``data`` is a part
        of it; None: described from ``data``.

    Returns
    -------
    numpy.ndarray
        The reconstruction in ``space``.
    """
    check_space(space)
    if space == "input":  # the counts through the fitted value steps; else the input already
        return preprocessor.counts_to_input(reconstruction) if counts_model else reconstruction
    if space == "target" or counts_model:
        return reconstruction
    assert data is not None, "a non-count model's values space needs the data"
    return in_values_space(preprocessor, reconstruction, data, facts=facts)


def in_values_space(
    preprocessor: Preprocessor,
    reconstruction: np.ndarray,
    data: ad.AnnData,
    *,
    facts: DataFacts | None = None,
) -> np.ndarray:
    """A non-count model's reconstruction in the units of the data given.

    The fitted scaling and log1p are undone, where the data were library-size normalised
    each cell is put back on its own library size, and values that were taken out of a log
    (``preprocess.unlog``) are put back on it.

    Parameters
    ----------
    preprocessor
        The model's fitted preprocessor.
    reconstruction
        Expected values in the preprocessed input space (cells x model genes).
    data
        The data the reconstruction is of (for the cells' library sizes).
    facts
        The facts of the whole data, when ``data`` is a chunk of it (None: described
        from ``data``).

    Returns
    -------
    numpy.ndarray
        The reconstruction in the units of ``data``.
    """
    assert preprocessor.steps_ is not None
    values = preprocessor.input_to_values(reconstruction)
    steps = preprocessor.steps_
    if steps.normalize:
        library = preprocessor.library_sizes(data, facts=facts)
        values *= (library / steps.target_sum).astype(np.float32)[:, None]
    scale = steps.log_scale
    return values if scale is None else scale.redo(values).astype(np.float32)


def units_of_space(
    preprocessor: Preprocessor, space: str, *, counts_model: bool, genes_as_samples: bool
) -> str:
    """What a reconstruction in ``space`` holds, in words (for output files).

    Parameters
    ----------
    preprocessor
        The model's fitted preprocessor.
    space
        One of :data:`SPACES`.
    counts_model
        Whether the likelihood models counts.
    genes_as_samples
        Whether the model's rows are genes.

    Returns
    -------
    str
        A short description of the values.
    """
    if genes_as_samples:
        return "each gene standardised over the samples (the gene model's input)"
    if counts_model and space != "input":
        return "expected counts"
    if space == "values":
        kind = preprocessor.value_type_ or "other"
        scale = preprocessor.steps_.log_scale if preprocessor.steps_ is not None else None
        kind = f"{kind}: {scale}" if scale else kind  # put back on it (in_values_space)
        return "expected counts" if kind == "raw counts" else f"input units ({kind})"
    return f"preprocessed model input ({preprocessor.describe_steps()})"
