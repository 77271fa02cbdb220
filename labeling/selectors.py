from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from asr.metrics import clip_errors
from asr.text import normalize_text
from labeling.models import (
    SAMPLE_RATE,
    Clip,
    Invitation,
    Membership,
    Project,
    Recording,
    Transcript,
)


def projects_for_user(user) -> QuerySet[Membership]:
    """The user's memberships, each with its project and the project's member count."""
    return (
        Membership.objects.filter(user_id=user.pk)
        .select_related("project")
        .annotate(member_count=Count("project__memberships"))
        .order_by("project__name")
    )


def clip_minutes(clips: QuerySet[Clip]) -> float:
    """Minutes of audio in these clips, summed in the database."""
    samples = clips.aggregate(total=Sum(F("end_sample") - F("start_sample")))["total"]
    return (samples or 0) / SAMPLE_RATE / 60


MIN_RECORDINGS_FOR_RECORDING_SPLITS = 3
# Drawn by recording, the test and dev sets take whole recordings, shortest first; that is
# only worth it while those recordings are a small part of the audio.
MAX_EVALUATION_SHARE = 1 / 3


@dataclass(frozen=True)
class SplitDraw:
    by_recording: bool
    eligible: tuple[int, ...] = ()  # recordings a new test or dev recording is drawn from
    why_by_clip: str = ""  # for the dashboard, when the project asked for recordings


def split_draw(project: Project) -> SplitDraw:
    """How the next test or dev clips are drawn: by whole recordings (the project's setting)
    from the shortest recordings that fill the targets, or by clip where the project asked
    for that, has fewer than 3 recordings, or would lose over a third of its audio to them."""
    if project.split_by != Project.SplitBy.RECORDING:
        return SplitDraw(False)
    # The targets are minutes of clips, and a recording holds fewer minutes of clips than it
    # lasts (pauses are not cut): the draw plans with its clips' minutes, kept on its row so
    # that a lease reads recordings, not clips. Recordings that name the same speaker or
    # session are one unit: they join a set together.
    on_train_side = Exists(Clip.objects.filter(recording=OuterRef("pk"), split=Clip.Split.TRAIN))
    recordings = project.recordings.annotate(on_train_side=on_train_side)
    train_speakers = set(
        recordings.filter(on_train_side=True).exclude(speaker="").values_list("speaker", flat=True)
    )
    rows = list(
        recordings.filter(status="ready")
        .order_by("duration_seconds", "pk")
        .values_list("pk", "clip_seconds", "speaker", "on_train_side")
    )
    units: dict[str, list] = {}  # speaker (or the recording itself) -> [pks, clip seconds]
    for pk, clip_seconds, speaker, on_train in rows:
        if on_train or (speaker and speaker in train_speakers):
            continue
        unit = units.setdefault(speaker or f"#{pk}", [[], 0.0])
        unit[0].append(pk)
        unit[1] += clip_seconds
    total = sum(clip_seconds for _, clip_seconds, _, _ in rows)
    count = len(rows)
    if count < MIN_RECORDINGS_FOR_RECORDING_SPLITS:
        return SplitDraw(
            False,
            why_by_clip=f"Test and dev clips are drawn by clip for now: the project has {count} "
            f"recording{'' if count == 1 else 's'}, and a draw by recording needs at least "
            f"{MIN_RECORDINGS_FOR_RECORDING_SPLITS}. Test clips then share voices and sessions "
            "with training clips.",
        )
    wanted = (project.test_minutes_target + project.dev_minutes_target) * 60
    eligible, seconds = [], 0.0
    for pks, unit_seconds in sorted(units.values(), key=lambda unit: unit[1]):
        if seconds >= wanted:
            break
        eligible += pks
        seconds += unit_seconds
    if seconds > MAX_EVALUATION_SHARE * total:
        return SplitDraw(
            False,
            why_by_clip="Test and dev clips are drawn by clip for now: whole recordings for "
            f"{wanted / 60:.0f} min of test and dev would take {seconds / 60:.0f} of the "
            f"project's {total / 60:.0f} min. Upload more (or shorter) recordings, or lower the "
            "targets. Test clips then share voices and sessions with training clips.",
        )
    return SplitDraw(True, tuple(eligible))


