"""Creates the demo manager account and demo project; safe to run again (changes nothing)."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from labeling import services
from labeling.models import Project
from labeling.services import handover_password

DEMO_USERNAME = "demo"
DEMO_PROJECT = {
    "name": "Demo: Swahili",
    "language_code": "sw",
    "alphabet": "abcdefghijklmnoprstuvwyz'",
    "lowercase": True,
    "strip_chars": '.,;:!?"“”«»()[]',
}


class Command(BaseCommand):
    help = "Create the demo manager account and demo project if they do not exist."

    def handle(self, *args, **options):
        User = get_user_model()
        password_file = settings.DATA_DIR / "demo-password"
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            password = handover_password()
            user = User.objects.create_user(username=DEMO_USERNAME, password=password)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
            note = ""
        else:
            stored = password_file.read_text().strip() if password_file.exists() else None
            password = stored or "(set before; not stored here)"
            note = "  (unless you changed it since)"

        if not Project.objects.filter(name__iexact=DEMO_PROJECT["name"]).exists():
            services.project_create(**DEMO_PROJECT, created_by=user)

        self.stdout.write(f"\n  Demo account: {DEMO_USERNAME}\n  Password    {password}{note}\n")
