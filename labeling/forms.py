import re
import unicodedata

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator

from labeling.models import Project, Role

LANGUAGE_CODE_RE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = [
            "name",
            "language_code",
            "alphabet",
            "lowercase",
            "strip_chars",
            "test_minutes_target",
            "dev_minutes_target",
            "split_by",
            "lease_minutes",
            "second_listener",
            "clip_min_seconds",
            "clip_max_seconds",
        ]
        labels = {
            "language_code": "Language code",
            "strip_chars": "Characters to strip",
            "lowercase": "Lowercase transcripts",
            "test_minutes_target": "Test set (minutes)",
            "dev_minutes_target": "Dev set (minutes)",
            "split_by": "Draw test and dev",
            "lease_minutes": "A clip stays reserved for (minutes)",
            "second_listener": "Second listener: a transcript counts once someone else agrees",
            "clip_min_seconds": "Shortest clip (seconds)",
            "clip_max_seconds": "Longest clip (seconds)",
        }
        widgets = {
            "alphabet": forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
            "strip_chars": forms.TextInput(attrs={"spellcheck": "false"}),
        }

    def __init__(self, *args, owner=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner or self.instance.created_by
        # left out of a form (a script, an older page): the project keeps what it has
        self.fields["split_by"].required = False

    def clean_split_by(self) -> str:
        return self.cleaned_data["split_by"] or self.instance.split_by

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name:
            raise forms.ValidationError("Give the project a name.")
        # Only the owner's own projects: someone else's name must not answer "it exists".
        duplicates = Project.objects.filter(name__iexact=name, created_by=self.owner)
        if self.instance.pk:
            duplicates = duplicates.exclude(pk=self.instance.pk)
        if duplicates.exists():
            raise forms.ValidationError(f"You have a project called “{name}” already.")
        return name

    def clean_language_code(self) -> str:
        code = self.cleaned_data["language_code"].strip().replace("_", "-")
        if not LANGUAGE_CODE_RE.match(code):
            raise forms.ValidationError("Use a BCP 47 language tag such as sw, quz, gd or nds-NL.")
        # BCP 47's usual case: language lowercase, script titlecase, region uppercase.
        primary, *rest = code.split("-")
        parts = [primary.lower()]
        for part in rest:
            if len(part) == 2:
                parts.append(part.upper())
            elif len(part) == 4 and part.isalpha():
                parts.append(part.title())
            else:
                parts.append(part.lower())
        return "-".join(parts)

    def clean_alphabet(self) -> str:
        text = unicodedata.normalize("NFC", self.cleaned_data["alphabet"])
        chars = list(dict.fromkeys(ch for ch in text if not ch.isspace()))
        if not chars:
            raise forms.ValidationError(
                "List the characters transcripts may use, e.g. abcdefghijklmnopqrstuvwxyz'."
            )
        return "".join(chars)

    def clean_strip_chars(self) -> str:
        text = unicodedata.normalize("NFC", self.cleaned_data["strip_chars"])
        return "".join(dict.fromkeys(ch for ch in text if not ch.isspace()))

    def clean(self):
        cleaned = super().clean()
        alphabet = set(cleaned.get("alphabet") or "")
        if cleaned.get("lowercase"):
            upper = [ch for ch in cleaned.get("alphabet", "") if ch != ch.lower()]
            if upper:
                self.add_error(
                    "alphabet",
                    "Transcripts are lowercased, so these can never occur: "
                    + " ".join(upper)
                    + ". Remove them, or turn lowercasing off.",
                )
        low, high = cleaned.get("clip_min_seconds"), cleaned.get("clip_max_seconds")
        if low is not None and high is not None and not 0 < 2 * low <= high:
            self.add_error("clip_max_seconds", "Make it at least twice the shortest clip length.")
        for name in ("test_minutes_target", "dev_minutes_target"):
            if (cleaned.get(name) or 0) < 0:
                self.add_error(name, "Minutes cannot be negative.")
        both = sorted(alphabet & set(cleaned.get("strip_chars") or ""))
        if both:
            self.add_error(
                "strip_chars",
                "These are in the alphabet too, so they cannot be stripped: " + " ".join(both),
            )
        return cleaned


class MemberAddForm(forms.Form):
    INVITE, CREATE = "invite", "create"

    account = forms.ChoiceField(
        choices=[
            (INVITE, "Invite an existing account: they accept it on their Projects page"),
            (CREATE, "Create a new account: you get its first password to hand over"),
        ],
        initial=INVITE,
        widget=forms.RadioSelect,
        label="Who",
    )
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    role = forms.ChoiceField(choices=Role.choices, initial=Role.ANNOTATOR)

    def clean_username(self) -> str:
        return self.cleaned_data["username"].strip()


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