def split_warnings(project: Project) -> list[str]:
    """What makes this project's test figures less than honest, in words for its people:
    test and dev targets larger than its audio, a test set from a single recording, and
    recordings whose clips sit both in test or dev and in training."""
    warnings = []
    draw = split_draw(project)
    if draw.why_by_clip and project.clips.exists():
        warnings.append(draw.why_by_clip)
    elif project.split_by == Project.SplitBy.CLIP:
        warnings.append(
            "Test and dev clips are drawn by clip (Settings): test clips share voices and "
            "sessions with training clips, and the test figures look better than they are."
        )
    total = clip_minutes(project.clips.all())
    wanted = project.test_minutes_target + project.dev_minutes_target
    if project.recordings.exists() and total < wanted + 1.0:
        warnings.append(
            f"The test and dev sets want {wanted:.0f} min and the project has {total:.1f} min "
            "of clips: little or nothing would be left to train on. Lower the targets in "
            "Settings, or upload more."
        )
    labeled = project.clips.exclude(status=Clip.Status.UNLABELED)
    test = labeled.filter(split=Clip.Split.TEST).aggregate(
        clips=Count("pk"), recordings=Count("recording_id", distinct=True)
    )
    if test["recordings"] == 1 and test["clips"] > 1:
        warnings.append(
            "Every test clip comes from one recording, so the test figures measure that one "
            "voice and session."
        )
    evaluation = labeled.filter(split__in=[Clip.Split.TEST, Clip.Split.DEV]).values("recording_id")
    straddling = (
        labeled.filter(recording_id__in=evaluation)
        .exclude(split__in=[Clip.Split.TEST, Clip.Split.DEV])
        .values("recording_id")
        .distinct()
        .count()
    )
    if straddling:
        warnings.append(
            f"{straddling} recording{'s have' if straddling > 1 else ' has'} clips both in "
            "the test or dev set and in training: the model is tested on voices and sessions "
            "it trained on, and the test figures look better than they are."
        )
    return warnings


def invitations_for_user(user) -> QuerySet[Invitation]:
    """Invitations to this account's name made after the account existed: one made out to a
    name nobody had is never inherited by whoever creates that name later."""
    return Invitation.objects.filter(
        username__iexact=user.username, created_at__gte=user.date_joined
    ).select_related("project", "invited_by")


def project_members(project: Project) -> QuerySet[Membership]:
    return project.memberships.select_related("user").order_by("user__username")


def project_recordings(project: Project):
    return project.recordings.annotate(clip_count=Count("clips")).order_by("-created_at")


def clip_prefill(clip: Clip, user) -> tuple[str, bool]:
    """(text for the box, whether it is the model's draft). What the lease holder typed and
    has not sent comes back first (on any machine); then an undone submission of theirs, as
    they left it; else the model's draft, if there is one."""
    if clip.lease_user_id == user.pk and clip.lease_text:
        return clip.lease_text, False
    if clip.status == Clip.Status.SUBMITTED and clip.project.second_listener:  # a check
        first = clip.transcripts.filter(status=Transcript.Status.SUBMITTED).order_by("-created_at")
        return (first.first().text if first.exists() else ""), False
    withdrawn = (
        clip.transcripts.filter(author=user, status=Transcript.Status.WITHDRAWN)
        .order_by("-created_at")
        .first()
    )
    if withdrawn:
        return withdrawn.text, False
    return clip.draft_text, bool(clip.draft_text)


@dataclass(frozen=True)
class Neighbour:
    side: str  # "before" or "after"
    text: str
    is_draft: bool  # the model's draft: nobody has transcribed it yet


def clip_neighbours(clip: Clip) -> list[Neighbour]:
    """What the clips just before and after this one in its recording say, as context for
    the annotator: their standing transcript, else the model's draft."""
    standing = Transcript.objects.filter(
        status__in=[Transcript.Status.SUBMITTED, Transcript.Status.ACCEPTED]
    )
    siblings = Clip.objects.filter(recording_id=clip.recording_id).prefetch_related(
        Prefetch("transcripts", queryset=standing.order_by("-created_at"), to_attr="standing")
    )
    before = siblings.filter(end_sample__lte=clip.start_sample).order_by("-start_sample").first()
    after = siblings.filter(start_sample__gte=clip.end_sample).order_by("start_sample").first()
    neighbours = []
    for side, sibling in (("before", before), ("after", after)):
        if sibling is None:
            continue
        if sibling.standing:
            neighbours.append(Neighbour(side, sibling.standing[0].text, False))
        elif sibling.draft_text:
            neighbours.append(Neighbour(side, sibling.draft_text, True))
    return neighbours


