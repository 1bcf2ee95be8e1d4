"""`cardioseg init`: a starter project a new user can fill without reading the code."""

from __future__ import annotations

from pathlib import Path

from cardioseg.errors import CardiosegError
from cardioseg.fileio import write_text

STARTER_CONFIG = """\
# cardioseg configuration. Every command reads it: cardioseg <command> -c cardioseg.yaml
# Any value can be overridden on the command line: --set train.epochs=30

data:
  source: data            # your raw data (paths here are relative to this file); data/images + data/masks
  layout: auto            # auto | camus | camus_png | msd | sunnybrook | folders
  prepared: prepared      # where `cardioseg prepare` writes the cached, preprocessed dataset
  labels: null            # e.g. {1: 1} keeps label 1 only; {255: 1} for 0/255 masks; null keeps every label
  class_names: null       # one name per foreground class, e.g. [LV cavity, myocardium]
  patient_pattern: '^([^_]+)'   # regex: first group = patient id (patient0001_2CH_ED.png -> patient0001)
  split_ratios: [0.8, 0.1, 0.1] # train / val / test, by patient
  seed: 0

# `cardioseg train` plans the normalisation, crop and input size, the network, batch, learning rate, epochs,
# augmentation and precision from your data and the time budget (`cardioseg plan make prepared --explain`
# shows each choice and why). Uncomment a line to fix that choice yourself; `--no-plan` trains with
# cardioseg's plain defaults.
preprocess:
  # normalize: minmax     # minmax | percentile | zscore | none
  median_filter: 0        # odd kernel size, 0 = off
  clahe: false
  # crop: none            # none | center | auto | roi
  # size: [128, 128]

model:
  # arch: unet            # `cardioseg models` lists them all
  # encoder: resnet18
  encoder_weights: null   # null | imagenet | path/to/local/weights.safetensors

train:
  run_dir: runs/first
  time_budget: 5m         # wall-clock training time; the plan makes the most of it
  # epochs: 20
  # batch_size: 16
  # lr: 0.001
  loss: null              # null: dice_bce for one class, dice_ce for several; or bce | dice | focal
  # augment:
  #   preset: none        # none | light | echo | strong

evaluate:
  split: test
  # postprocess:          # chosen on the validation split by `cardioseg train` (the model's plan); a step set
  #   largest_component: true   # here wins over the model's choice
  #   fill_holes: true
"""

README = """\
Put your images in data/images/ and the matching masks in data/masks/ (same file names,
or with a _mask / _gt suffix). PNG, JPG, TIFF, BMP, DICOM or NPY images, or 3D volumes
(NIfTI .nii/.nii.gz, MetaImage .mhd/.mha, NRRD) -- one kind per project; masks 0/255 or label maps.
Then:

    cardioseg prepare -c cardioseg.yaml
    cardioseg inspect prepared
    cardioseg train -c cardioseg.yaml
    cardioseg evaluate -c cardioseg.yaml --model runs/first/model.safetensors --data prepared
"""


def init_project(directory: Path) -> list[Path]:
    directory = Path(directory)
    config = directory / "cardioseg.yaml"
    if config.exists():
        raise CardiosegError("a cardioseg project already exists here (cardioseg.yaml); not overwriting it", directory)
    folders = [directory / "data" / "images", directory / "data" / "masks", directory / "runs"]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return [write_text(config, STARTER_CONFIG), write_text(directory / "README.txt", README), *folders]
