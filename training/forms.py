from django import forms

from labeling.models import Project


class TrainingSettingsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = [
            "base_model",
            "train_from_promoted",
            "auto_round_minutes",
            "train_on_accepted_only",
            "selection",
            "self_training",
        ]
        labels = {
            "base_model": "Base model",
            "train_from_promoted": "Continue from the promoted model",
            "auto_round_minutes": "Automatic rounds every … new labeled minutes",
            "train_on_accepted_only": "Train on reviewer-accepted transcripts only",
            "selection": "The queue picks",
            "self_training": "Self-training on confident drafts of unlabeled clips",
        }

    def clean_auto_round_minutes(self):
        minutes = self.cleaned_data["auto_round_minutes"]
        if minutes is not None and minutes <= 0:
            raise forms.ValidationError("Give a number of minutes above 0, or leave it empty.")
        return minutes
