"""Patient-level splits: official split files when a layout has them, else seeded ratios, or k-fold
cross-validation (each patient in the test split of exactly one of the k folds).

Patients whose images are byte-identical (found by content hash, e.g. MSD la_005 and la_026)
are grouped and always land in the same split, so no image is ever seen in training and test.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

from cardioseg.errors import DataError

SPLITS = ("train", "val", "test")


def group_patients(patients: Iterable[str], hashes: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Union patients that share any content hash; returns sorted groups in a stable order."""
    parent = {p: p for p in patients}

    def find(p: str) -> str:
        while parent[p] != p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    owner: dict[str, str] = {}
    for patient, patient_hashes in hashes.items():
        for digest in patient_hashes:
            if digest in owner:
                parent[find(patient)] = find(owner[digest])
            else:
                owner[digest] = patient
    groups: dict[str, list[str]] = {}
    for patient in parent:
        groups.setdefault(find(patient), []).append(patient)
    return sorted((sorted(g) for g in groups.values()), key=lambda g: g[0])


def ratio_split(groups: list[list[str]], ratios: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Assign whole groups to train/val/test so patient counts approach the ratios."""
    order = groups[:]
    random.Random(seed).shuffle(order)
    total = sum(len(g) for g in order)
    wanted = {name: ratio * total for name, ratio in zip(SPLITS, ratios)}
    # Every split asked for gets at least one patient when there are enough to go round.
    for name, ratio in zip(SPLITS, ratios):
        if ratio > 0 and total >= len(SPLITS):
            wanted[name] = max(wanted[name], 1.0)
    counts = dict.fromkeys(SPLITS, 0)
    assignment: dict[str, str] = {}
    for group in order:
        # Greedy: the split furthest below its target takes the next group.
        name = max((s for s in SPLITS if wanted[s] > 0), key=lambda s: (wanted[s] - counts[s]) / wanted[s])
        counts[name] += len(group)
        for patient in group:
            assignment[patient] = name
    return assignment


def fold_split(groups: list[list[str]], folds: int, fold: int, ratios: tuple[float, float, float],
               seed: int) -> dict[str, str]:
    """Fold ``fold`` of ``folds``: its share of the groups is the test split, the rest go to train and val by the
    train:val ratio. Groups are shuffled with ``seed`` and dealt so fold sizes differ by at most the largest group;
    the same seed gives disjoint test splits across the folds that cover every patient once."""
    if not 0 <= fold < folds:
        raise DataError(f"fold {fold} does not exist: folds are numbered 0 to {folds - 1}")
    if len(groups) < folds:
        raise DataError(f"{len(groups)} patient group(s) cannot fill {folds} folds")
    order = groups[:]
    random.Random(seed).shuffle(order)
    sizes = [0] * folds
    member: list[list[list[str]]] = [[] for _ in range(folds)]
    for group in sorted(order, key=len, reverse=True):  # stable: equal sizes keep the shuffled order
        smallest = sizes.index(min(sizes))
        member[smallest].append(group)
        sizes[smallest] += len(group)
    rest = [g for k, groups_k in enumerate(member) if k != fold for g in groups_k]
    train_ratio, val_ratio, _ = ratios
    assignment = ratio_split(rest, (train_ratio, val_ratio, 0.0), seed)
    assignment.update({patient: "test" for group in member[fold] for patient in group})
    return assignment


def official_split(
    official: Mapping[str, str], groups: list[list[str]], source: str
) -> dict[str, str]:
    """Use the layout's official assignment; a content-duplicate group split across sets is an error."""
    assignment: dict[str, str] = {}
    for group in groups:
        missing = [p for p in group if p not in official]
        if missing:
            raise DataError(f"patients {missing[:5]} are in no official split file", source)
        splits = {official[p] for p in group}
        if len(splits) > 1:
            raise DataError(
                f"patients {group} have identical images but sit in different official splits {sorted(splits)}",
                source,
            )
        for patient in group:
            assignment[patient] = official[patient]
    return assignment


def check_disjoint(assignment_rows: Iterable[tuple[str, str]]) -> None:
    """Raise when any patient appears in more than one split."""
    seen: dict[str, str] = {}
    for patient, split in assignment_rows:
        if seen.setdefault(patient, split) != split:
            raise DataError(f"patient {patient} is in two splits ({seen[patient]} and {split})")
