import difflib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from labeling.models import Clip, Project, Transcript
from labeling.selectors import clip_minutes
from training.models import ModelVersion


def project_base(project: Project) -> str:
    """What a project's new heads are put on: its own base, else the site's default."""
    return project.base_model or settings.VERNACULAR_DEFAULT_BASE_MODEL


def promoted_version(project: Project) -> ModelVersion | None:
    """The version that drafts, scores and aligns for the project (one at most), or None."""
    return project.model_versions.filter(promoted=True).select_related("round").first()


def curve_points(project: Project) -> list[dict]:
    """One point per finished round: minutes trained on (test and dev clips never are)
    against test WER and CER."""
    versions = project.model_versions.select_related("round").order_by("round__number")
    return [
        {
            "round": v.round.number,
            "minutes": round(round_train_minutes(v.round), 2),
            "wer": v.test_wer,
            "cer": v.test_cer,
            "wer_lm": v.test_wer_lm,
            "promoted": v.promoted,
        }
        for v in versions
        if v.test_wer is not None
    ]


def round_train_minutes(training_round) -> float:
    """The minutes of a round's training clips; summed from its snapshot for rounds from
    before train_minutes was kept."""
    if training_round.train_minutes is not None:
        return training_round.train_minutes
    return clip_minutes(Clip.objects.filter(pk__in=training_round.train_clip_ids))


def labeled_minutes(project: Project) -> float:
    """Minutes of clips with a standing transcript: cheap enough for a page polled every 2 s
    (a round's snapshot, through labeled_set, also leaves out unresolved disagreements)."""
    clips = project.clips.filter(status=Clip.Status.ACCEPTED)
    if not project.counts_accepted_only:
        waiting_aligned = Transcript.objects.filter(
            clip=OuterRef("pk"), status=Transcript.Status.SUBMITTED, aligned=True
        )
        submitted = project.clips.filter(status=Clip.Status.SUBMITTED).exclude(
            Exists(waiting_aligned)
        )
        clips = clips | submitted
    return clip_minutes(clips)


def annotator_activity(project: Project) -> list[dict]:
    now = timezone.now()
    rows = (
        Transcript.objects.filter(clip__project=project)
        .exclude(status=Transcript.Status.WITHDRAWN)
        .values("author__username")
        .annotate(
            day=Count("pk", filter=Q(created_at__gte=now - timedelta(days=1))),
            week=Count("pk", filter=Q(created_at__gte=now - timedelta(days=7))),
            total=Count("pk"),
        )
        .order_by("-week", "-total")
    )
    return list(rows)


def pool_state(project: Project) -> dict:
    counts = project.clips.values("status").annotate(n=Count("pk"))
    by_status = {row["status"]: row["n"] for row in counts}
    return {
        "unlabeled": by_status.get(Clip.Status.UNLABELED, 0),
        "labeled": by_status.get(Clip.Status.SUBMITTED, 0) + by_status.get(Clip.Status.ACCEPTED, 0),
        "flagged": by_status.get(Clip.Status.FLAGGED, 0),
    }


def word_diff(reference: str, hypothesis: str) -> list[tuple[str, str]]:
    """(kind, words) pieces: 'same', 'missing' (in the reference only), 'extra' (hypothesis only)."""
    ref, hyp = reference.split(), hypothesis.split()
    pieces: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=ref, b=hyp, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(("same", " ".join(ref[a0:a1])))
            continue
        if a1 > a0:
            pieces.append(("missing", " ".join(ref[a0:a1])))
        if b1 > b0:
            pieces.append(("extra", " ".join(hyp[b0:b1])))
    return pieces


def test_clips_worst_first(version: ModelVersion) -> list[dict]:
    rows = sorted(version.test_details, key=lambda row: (-row["cer"], -row["wer"], row["clip"]))
    return [{**row, "diff": word_diff(row["reference"], row["hypothesis"])} for row in rows]


@dataclass(frozen=True)
class NextStep:
    """What the project needs next, for the Overview: `state` picks the link."""

    state: str  # no-recordings, cutting, test, dev, train, ready, running, failed, done
    headline: str
    detail: str = ""


def next_step(project: Project) -> NextStep:
    """The project's next step, from its recordings, labels and rounds, in the order a new
    project goes through them."""
    recordings = project.recordings.values_list("status", flat=True)
    if not recordings:
        return NextStep(
            "no-recordings",
            "Upload recordings",
            "Long recordings are cut into clips of a few seconds, ready to transcribe.",
        )
    labeled = project.clips.filter(status__in=[Clip.Status.SUBMITTED, Clip.Status.ACCEPTED])
    cutting = sum(status in ("queued", "ingesting") for status in recordings)
    if cutting and not project.clips.exists():
        return NextStep(
            "cutting",
            f"{cutting} recording{'s are' if cutting > 1 else ' is'} being cut into clips",
            "You can start transcribing as soon as the first clips are there.",
        )
    latest = project.rounds.select_related("version").first()
    if latest and latest.is_active():
        return NextStep(
            "running",
            f"Round {latest.number} is {'training' if latest.status == 'running' else 'queued'}",
            f"On {round_train_minutes(latest):.1f} labeled minutes. Keep transcribing "
            "meanwhile: its drafts come to the queue when it is done.",
        )
    for split, target, why in (
        ("test", project.test_minutes_target, "never trained on: they measure every round"),
        ("dev", project.dev_minutes_target, "never trained on: they choose each round's best step"),
    ):
        done = clip_minutes(labeled.filter(split=split))
        if done < target:
            return NextStep(
                split,
                f"Transcribe the {split} set: {done:.1f} of {target:g} min",
                f"The queue serves these clips first; they are {why}.",
            )
    train = clip_minutes(labeled.filter(split=Clip.Split.TRAIN))
    if latest and latest.status == latest.Status.FAILED:
        return NextStep("failed", f"Round {latest.number} failed", latest.error)
    version = getattr(latest, "version", None) if latest else None
    new_minutes = train - (round_train_minutes(latest) if latest else 0.0)
    if version is not None and version.test_wer is not None and new_minutes < 1:
        return NextStep(
            "done",
            f"Round {latest.number}: test WER {version.test_wer:.0%}, CER {version.test_cer:.0%}",
            "Transcribe more: the queue now serves the clips the model is least sure of, with "
            "its draft to correct. Start the next round when a few more minutes are labeled.",
        )
    if train <= 0:
        return NextStep(
            "train",
            "Transcribe clips to train on",
            "The test and dev sets are full: the clips you transcribe now are the ones the model "
            "learns from.",
        )
    first = "the first round" if latest is None else "the next round"
    return NextStep(
        "ready",
        f"Ready for {first}",
        f"{train:.1f} labeled minutes to train on"
        + (f", {new_minutes:.1f} of them new since round {latest.number}." if latest else "."),
    )
