import unicodedata

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


class Role(models.TextChoices):
    ANNOTATOR = "annotator", "Annotator"
    REVIEWER = "reviewer", "Reviewer"
    MANAGER = "manager", "Manager"


# A higher rank may do everything a lower one may.
ROLE_RANK = {Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.MANAGER: 3}


class Project(models.Model):
    """One language or dialect: its recordings, labels and models."""

    name = models.CharField(max_length=100)
    language_code = models.CharField(
        max_length=35, help_text="BCP 47 tag, e.g. sw, quz, gd, nds-NL."
    )
    alphabet = models.TextField(
        help_text="Every character a transcript may use, besides the space between words."
    )
    lowercase = models.BooleanField(
        default=True, help_text="Lowercase transcripts before training and scoring."
    )
    strip_chars = models.CharField(
        max_length=200,
        blank=True,
        default='.,;:!?"“”«»()[]',
        help_text="Characters removed from transcripts before training, e.g. punctuation.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("name"), name="project_name_unique_ci"),
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def alphabet_chars(self) -> list[str]:
        """The allowed characters, NFC-normalized, in the order the manager typed them."""
        text = unicodedata.normalize("NFC", self.alphabet)
        return list(dict.fromkeys(ch for ch in text if not ch.isspace()))


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ANNOTATOR)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
        ]
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"

    def has_role(self, role: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]