def own_transcripts(project: Project, user) -> QuerySet[Transcript]:
    """The user's transcripts in the project that still stand, newest first by when the user
    first transcribed the clip (an edit keeps its clip's place): what the transcription page
    steps back through."""
    first = Transcript.objects.filter(clip=OuterRef("clip"), author=user).order_by("created_at")
    return (
        Transcript.objects.filter(
            clip__project=project,
            author=user,
            status__in=[Transcript.Status.SUBMITTED, Transcript.Status.ACCEPTED],
            conflict=False,  # one waiting for a reviewer beside another version stays as it is
            clip__status__in=[Clip.Status.SUBMITTED, Clip.Status.ACCEPTED],
        )
        .annotate(first_at=Subquery(first.values("created_at")[:1]))
        .order_by("-first_at", "-clip_id")
    )


def own_older_newer(transcript: Transcript) -> tuple[Transcript | None, Transcript | None]:
    """The user's standing transcripts just before and after this one."""
    mine = own_transcripts(transcript.clip.project, transcript.author)
    here = mine.filter(pk=transcript.pk).first()
    if here is None:  # reviewed away meanwhile
        return mine.first(), None
    at = here.first_at
    older = mine.filter(Q(first_at__lt=at) | Q(first_at=at, clip_id__lt=transcript.clip_id)).first()
    newer = (
        mine.filter(Q(first_at__gt=at) | Q(first_at=at, clip_id__gt=transcript.clip_id))
        .order_by("first_at", "clip_id")
        .first()
    )
    return older, newer


REVIEW_PAGE_SIZE = 25
LOW_CONFIDENCE = 0.5  # asr.round.draft_confidence under this: the model was unsure
CHANGED_MUCH = 0.3  # character error rate between the model's draft and the transcript
REVIEW_SHOWS = {
    "all": "Everything waiting",
    "disagreements": "Disagreements",
    "flagged": "Flagged clips",
    "low-confidence": "The model was unsure",
    "changed": "Changed much from the draft",
}


@dataclass(frozen=True)
class ReviewFilter:
    """What the Review page lists: read from its query string, written back into its links."""

    show: str = "all"
    annotator: str = ""
    mine: bool = False  # the reviewer's own transcripts too

    @classmethod
    def from_query(cls, query) -> "ReviewFilter":
        show = query.get("show", "all")
        return cls(
            show=show if show in REVIEW_SHOWS else "all",
            annotator=query.get("annotator", "")[:150],
            mine=query.get("mine") == "1",
        )

    def query_string(self, page: int | None = None) -> str:
        pairs = {"show": self.show if self.show != "all" else ""}
        pairs |= {"annotator": self.annotator, "mine": "1" if self.mine else ""}
        pairs |= {"page": str(page) if page and page > 1 else ""}
        return urlencode({key: value for key, value in pairs.items() if value})


def review_items(project: Project, reviewer=None, filters: ReviewFilter = ReviewFilter()):
    """Submitted transcripts waiting for a reviewer, disagreements first, oldest first: by
    default others' (a second pair of ears), narrowed by `filters`."""
    items = Transcript.objects.filter(clip__project=project, status=Transcript.Status.SUBMITTED)
    if reviewer is not None and not filters.mine:
        items = items.exclude(author=reviewer, aligned=False)  # aligned ones nobody typed
    if filters.annotator:
        items = items.filter(author__username=filters.annotator)
    if filters.show == "disagreements":
        items = items.filter(conflict=True)
    elif filters.show == "flagged":
        items = items.exclude(flag="")
    elif filters.show == "low-confidence":
        items = items.filter(clip__draft_confidence__lt=LOW_CONFIDENCE)
    elif filters.show == "changed":  # an edit distance: no database computes it, so here
        rules = project.text_rules()
        changed = [
            pk
            for pk, text, draft in items.values_list("pk", "text", "draft_text")
            if draft.strip() and clip_errors(draft, text, rules).cer > CHANGED_MUCH
        ]
        items = items.filter(pk__in=changed)
    return items.select_related("clip", "author").order_by("-conflict", "created_at")


def review_annotators(project: Project) -> list[str]:
    """Who has transcripts waiting for review, for the page's annotator filter."""
    waiting = Transcript.objects.filter(
        clip__project=project, status=Transcript.Status.SUBMITTED, author__isnull=False
    )
    return sorted(set(waiting.values_list("author__username", flat=True)))


