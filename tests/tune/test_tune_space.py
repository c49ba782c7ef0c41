"""The search space: parsing, and every key and value checked against the schema."""

import pytest

from geneae.config import RunConfig
from geneae.errors import ConfigError
from geneae.tune import build_space, parse_space_text, read_space_file


class FakeTrial:
    """Records what a space asks for and answers with the lower bound / first choice."""

    def __init__(self):
        self.asked = []

    def suggest_int(self, name, low, high):
        self.asked.append(("int", name, low, high))
        return low

    def suggest_float(self, name, low, high, log=False):
        self.asked.append(("log" if log else "float", name, low, high))
        return low

    def suggest_categorical(self, name, choices):
        self.asked.append(("choice", name, tuple(choices)))
        return choices[-1]


def space(text, base=None):
    return build_space(parse_space_text(text), base or RunConfig())


def test_kinds_are_parsed_and_suggested():
    s = space(
        "model.latent_dim=int:8:64 train.lr=log:1e-4:1e-2 model.dropout=float:0:0.3 "
        "model.likelihood=nb,zinb,poisson model.hidden=64,128-64"
    )
    trial = FakeTrial()
    values = s.suggest(trial)
    assert trial.asked == [
        ("int", "model.latent_dim", 8, 64),
        ("log", "train.lr", 1e-4, 1e-2),
        ("float", "model.dropout", 0.0, 0.3),
        ("choice", "model.likelihood", ("nb", "zinb", "poisson")),
        ("choice", "model.hidden", ("64", "128-64")),
    ]
    # list choices come back as config values; the rest as drawn
    assert values == {
        "model.latent_dim": 8,
        "train.lr": 1e-4,
        "model.dropout": 0.0,
        "model.likelihood": "poisson",
        "model.hidden": [128, 64],
    }
    RunConfig().updated(values)  # a valid configuration
    assert s.to_dict()["model.latent_dim"] == "int:8:64"
    assert s.overrides({"model.hidden": "64"}) == {"model.hidden": [64]}


def test_choices_are_typed_like_yaml():
    s = space("train.batch_size=32,64 preprocess.scale=true,false train.gradient_clip=null,1.0")
    trial = FakeTrial()
    s.suggest(trial)
    assert trial.asked[0][2] == (32, 64)
    assert trial.asked[1][2] == (True, False)
    assert trial.asked[2][2] == (None, 1.0)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("latent_dim=int:2:8", "Did you mean model.latent_dim"),
        ("model.latnet_dim=int:2:8", "'model.latnet_dim'"),
        ("modle.latent_dim=int:2:8", "not a config key"),
        ("model.latent_dim=int:8:2", "LOW must be below HIGH"),
        ("model.latent_dim=float:0.5:8", "takes integers"),
        ("model.latent_dim=int:0:8", "model.latent_dim"),  # below the schema's ge=1
        ("train.lr=log:0:1e-2", "LOW > 0"),
        ("train.lr=uniform:1:2", "unknown range kind"),
        ("model.likelihood=nb,gamma", "model.likelihood"),
        ("model.likelihood=nb", "one value is not a search"),
        ("model.likelihood=nb,nb", "given twice"),
        ("model.hidden=int:8:64", "not a number"),
        ("model.hidden=64,12x", "layer sizes"),
        ("train.seed=int:0:9", "lucky initialisation"),
        ("data.covariate=a,b", "cannot be tuned"),
        ("evaluate.n_clusters=int:2:9", "cannot be tuned"),
        ("model.latent_dim", "KEY=SPEC"),
    ],
)
def test_bad_entries_name_the_key(text, fragment):
    with pytest.raises(ConfigError, match="search space|--space") as err:
        space(text)
    assert fragment in str(err.value)


def test_values_are_checked_against_the_base():
    # mask_rate_min above mask_rate_max is refused by the model section's own check
    base = RunConfig().updated({"model.mask_rate_max": 0.2})
    with pytest.raises(ConfigError, match="model.mask_rate_min"):
        space("model.mask_rate_min=float:0.1:0.3", base)


def test_an_empty_space_says_how_to_give_one():
    with pytest.raises(ConfigError, match="--space"):
        build_space({}, RunConfig())


def test_space_file_and_yaml_lists(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "tune:\n  space:\n    model.latent_dim: int:2:8\n    model.hidden: [[64], [128, 64]]\n"
    )
    entries = read_space_file(path)
    s = build_space(entries, RunConfig())
    trial = FakeTrial()
    assert s.suggest(trial)["model.hidden"] == [128, 64]
    assert trial.asked[1][2] == ("64", "128-64")
    with pytest.raises(ConfigError, match="not found"):
        read_space_file(tmp_path / "missing.yaml")
