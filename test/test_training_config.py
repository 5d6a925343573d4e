"""Training configs: ``base:`` inheritance, so a variant states only what it changes."""

from pathlib import Path

import pytest

from silk_ros.datasets.paths import REPO_ROOT
from training.config import TrainConfig
from training.matcher import MatcherTrainConfig

CONFIGS = REPO_ROOT / "training" / "configs"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_variant_inherits_its_base_and_merges_sections_key_by_key(tmp_path):
    _write(tmp_path / "recipe.yaml", "crop: 88\nlr: 1.0e-3\nhomography: {plane_distance: 2.0, in_plane: 0.2}\n")
    _write(tmp_path / "variant" / "v.yaml", "base: ../recipe.yaml\nlr: 5.0e-4\nhomography: {scale_first: false}\n")
    config = TrainConfig.from_yaml(tmp_path / "variant" / "v.yaml", overrides=["crop=96"])
    assert (config.crop, config.lr) == (96, 5.0e-4)  # the override wins over the file, the file over its base
    assert (config.homography.plane_distance, config.homography.in_plane) == (2.0, 0.2)  # kept from the base
    assert config.homography.scale_first is False


def test_a_base_chain_resolves_and_a_cycle_is_an_error(tmp_path):
    _write(tmp_path / "a.yaml", "crop: 64\n")
    _write(tmp_path / "b.yaml", "base: a.yaml\nsteps: 7\n")
    _write(tmp_path / "c.yaml", "base: b.yaml\nseed: 3\n")
    config = TrainConfig.from_yaml(tmp_path / "c.yaml")
    assert (config.crop, config.steps, config.seed) == (64, 7, 3)
    _write(tmp_path / "x.yaml", "base: y.yaml\n")
    _write(tmp_path / "y.yaml", "base: x.yaml\n")
    with pytest.raises(ValueError, match="its own base"):
        TrainConfig.from_yaml(tmp_path / "x.yaml")
    _write(tmp_path / "missing.yaml", "base: nowhere.yaml\n")
    with pytest.raises(FileNotFoundError, match="nowhere.yaml"):
        TrainConfig.from_yaml(tmp_path / "missing.yaml")
    _write(tmp_path / "typo.yaml", "base: a.yaml\ncrops: 64\n")  # a misspelt key is still loud through a base
    with pytest.raises(ValueError, match="crops"):
        TrainConfig.from_yaml(tmp_path / "typo.yaml")


def test_the_shipped_variants_are_their_recipe_plus_what_they_change():
    """The committed runs resume from these files: each variant must load as its recipe with its stated changes."""
    recipe = MatcherTrainConfig.from_yaml(CONFIGS / "matcher_mu_context.yaml")
    wide = MatcherTrainConfig.from_yaml(CONFIGS / "matcher_mu_context_wide.yaml")
    assert (wide.pool_pairs, wide.room_pairs, wide.steps, wide.lr) == (3200, 1600, 4000, 5.0e-4)
    assert (wide.context_scale, wide.crop, wide.top_k) == (recipe.context_scale, recipe.crop, recipe.top_k) == (
        0.5, 224, 512
    )
    finetune = TrainConfig.from_yaml(CONFIGS / "mu_cpu_finetune.yaml")
    context = TrainConfig.from_yaml(CONFIGS / "mu_cpu_context.yaml")
    assert (context.context_scale, finetune.context_scale) == (0.5, 0.0)
    assert (context.crop, context.temperature, context.init_weights) == (88, 0.05, "silk-mu") == (
        finetune.crop, finetune.temperature, finetune.init_weights
    )