def last_undoable(project: Project, user) -> Transcript | None:
    last = (
        Transcript.objects.filter(clip__project=project, author=user)
        .order_by("-created_at", "-pk")
        .first()
    )
    return last if last and last.status == Transcript.Status.SUBMITTED else None


@dataclass
class AnnotatorStats:
    username: str
    clips: int = 0
    flagged: int = 0
    labeled_seconds: float = 0.0
    audio_seconds: float = 0.0
    work_seconds: float = 0.0
    drafts: int = 0
    draft_edits: int = 0
    draft_characters: int = 0

    @property
    def labeled_minutes(self) -> float:
        return self.labeled_seconds / 60

    @property
    def clips_per_hour(self) -> float | None:
        return self.clips / (self.work_seconds / 3600) if self.work_seconds else None

    @property
    def work_per_audio(self) -> float | None:
        """Seconds of the annotator's time per second of audio they handled."""
        return self.work_seconds / self.audio_seconds if self.audio_seconds else None

    @property
    def draft_changed(self) -> float | None:
        """Character edits needed to turn the model's drafts into the submitted texts, per
        draft character: 0 = drafts taken as they were, 1 = rewritten."""
        return self.draft_edits / self.draft_characters if self.draft_characters else None


def project_stats(project: Project) -> tuple[AnnotatorStats, list[AnnotatorStats]]:
    """(whole project, one row per annotator), over submissions that were not undone."""
    rules = project.text_rules()
    total = AnnotatorStats(username="All annotators")
    rows: dict[str, AnnotatorStats] = {}
    transcripts = (
        Transcript.objects.filter(clip__project=project)
        .exclude(status=Transcript.Status.WITHDRAWN)
        .select_related("clip", "author")
    )
    for transcript in transcripts:
        if transcript.edit_of_id:
            continue  # a reviewer's correction is review work; the original counts
        name = transcript.author.username if transcript.author else "(deleted user)"
        row = rows.setdefault(name, AnnotatorStats(username=name))
        for stats in (row, total):
            _count(stats, transcript, rules)
    return total, sorted(rows.values(), key=lambda r: -r.labeled_seconds)


def _count(stats: AnnotatorStats, transcript: Transcript, rules) -> None:
    seconds = transcript.clip.duration_seconds
    stats.clips += 1
    stats.audio_seconds += seconds
    stats.work_seconds += transcript.seconds_spent
    if transcript.flag:
        stats.flagged += 1
    elif transcript.status in (
        Transcript.Status.SUBMITTED,
        Transcript.Status.ACCEPTED,
        Transcript.Status.SUPERSEDED,
    ):
        stats.labeled_seconds += seconds
    if transcript.draft_text and not transcript.flag:
        errors = clip_errors(transcript.draft_text, transcript.text, rules)
        stats.drafts += 1
        stats.draft_edits += errors.character_edits
        stats.draft_characters += max(errors.reference_characters, 1)


def allowed_characters(project: Project) -> str:
    """Every character the browser may let through unflagged: the alphabet, its uppercase
    forms when the project lowercases, the stripped characters, and the space."""
    alphabet = "".join(project.alphabet_chars())
    extra = alphabet.upper() if project.lowercase else ""
    return "".join(dict.fromkeys(alphabet + extra + project.strip_chars + " "))


def evaluation_minutes(project: Project, now=None) -> dict[str, float]:
    """Minutes of test and of dev clips that are labeled, or being labeled right now: one
    query (it runs at every lease)."""
    now = now or timezone.now()
    labeled_or_open = Q(status__in=[Clip.Status.SUBMITTED, Clip.Status.ACCEPTED]) | Q(
        status=Clip.Status.UNLABELED, lease_expires_at__gte=now
    )
    samples = F("end_sample") - F("start_sample")
    totals = (
        Clip.objects.filter(project=project, split__in=[Clip.Split.TEST, Clip.Split.DEV])
        .filter(labeled_or_open)
        .aggregate(
            test=Sum(samples, filter=Q(split=Clip.Split.TEST)),
            dev=Sum(samples, filter=Q(split=Clip.Split.DEV)),
        )
    )
    return {split: (total or 0) / SAMPLE_RATE / 60 for split, total in totals.items()}


