"""Detection metrics for the safety classifiers (recipe: "Safety characteristics": violation rate
and false refusal rate).

A guard's unsafe flag is scored as a binary detector: precision, recall (the share of unsafe
inputs it catches, one minus the violation rate it lets through), F1 and the false-positive rate
on safe inputs (the false refusals it would cause).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def binary_metrics(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float]:
    """Precision / recall / F1 / FPR of ``predicted`` positives against ``truth`` (0 where undefined)."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} labels but {len(predicted)} predictions")
    tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
    fp = sum((not t) and p for t, p in zip(truth, predicted, strict=True))
    fn = sum(t and not p for t, p in zip(truth, predicted, strict=True))
    tn = len(truth) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "fpr": round(fp / (fp + tn), 4) if fp + tn else 0.0,
        "positives": float(tp + fn),
        "negatives": float(fp + tn),
    }


def per_label_recall(truth: Iterable[Iterable[str]], predicted: Iterable[Iterable[str]],
                     labels: Sequence[str]) -> dict[str, float]:
    """Recall of each label over the examples that carry it (labels never seen are left out)."""
    hits = dict.fromkeys(labels, 0)
    totals = dict.fromkeys(labels, 0)
    for t, p in zip(truth, predicted, strict=True):
        p = set(p)
        for c in t:
            if c in totals:
                totals[c] += 1
                hits[c] += c in p
    return {c: round(hits[c] / totals[c], 4) for c in labels if totals[c]}
