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
    assert cfg.data.labels == {1: 1, 2: 2}


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    cfg = load_config(overrides={"preprocess.size": [96, 96], "data.labels": {1: 1}})
    path = tmp_path / "resolved.yaml"
    path.write_text(cfg.to_yaml())
    assert load_config(path) == cfg.absolute_paths()
    assert load_config(path).data.prepared == Path.cwd() / "prepared"


def test_yaml_paths_are_relative_to_the_file_flags_to_the_current_folder(tmp_path: Path) -> None:
    project = tmp_path / "myproject"
    project.mkdir()
    (project / "cardioseg.yaml").write_text("data:\n  source: data\n  prepared: prepared\ntrain:\n  run_dir: runs/first\n"
                                           "model:\n  encoder_weights: imagenet\n")
    cfg = load_config(project / "cardioseg.yaml", {"evaluate.out_dir": "elsewhere"})
    assert cfg.data.source == project / "data" and cfg.data.prepared == project / "prepared"
    assert cfg.train.run_dir == project / "runs" / "first" and cfg.model.encoder_weights == "imagenet"
    assert cfg.evaluate.out_dir == Path("elsewhere")


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


def test_long_problem_lists_show_ten_lines_and_name_the_full_list(tmp_path: Path) -> None:
    from cardioseg.errors import problem_list

    problems = [(f"/data/img{i:03d}.png", "truncated PNG") for i in range(533)]
    message = problem_list("533 bad file(s):", problems, tmp_path / "bad.txt")
    lines = message.splitlines()
    assert lines[0] == "533 bad file(s):" and lines[1] == "  /data/img000.png: truncated PNG"
    assert lines[10] == "  /data/img009.png: truncated PNG" and lines[11] == "  ... and 523 more"
    assert lines[12] == f"533 in all, listed in {tmp_path / 'bad.txt'}" and len(lines) == 13
    assert max(map(len, lines)) < 200
    assert (tmp_path / "bad.txt").read_text().splitlines()[532] == "/data/img532.png: truncated PNG"


def test_a_base_file_is_laid_under_the_variant(tmp_path: Path) -> None:
    """A study's CPU-sized variant names its base and only what differs; each file's paths are its own."""
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "protocol.yaml").write_text(
        "data: {prepared: ../runs/full, seed: 3}\npreprocess: {size: [256, 256], clahe: true}\n"
        "train: {epochs: 20, lr: 0.001}\n")
    (tmp_path / "study" / "cpu").mkdir()
    variant = tmp_path / "study" / "cpu" / "small.yaml"
    variant.write_text("base: ../protocol.yaml\ndata: {prepared: ../../runs/small}\npreprocess: {size: [64, 64]}\n"
                       "train: {epochs: 2}\n")
    cfg = load_config(variant, {"train.lr": 0.01})
    assert cfg.data.prepared == (tmp_path / "runs" / "small").resolve()
    assert cfg.data.seed == 3 and cfg.preprocess.clahe is True  # kept from the base
    assert cfg.preprocess.size == (64, 64) and cfg.train.epochs == 2 and cfg.train.lr == 0.01
    (tmp_path / "study" / "protocol.yaml").write_text("base: cpu/small.yaml\n")
    with pytest.raises(ConfigError, match="comes back to itself"):
        load_config(variant)
    variant.write_text("base: ../absent.yaml\n")
    with pytest.raises(ConfigError, match=r"not found \(the base of .*small\.yaml\)"):
        load_config(variant)
