"""The command line's options come from the configuration schema (one home per choice)."""

import typing

import pytest

from geneae.cli import main
from geneae.cli.flags import TRAIN_FLAGS, choices, cli_type, field_info
from geneae.likelihoods import LIKELIHOODS


@pytest.mark.parametrize(("flag", "key"), sorted(TRAIN_FLAGS.items()))
def test_every_flag_is_a_config_field_and_documented(flag, key, capsys):
    info = field_info(key)  # raises KeyError for a flag without a field
    assert info.description, f"{key} needs a description: it is the flag's help"
    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"--{flag.replace('_', '-')}" in text and f"[config: {key}]" in text
    # the flag parses the field's own type
    kinds = {a for a in typing.get_args(info.annotation) or (info.annotation,)}
    assert cli_type(key) in kinds or cli_type(key) is str


def test_choices_come_from_the_schema():
    assert set(choices("model.likelihood")) == {"auto", *LIKELIHOODS}
    assert set(choices("model.family")) == {"ae", "dae", "vae", "gmvae"}
    assert choices("model.latent_dim") == ()


def test_a_bad_choice_names_the_flag_the_key_and_the_allowed_values(tmp_path, capsys):
    data = tmp_path / "x.csv"
    data.write_text("cell,g1,g2\nc1,1,2\nc2,3,4\n")
    code = main(["train", str(data), "--out", str(tmp_path / "r"), "--likelihood", "gamma"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--likelihood" in err and "model.likelihood" in err and "'zinb'" in err
    assert not (tmp_path / "r").exists()


def test_the_help_quotes_the_values_the_data_give():
    """A field left at None says what resolve gives it, from the values resolve uses."""
    from geneae.config import RunConfig
    from geneae.data_defaults import (
        BATCH_SIZE,
        CLUSTER_EPOCHS,
        CLUSTER_SAMPLES_SEEN,
        MEMBERS,
        MEMBERS_SMALL,
        MIN_BATCH_SIZE,
        SMALL_DATA_BELOW,
        STANDARDIZED_WEIGHT,
    )
    from geneae.resolve import default_batch_size, default_cluster_epochs, members

    config = RunConfig()
    assert members(config, n_obs=SMALL_DATA_BELOW - 1) == MEMBERS_SMALL
    assert members(config, n_obs=SMALL_DATA_BELOW) == MEMBERS
    described = field_info("model.members").description
    assert f"None: {MEMBERS}, {MEMBERS_SMALL} for fewer than {SMALL_DATA_BELOW} " in described
    assert f"on for fewer than {SMALL_DATA_BELOW} " in field_info("model.pca_block").description
    weight = field_info("model.standardized_weight").description
    assert f"None: {STANDARDIZED_WEIGHT} for count" in weight
    assert default_batch_size(10 * BATCH_SIZE) == BATCH_SIZE
    assert default_batch_size(BATCH_SIZE) == max(MIN_BATCH_SIZE, BATCH_SIZE // 4)
    batch = field_info("train.batch_size").description
    assert f"None: {BATCH_SIZE}," in batch and f"(at least {MIN_BATCH_SIZE};" in batch
    assert default_cluster_epochs(10**7) == CLUSTER_EPOCHS
    assert default_cluster_epochs(1000) == CLUSTER_SAMPLES_SEEN // 1000
    phase = field_info("train.cluster_epochs").description
    assert f"at least {CLUSTER_EPOCHS} and at least {CLUSTER_SAMPLES_SEEN:,.0f} samples" in phase
