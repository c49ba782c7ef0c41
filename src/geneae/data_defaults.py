"""The values the data give the settings a configuration leaves at ``None``.

:mod:`geneae.resolve` makes those choices; the configuration's field descriptions quote
these same values (a leaf module: :mod:`geneae.config` cannot import
:mod:`geneae.resolve`, which imports it), so that the two never disagree.
"""

from __future__ import annotations

# The defaults of geneae's additions, chosen across every development dataset at once
# (BENCHMARKS.md "Choosing the default"): the standardised term's weight relative to the
# likelihood and the members of an ensemble (three models of derived seeds, latents side
# by side: docs/design/default-model.md, round 8).
STANDARDIZED_WEIGHT = 1.5
MEMBERS = 3

# The training batch: 256; where that would hold every training sample (one full-batch step
# an epoch), a power of two at or below a quarter of them, at least 32. On 120 bulk samples
# of a weak signal, 256 lost 0.11 ARI to PCA and 32 led it (design record, round 53); on
# 500 cells, 64 was no better than 256 (gains and losses of 0.02-0.04), so larger data keep 256.
BATCH_SIZE = 256
MIN_BATCH_SIZE = 32

# The clustering phase: at least this many epochs, and at least this many samples seen (on
# a small set 20 epochs are few steps: 60 on 600 bulk samples, where KMeans then cut one
# seed's lineage of close types; design record, round 26).
CLUSTER_EPOCHS = 20
CLUSTER_SAMPLES_SEEN = 8e4

# The most epochs any data-sized default gives (small data: the training, and the clustering
# phase, of fewer than ~1,300 samples). 300 against 400 kept the mean ARI of nine bulk and five
# small single-cell sets within their seeds' noise, with 6-24% fewer epochs on the bulk sets
# (whose narrow members train to the cap) and up to 17% fewer on 700 cells (round 78).
MAX_EPOCHS = 300

# Below this many samples ("small data") an ensemble has MEMBERS_SMALL members and a block
# of principal components of the model input beside them (rounds 55-58). The block: on 80
# bulk samples of six types ARI 0.875 -> 1.000, on 120 bulk samples 0.887 -> 0.792 (PCA
# 0.782); alone beside three members it costs from 750 cells on (-0.007 on four sets) and
# -0.038 at 1,000. Six members beside it: 120 bulk samples 0.828, the 500-cell sets 0.661
# against 0.643 for three members without it, 750 cells 0.658 against 0.647, 1,000 cells
# level (0.630 against 0.636, wider spreads): small data train twice the models.
SMALL_DATA_BELOW = 800
MEMBERS_SMALL = 6

# Compiling a CPU training step (train.compile, geneae.train.compiled) repays itself on long
# training only: the default member's compiled step took 10.3 against 12.4 ms at 256 x 2,000
# (10x PBMC, bf16-mixed, 2 threads; float32 12.3 against 14.1), and a whole epoch, with its
# eager validation, 0.177 against 0.204 s in one process (~3.5e-9 s per batch entry saved),
# after a compile of 33-40 s cold, 6 s with inductor's cache warm. From this many batch
# entries trained (steps x batch x genes) the saving is about 1.5x a cold compile: e.g. 20
# epochs of a million cells at 2,000 genes; the default of 10x PBMC (1,600 steps) is 20x
# short of it.
COMPILE_MIN_ENTRIES = 1.6e10

# An ensemble of two kinds on tables that are not single cells (bulk samples): half the
# members (the wide ones) read the WIDE_GENES most variable genes, each z-scored, with squared
# error and no standardised term (every gene weighs alike); the others the 2,000 most
# variable as the default reads them. Put together after training from two runs' members,
# three and three with a PCA block: 1.000 on the three synthetic tumour sets (the 5,000
# genes alone 0.79-0.80), 0.969 and 0.766 on bulk samples mixed from real cells (the
# default 0.861 and 0.724, unscaled PCA of every gene 0.978 and 0.775); no set more than
# 0.015 below its best PCA (docs/design/default-model.md, rounds 72-73).
WIDE_GENES = 5000
