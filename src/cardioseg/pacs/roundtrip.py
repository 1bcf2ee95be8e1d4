"""`cardioseg pacs`: a study from a DICOMweb server, segmented, its DICOM SEGs stored back in the same study.

The study is found with QIDO-RS (an unknown UID is an error naming the server), its image
series are fetched with WADO-RS one instance at a time into a scratch folder (series of
modalities that hold no pixels to segment, such as SEG, RTSTRUCT, SR and PR, are left out),
``predict_files`` segments them with ``predict.format = dicom-seg``, and each SEG is sent with
STOW-RS. Each image gets its own SEG (the files are segmented one by one, as 2D inputs). Every SEG references the instances it was computed from, so the PACS files it in their
study and a viewer offers it on their series. The local outputs (``predictions.csv``, the SEGs)
stay in ``predict.out_dir``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
import requests

from cardioseg.config import Config
from cardioseg.errors import DataError
from cardioseg.fileio import write_with
from cardioseg.inference.predict import PredictResult, predict_files
from cardioseg.pacs.dicomweb import connect, describe_http_error

NOT_IMAGES = ("SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "SR", "PR", "KO", "DOC")
"""Series modalities that carry no image to segment."""
STUDY_UID, SERIES_UID, MODALITY = "0020000D", "0020000E", "00080060"


@dataclass
class RoundTrip:
    study_uid: str
    series: list[str]
    """Image series fetched and segmented."""
    instances: int
    stored: list[str]
    """SOP instance UIDs of the SEGs stored back."""
    prediction: PredictResult


def _value(item: dict, tag: str) -> str | None:  # type: ignore[type-arg]
    values = item.get(tag, {}).get("Value") or [None]
    return None if values[0] is None else str(values[0])


def segment_study(url: str, study_uid: str, models: Sequence[Path], cfg: Config, headers: dict[str, str],
                  series_uid: str | None = None) -> RoundTrip:
    """Fetch ``study_uid`` (only ``series_uid`` when given) from ``url``, segment it, store its SEGs back."""
    client = connect(url, headers)
    try:
        found = client.search_for_series(study_instance_uid=study_uid)
    except (requests.RequestException, ValueError) as exc:
        raise describe_http_error(exc, url, f"QIDO-RS search for study {study_uid}") from None
    if not found:
        raise DataError(f"no study {study_uid} at {url} (QIDO-RS found no series)")
    series = [uid for item in found if (uid := _value(item, SERIES_UID))
              and (_value(item, MODALITY) or "").upper() not in NOT_IMAGES and series_uid in (None, uid)]
    if not series:
        listed = ", ".join(f"{_value(i, SERIES_UID)} ({_value(i, MODALITY)})" for i in found)
        raise DataError(f"study {study_uid} at {url} has no image series to segment"
                        f"{f' with UID {series_uid}' if series_uid else ''}; its series: {listed}")
    cfg = cfg.model_copy(deep=True)
    cfg.predict.format = "dicom-seg"
    with tempfile.TemporaryDirectory(prefix="cardioseg-pacs-") as scratch:
        folder = Path(scratch)
        count = 0
        for uid in series:
            try:
                for instance in client.iter_series(study_uid, uid):
                    target = folder / uid / f"{instance.SOPInstanceUID}.dcm"
                    write_with(target, lambda tmp, ds=instance: ds.save_as(tmp, enforce_file_format=True))
                    count += 1
            except (requests.RequestException, ValueError) as exc:
                raise describe_http_error(exc, url, f"WADO-RS retrieval of series {uid}") from None
        # Named files, not their folders: each image gets its own SEG, whatever a folder's slices would make.
        result = predict_files(sorted(folder.glob("*/*.dcm")), models, cfg)
    segs = [pydicom.dcmread(path) for path in result.outputs["mask"]]
    try:
        client.store_instances(segs, study_instance_uid=study_uid)
    except (requests.RequestException, ValueError) as exc:
        raise describe_http_error(exc, url, f"STOW-RS of {len(segs)} SEG(s)") from None
    return RoundTrip(study_uid, series, count, [str(seg.SOPInstanceUID) for seg in segs], result)
