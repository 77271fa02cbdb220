import pytest
from django.test import Client
from django.urls import reverse

from labeling.models import Project

pytestmark = pytest.mark.django_db

WRONG = "That username and password do not match an account."


def test_logging_in_leads_to_my_projects(client, owner, project):
    response = client.post(
        reverse("login"),
        {"username": "olga", "password": "correct horse battery staple"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("project_list")
    assert "Kiswahili" in response.content.decode()


@pytest.mark.parametrize(
    ("username", "password"), [("olga", "wrong"), ("nobody", "correct horse battery staple")]
)
def test_a_wrong_login_does_not_say_which_part_was_wrong(client, owner, username, password):
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert response.status_code == 200
    body = response.content.decode()
    assert WRONG in body
    assert "_auth_user_id" not in client.session


def test_logout_needs_a_post(client_for, owner):
    client = client_for(owner)
    assert client.get(reverse("logout")).status_code == 405
    assert client.post(reverse("logout")).status_code == 302
    assert "_auth_user_id" not in client.session


def test_changing_the_password(client_for, owner):
    client = client_for(owner)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": "correct horse battery staple",
            "new_password1": "a much longer new secret",
            "new_password2": "a much longer new secret",
        },
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password("a much longer new secret")


def test_posts_without_a_csrf_token_are_refused(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    data = {"name": "X", "language_code": "sw", "alphabet": "abc"}
    response = client.post(reverse("project_create"), data)
    assert response.status_code == 403
    assert "security token" in response.content.decode()
    assert not Project.objects.exists()


def test_a_login_post_without_csrf_token_is_refused(owner):
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("login"), {"username": "olga", "password": "correct horse battery staple"}
    )
    assert response.status_code == 403


def fail_logins(client, url, username, times):
    for _ in range(times):
        response = client.post(url, {"username": username, "password": "guess"})
        assert response.status_code == 200
    return response


@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_ten_wrong_passwords_pause_that_username_even_with_the_right_one(
    client, owner, login_url, settings
):
    owner.is_staff = True
    owner.save()
    fail_logins(client, login_url, "olga", settings.AXES_FAILURE_LIMIT - 1)
    response = client.post(login_url, {"username": "olga", "password": "guess"})
    assert response.status_code == 429

    right = client.post(login_url, {"username": "olga", "password": "correct horse battery staple"})

    assert right.status_code == 429
    assert "Too many failed sign-ins" in right.content.decode()
    assert "_auth_user_id" not in client.session


def test_someone_elses_typos_do_not_lock_out_a_neighbour_on_the_same_address(
    client, owner, annotator, settings
):
    fail_logins(client, reverse("login"), "amina", settings.AXES_FAILURE_LIMIT - 1)
    client.post(reverse("login"), {"username": "amina", "password": "guess"})

    response = client.post(
        reverse("login"), {"username": "olga", "password": "correct horse battery staple"}
    )

    assert response.status_code == 302


def test_pages_carry_a_content_security_policy_without_inline_script(client_for, owner, project):
    response = client_for(owner).get(reverse("project_members", args=[project.pk]))

    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy
    body = response.content.decode()
    assert " onsubmit=" not in body and "data-confirm=" in body


def test_behind_a_proxy_a_strangers_guesses_do_not_pause_the_username_for_everyone(
    client, owner, settings
):
    settings.VERNACULAR_PROXY_COUNT = 1
    stranger = {"HTTP_X_FORWARDED_FOR": "203.0.113.9", "REMOTE_ADDR": "10.0.0.2"}
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "olga", "password": "guess"}, **stranger)
    assert (
        client.post(
            reverse("login"), {"username": "olga", "password": "guess"}, **stranger
        ).status_code
        == 429
    )

    olga = {"HTTP_X_FORWARDED_FOR": "198.51.100.4", "REMOTE_ADDR": "10.0.0.2"}  # same proxy
    response = Client().post(
        reverse("login"), {"username": "olga", "password": "correct horse battery staple"}, **olga
    )

    assert response.status_code == 302


def test_a_forged_forwarded_for_entry_does_not_change_the_counted_address(settings, rf):
    from config.client_ip import client_ip

    settings.VERNACULAR_PROXY_COUNT = 1
    request = rf.get("/", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9", REMOTE_ADDR="10.0.0.2")
    assert client_ip(request) == "203.0.113.9"  # the proxy's entry, not the client's own
    settings.VERNACULAR_PROXY_COUNT = 0
    assert client_ip(request) == "10.0.0.2"
