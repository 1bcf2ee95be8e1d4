"""The one configuration model: defaults <- YAML <- overrides, with clear errors."""

from pathlib import Path

import pytest

from cardioseg.config import load_config, parse_duration, parse_override
from cardioseg.errors import ConfigError


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 0.01\n  epochs: 3\ndata:\n  labels: {1: 1, 2: 2}\n")
    cfg = load_config(path, {"train.epochs": 7, "model.arch": "fpn"})
    assert cfg.train.lr == 0.01
    assert cfg.train.epochs == 7
    assert cfg.model.arch == "fpn"
    # two foreground classes -> three output channels (softmax)
    assert cfg.model.classes == 3


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(overrides={"preprocess.size": [96, 96], "data.labels": {1: 1}})
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"train.lr": -1}, "train.lr"),
        ({"train.bogus": 1}, "train.bogus"),
        ({"preprocess.median_filter": 4}, "odd"),
        ({"data.split_ratios": [0.5, 0.1, 0.1]}, "adding up to 1"),
        ({"train.time_budget": "five minutes"}, "invalid duration"),
    ],
)
def test_invalid_values_name_the_setting(overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(overrides=overrides)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_config(bad)


def test_durations_and_overrides() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("5m") == 300
    assert parse_duration("1.5h") == 5400
    assert parse_duration("00:05:00") == 300
    assert parse_override("train.lr=3e-4") == ("train.lr", 3e-4)
    assert parse_override("data.labels={1: 1}") == ("data.labels", {1: 1})
    with pytest.raises(ConfigError):
        parse_override("no-equals-sign")
