"""What a person does in the page, in a real headless Chromium."""

import pytest
from playwright.sync_api import expect

from labeling import services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(django_user_model):
    user = django_user_model.objects.create_user(username="demo", password="s3cret-demo-pass")
    services.project_create(
        name="Demo: Swahili",
        language_code="sw",
        alphabet="abcdefghijklmnoprstuvwyz'",
        created_by=user,
    )
    return user


def log_in(page, live_server, username: str, password: str) -> None:
    page.goto(live_server.url + "/")
    expect(page).to_have_url(live_server.url + "/accounts/login/?next=/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def test_a_manager_logs_in_and_opens_the_demo_project(page, live_server, demo):
    log_in(page, live_server, "demo", "s3cret-demo-pass")
    expect(page.get_by_role("heading", name="Your projects")).to_be_visible()
    page.get_by_role("link", name="Demo: Swahili").click()
    expect(page.get_by_role("heading", name="Demo: Swahili")).to_be_visible()
    expect(page.locator(".alphabet .char")).to_have_count(25)
    expect(page.get_by_role("link", name="Settings")).to_be_visible()


def test_a_wrong_password_shows_the_message_and_keeps_me_out(page, live_server, demo):
    log_in(page, live_server, "demo", "not it")
    expect(page.get_by_role("alert")).to_contain_text("do not match an account")
    page.goto(live_server.url + "/")
    expect(page).to_have_url(live_server.url + "/accounts/login/?next=/")


def test_creating_a_project_with_an_empty_alphabet_shows_the_error_by_the_field(
    page, live_server, demo
):
    log_in(page, live_server, "demo", "s3cret-demo-pass")
    page.get_by_role("link", name="New project").click()
    page.get_by_label("Name").fill("Gàidhlig")
    page.get_by_label("Language code").fill("gd")
    page.get_by_role("button", name="Create project").click()
    expect(page.locator("#id_alphabet_error")).to_contain_text("This field is required")
    page.get_by_label("Alphabet").fill("a b c d e f g h i l m n o p r s t u à è ì ò ù")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Gàidhlig")).to_be_visible()
    expect(page.locator(".alphabet .char")).to_have_count(23)


@pytest.mark.celery
def test_the_workers_page_rechecks_in_place(page, live_server, demo, celery_worker):
    log_in(page, live_server, "demo", "s3cret-demo-pass")
    page.get_by_role("link", name="Workers").click()
    expect(page.locator(".status.ok")).to_have_count(2)
    page.evaluate("document.querySelector('#checks').dataset.marker = 'before'")
    page.get_by_role("link", name="Check again").click()
    # htmx swapped the fragment: the marker is gone, the page itself did not reload.
    expect(page.locator("#checks:not([data-marker])")).to_have_count(1)
    expect(page.locator(".status.ok")).to_have_count(2)
    assert page.evaluate("typeof htmx") == "object"


def test_the_dashboard_draws_its_curve_under_the_content_security_policy(
    page, live_server, demo, tmp_path
):
    from labeling.models import Project
    from training.models import ModelVersion, TrainingRound

    project = Project.objects.get()
    for number, (minutes, wer) in enumerate([(5, 0.6), (10, 0.45)], start=1):
        training_round = TrainingRound.objects.create(
            project=project, number=number, base="builtin:tiny", status="succeeded"
        )
        ModelVersion.objects.create(
            project=project,
            round=training_round,
            directory=str(tmp_path),
            labeled_minutes=minutes,
            test_wer=wer,
            test_cer=wer / 3,
        )
    log_in(page, live_server, "demo", "s3cret-demo-pass")

    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")

    canvas = page.locator("canvas#curve")
    expect(canvas).to_be_visible()
    # Chart.js has drawn: the canvas holds non-blank pixels (the page fixture fails the test
    # on anything the policy blocked).
    drawn = canvas.evaluate(
        "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some(v => v !== 0)"
    )
    assert drawn


def test_the_curve_gains_the_point_of_a_round_that_finishes_while_the_dashboard_is_open(
    page, live_server, demo, tmp_path
):
    import time

    from labeling.models import Project
    from training.models import ModelVersion, TrainingRound

    project = Project.objects.get()
    first = TrainingRound.objects.create(
        project=project, number=1, base="builtin:tiny", status="succeeded"
    )
    ModelVersion.objects.create(
        project=project, round=first, directory=str(tmp_path), labeled_minutes=5, test_wer=0.6
    )
    second = TrainingRound.objects.create(
        project=project, number=2, base="builtin:tiny", status="running", total_steps=100
    )
    log_in(page, live_server, "demo", "s3cret-demo-pass")
    page.goto(f"{live_server.url}/projects/{project.pk}/dashboard/")
    expect(page.locator("canvas#curve")).to_be_visible()
    points = "() => window.vernacularChart.data.datasets[0].data.length"
    assert page.evaluate(points) == 1

    ModelVersion.objects.create(
        project=project, round=second, directory=str(tmp_path), labeled_minutes=10, test_wer=0.4
    )
    TrainingRound.objects.filter(pk=second.pk).update(status="succeeded")

    deadline = time.monotonic() + 15  # the page polls every 2 s
    while page.evaluate(points) != 2:
        assert time.monotonic() < deadline, "the curve did not gain round 2's point"
        time.sleep(0.2)
    expect(page.locator("#round-status")).not_to_have_attribute("hx-trigger", "every 2s")


def test_removing_a_member_asks_first_and_a_no_keeps_them(
    page, live_server, demo, django_user_model
):
    from labeling.models import Membership, Project

    project = Project.objects.get()
    guest = django_user_model.objects.create_user(username="guest", password="x-guest-pass-1")
    Membership.objects.create(project=project, user=guest, role="annotator")
    log_in(page, live_server, "demo", "s3cret-demo-pass")
    page.goto(f"{live_server.url}/projects/{project.pk}/members/")
    questions = []

    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.locator("tr", has_text="guest").get_by_role("button", name="Remove").click()
    expect(page.locator("tr", has_text="guest")).to_be_visible()
    assert questions == ["Remove guest from Demo: Swahili? Their transcripts stay."]

    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text="guest").get_by_role("button", name="Remove").click()
    expect(page.get_by_text("guest removed from the project.")).to_be_visible()
    assert not Membership.objects.filter(user=guest).exists()
