"""The one place a test's results become records: in the test report (so xdist workers' results reach
the controller's ``Report``) and flat beside it, as junitxml writes each (name, value) as a <property>."""

from __future__ import annotations

from .records import AccuracyRecord, PerformanceRecord, Report, ResultRecord, VerdictRecord

JUNIT_PROPERTIES = ("top1", "top5", "fps", "images")


class Recorder:
    def __init__(self, request):
        self.node = request.node

    def record(self, record: ResultRecord | dict) -> None:
        """Attach a record (or its dict) to the running test's report."""
        if isinstance(record, ResultRecord):
            record = record.as_dict()
        properties = self.node.user_properties
        properties.append((Report.PROPERTY, record))
        properties.extend((name, round(record[name], 2) if isinstance(record[name], float) else record[name])
                          for name in JUNIT_PROPERTIES if record.get(name) is not None)
        for verdict in record.get("verdicts", ()):
            interval = verdict.get("interval")
            if interval and None not in interval and verdict.get("metric"):
                # top1_interval for the floor's interval; others name their kind (top1_relative_to_fp32_interval)
                kind = "" if verdict.get("kind") == "absolute" else f"_{verdict.get('kind')}"
                properties.append((f"{verdict['metric']}{kind}_interval", f"[{interval[0]:.2f}, {interval[1]:.2f}]"))

    def accuracy(self, session, precision: str, scored, artifacts, images, preprocess) -> None:
        """``precision``'s scores with what identifies them, the run's notes and, with --save-baseline,
        its per-image predictions."""
        result = scored.result
        settings = session.settings
        baseline = None
        if settings.save_baseline is not None:
            from ..predictions import baseline_entry

            baseline = baseline_entry(scored.predictions, session.pipeline.model_sha256(precision, artifacts),
                                      result.backend, result.device)
        notes = session.notes(artifacts) + _fidelity_notes(precision, result.fidelity) + _skipped_notes(images)
        self.record(AccuracyRecord(precision, result.backend, settings.batch_size, result.top1, result.top5,
                                   result.images, result.device, session.identity.of_inputs(preprocess),
                                   seconds=result.seconds, skipped_images=result.skipped,
                                   fidelity=result.fidelity or None, notes=tuple(notes), baseline=baseline))

    def performance(self, session, precision: str, fps: float, info, batch_size: int, artifacts) -> None:
        self.record(PerformanceRecord(precision, info.backend, batch_size, fps, info.device,
                                      tuple(session.notes(artifacts)), run=session.identity.model()))

    def verdicts(self, precision: str, backend: str, verdicts) -> None:
        self.record(VerdictRecord(precision, backend, tuple(verdicts)))
        for verdict in verdicts:  # each verdict's sentence, for CI test views (its numbers: record())
            self.node.user_properties.append((f"res2net_{verdict.kind}_{verdict.metric}", verdict.message))


def _fidelity_notes(precision: str, fidelity: dict) -> list[str]:
    if not fidelity:
        return []
    logits = (f", mean logit cosine {fidelity['mean_cosine']:.5f}, mean KL {fidelity['mean_kl']:.3g}"
              if "mean_cosine" in fidelity else " (logit cosine/KL need fp32 scored in this run)")
    lost = ", ".join(f"{c['label']} -{c['lost']}/+{c['gained']}" for c in fidelity.get("classes_lost", [])[:3])
    return [f"{precision} vs fp32 on the same {fidelity['images']} images: top-1 agreement "
            f"{fidelity['top1_agreement']:.2f}%{logits}" + (f"; classes that lost most: {lost}" if lost else "")]


def _skipped_notes(images) -> list[str]:
    skipped = tuple(getattr(images, "skipped", ()))
    if not skipped:
        return []
    return [f"WARNING: {len(skipped)} undecodable images skipped and counted as wrong (--skip-bad-images): "
            + ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else "")]