@dataclass(frozen=True)
class QueueState:
    test_minutes: float
    dev_minutes: float
    test_target: float
    dev_target: float
    open_clips: int

    def filling(self) -> str:
        if self.test_minutes < self.test_target:
            return "test"
        if self.dev_minutes < self.dev_target:
            return "dev"
        return "train"


def queue_state(project: Project) -> QueueState:
    minutes = evaluation_minutes(project)
    return QueueState(
        test_minutes=minutes[Clip.Split.TEST],
        dev_minutes=minutes[Clip.Split.DEV],
        test_target=project.test_minutes_target,
        dev_target=project.dev_minutes_target,
        open_clips=project.clips.filter(status=Clip.Status.UNLABELED).count(),
    )


def seconds_on_lease(clip: Clip, lease_token, project: Project) -> float:
    """How long the annotator had the clip open: from the lease start to now."""
    if clip.lease_token != lease_token or clip.lease_expires_at is None:
        return 0.0
    started = clip.lease_expires_at - timedelta(minutes=project.lease_minutes)
    return max(0.0, (timezone.now() - started).total_seconds())


def pool_drafts(project: Project) -> list[str]:
    """The model's greedy drafts of the clips nobody has transcribed yet, written as training
    reads text (the project's rules). Clips set aside for test or dev are left out even before
    they are labeled, so no draft of an evaluation clip reaches a language model."""
    rules = project.text_rules()
    drafts = (
        project.clips.filter(status=Clip.Status.UNLABELED)
        .exclude(split__in=[Clip.Split.TEST, Clip.Split.DEV])
        .exclude(draft_greedy="")
        .order_by("pk")
        .values_list("draft_greedy", flat=True)
    )
    return [text for text in (normalize_text(draft, rules) for draft in drafts) if text]


def of_evaluation_units(project: Project) -> Q:
    """Clips of a recording with clips in test or dev, or of one naming the same speaker or
    session: drawn by recording, these never train."""
    evaluation = Clip.objects.filter(project=project, split__in=[Clip.Split.TEST, Clip.Split.DEV])
    speakers = (
        Recording.objects.filter(pk__in=evaluation.values("recording_id"))
        .exclude(speaker="")
        .values("speaker")
    )
    return Q(recording_id__in=evaluation.values("recording_id")) | Q(
        recording__speaker__in=speakers
    )


def pool_confident_drafts(project: Project, max_seconds: float) -> list[Clip]:
    """Unlabeled clips with a scored draft, most confident first, up to `max_seconds` of audio:
    what self-training may take. As in pool_drafts, clips set aside for test or dev never
    come, labeled or not."""
    clips = (
        project.clips.filter(status=Clip.Status.UNLABELED, draft_confidence__isnull=False)
        .exclude(split__in=[Clip.Split.TEST, Clip.Split.DEV])
        .exclude(draft_text="")
        .order_by("-draft_confidence", "pk")
    )
    if split_draw(project).by_recording:  # nor a recording (or speaker) drawn into them
        clips = clips.exclude(of_evaluation_units(project))
    picked, seconds = [], 0.0
    for clip in clips.iterator():
        if seconds + clip.duration_seconds > max_seconds:
            break
        picked.append(clip)
        seconds += clip.duration_seconds
    return picked


def labeled_set(project: Project) -> list[Transcript]:
    """The transcript that stands for each labeled clip: what training and export use.

    Per clip: the accepted transcript, else (unless the project trains on accepted ones
    only) the latest submitted one. Flagged clips and unresolved disagreements are left out.
    """
    statuses = [Transcript.Status.ACCEPTED]
    if not project.counts_accepted_only:
        statuses.append(Transcript.Status.SUBMITTED)
    standing = (
        Transcript.objects.filter(
            clip__project=project, status__in=statuses, flag="", conflict=False
        )
        .exclude(clip__status=Clip.Status.FLAGGED)
        .exclude(status=Transcript.Status.SUBMITTED, aligned=True)  # nobody listened yet
        .select_related("clip", "clip__recording", "author")
        .order_by("clip_id", "-created_at")
    )
    chosen: dict[int, Transcript] = {}
    for transcript in standing:
        current = chosen.get(transcript.clip_id)
        if current is None or (
            transcript.status == Transcript.Status.ACCEPTED
            and current.status != Transcript.Status.ACCEPTED
        ):
            chosen[transcript.clip_id] = transcript
    return list(chosen.values())
