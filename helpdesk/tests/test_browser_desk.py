"""The help desk in real Chromium: an agent signs in with a second factor, finds a caller by a phone number typed
in national format, records an identity check, issues bypass codes and reads one out; the person signs in with it.
axe-core checks every admin page on the way (the pages this project adds or changes)."""

import pytest
from playwright.sync_api import expect

from devices.models import BypassCode
from devices.tests.browser import DESKTOP, WITH_MODERATE, Accessibility, chromium
from identity.models import AuditEvent
from testsupport import fresh_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _sign_in(page, person, password, code=None, device_label=None):
    page.get_by_label("Institution ID").fill(person.username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    if device_label:
        page.get_by_label(device_label).check()
    page.get_by_role("textbox", name="Code").fill(code)
    page.get_by_role("button", name="Verify").click()


def _agent_in_admin(browser, base_url, agent, password, *, screen=DESKTOP):
    """A page of a new browser context in which ``agent`` signed in to the admin with password and app code."""
    page = browser.new_context(base_url=base_url, **screen).new_page()
    page.set_default_timeout(15_000)
    page.goto("/admin/")
    # The sign-in page asks for passkey options as it loads, which gives a new browser its session cookie: a
    # password sent before that answer arrives gets a session of its own, which the options' cookie then replaces
    # (the sign-in then says it expired). A person takes longer to type; the test waits for the page to settle.
    page.wait_for_load_state("networkidle")
    _sign_in(page, agent, password, fresh_code(agent.registrations.get().app_device))
    expect(page.get_by_role("heading", name="People, devices and audit")).to_be_visible()
    return page


def test_bnd10_bnd07_agent_issues_bypass_codes_and_the_person_signs_in_with_one(
    live_server, staff_member, caller, password, tmp_path
):
    axe = Accessibility(WITH_MODERATE)
    with chromium() as browser:
        page = _agent_in_admin(browser, live_server.url, staff_member, password)

        page.goto("/admin/identity/user/")
        axe.check(page, "people list")
        page.locator("#searchbar").fill("(617) 432-2000")
        page.locator("#searchbar").press("Enter")
        expect(page.locator("#result_list tbody tr")).to_have_count(1)
        axe.check(page, "people list, searched")
        page.get_by_role("link", name=caller.username).click()
        expect(page.get_by_role("heading", name="Why can't they sign in?")).to_be_visible()
        axe.check(page, "person page")

        page.get_by_role("link", name="Issue bypass codes").click()
        expect(page.get_by_text("record how you made sure you are talking to them")).to_be_visible()
        axe.check(page, "identity check")
        page.get_by_label("Photo ID checked in person").check()
        page.get_by_label("Ticket or case reference").fill("INC-4242")
        page.get_by_role("button", name="Record the check").click()

        expect(page.get_by_text("Identity check relied on")).to_be_visible()
        axe.check(page, "issue bypass codes")
        page.get_by_label("How many codes").select_option("2")
        page.get_by_label("30 minutes").check()
        page.get_by_role("button", name="Yes, issue bypass codes").click()

        codes = page.locator(".bypass-codes code")
        expect(codes).to_have_count(2)
        axe.check(page, "bypass codes shown once")
        read_out = codes.first.inner_text()
        page.get_by_role("link", name="Done: back to the person").click()
        assert read_out not in page.content()

        person = browser.new_context(base_url=live_server.url, **DESKTOP).new_page()
        person.set_default_timeout(15_000)
        person.goto("/account/sign-in/")
        _sign_in(person, caller, password, read_out, device_label="Bypass codes from the help desk")
        expect(person.get_by_text("You signed in with a bypass code from the help desk")).to_be_visible()
        person.screenshot(path=tmp_path / "signed-in-with-bypass.png", full_page=True)

    assert BypassCode.objects.filter(used_at__isnull=False).count() == 1
    desk = AuditEvent.objects.get(action="helpdesk.action", subject=caller)
    assert desk.details["reference"] == "INC-4242" and desk.details["action"] == "issue_bypass_codes"
    axe.assert_clean()


def test_bnd07_desk_registers_a_security_key_in_chromium_and_the_person_signs_in_with_it(
    live_server, settings, staff_member, caller, password
):
    """Chromium's virtual authenticator plays the person's key, plugged into the desk computer."""
    site = live_server.url.replace("127.0.0.1", "localhost")  # WebAuthn needs a domain name
    settings.WEBAUTHN_RP_ID = "localhost"
    settings.WEBAUTHN_ORIGINS = [site]
    axe = Accessibility(WITH_MODERATE)
    agent_device = staff_member.registrations.get().app_device
    with chromium() as browser:
        context = browser.new_context(base_url=site, **DESKTOP)
        context.set_default_timeout(15_000)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "usb",
                    "hasResidentKey": False,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                }
            },
        )
        page.goto("/admin/")
        _sign_in(page, staff_member, password, fresh_code(agent_device))
        page.goto(f"/admin/identity/user/{caller.pk}/change/")
        page.get_by_role("link", name="Register a security key").click()
        page.get_by_label("Photo ID checked in person").check()
        page.get_by_label("Ticket or case reference").fill("INC-5150")
        page.get_by_role("button", name="Record the check").click()
        axe.check(page, "register a security key")
        page.get_by_label("Name this key").fill("Green key")
        page.get_by_role("button", name="Yes, register a security key").click()
        expect(page.get_by_text("Security key “Green key” registered")).to_be_visible()

        # The person takes the key to their own computer (the same virtual key, in a new session).
        page.context.clear_cookies()
        page.goto("/account/sign-in/")
        page.get_by_label("Institution ID").fill(caller.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_role("button", name="Use your security key").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("My devices")

    key = caller.registrations.get(kind="security_key").security_key_device
    assert key.registered_by == staff_member
    assert AuditEvent.objects.filter(
        action="signin.second_factor_ok", subject=caller, details__factor="security_key"
    ).exists()
    axe.assert_clean()


def test_desk_queues_and_case_pages_pass_axe(live_server, staff_member, second_agent, superuser, caller, password):
    """The case queue, a case, the four-eyes queue and a request, as a second agent sees them, with axe-core."""
    from helpdesk import runner, services

    case = services.open_case(caller, actor=staff_member, category="lockout", note="Called from the lab")
    check = services.record_identity_check(
        superuser, actor=staff_member, method="manager_confirmation", reference="I-9"
    )
    request = runner.perform(
        "sign_out_everywhere", superuser, actor=staff_member, identity_check=check, params={"reason": "laptop stolen"}
    ).request
    axe = Accessibility(WITH_MODERATE)
    with chromium() as browser:
        page = _agent_in_admin(browser, live_server.url, second_agent, password)
        for name, url in (
            ("case queue", "/admin/helpdesk/case/?queue=unassigned"),
            ("case", f"/admin/helpdesk/case/{case.pk}/change/"),
            ("open a case", f"/admin/identity/user/{caller.pk}/desk/case/"),
            ("approval queue", "/admin/helpdesk/approvalrequest/"),
            ("approval request", f"/admin/helpdesk/approvalrequest/{request.pk}/change/"),
        ):
            page.goto(url)
            axe.check(page, name)
        page.get_by_role("button", name="Approve and run").click()
        expect(page.get_by_text("Signed out everywhere")).to_be_visible()
    request.refresh_from_db()
    assert request.status == "approved" and request.decided_by == second_agent
    axe.assert_clean()


def test_every_admin_list_the_home_page_and_the_audit_log_pass_axe(live_server, superuser, caller, password):
    """axe-core on the admin home page (with the auditors' reports link), every list of the staff admin (each with
    its breadcrumbs), the audit log in sentences with the record one click away, and an event's page."""
    from django.apps import apps
    from django.urls import reverse

    from identity.admin_site import site

    axe = Accessibility(WITH_MODERATE)
    lists = sorted(
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in apps.get_models()
        if site.is_registered(model)
    )
    with chromium() as browser:
        page = _agent_in_admin(browser, live_server.url, superuser, password)
        expect(page.get_by_role("link", name="Reports for auditors")).to_be_visible()
        axe.check(page, "admin home page")
        for url in lists:
            page.goto(url)
            expect(page.locator(".breadcrumbs").get_by_role("link", name="Home")).to_be_visible()
            axe.check(page, f"list {url}")
        page.goto("/admin/identity/auditevent/")
        signed_in = page.locator("#result_list tbody tr").filter(has_text="Signed in with the authenticator app")
        expect(signed_in.first).to_be_visible()
        expect(signed_in.first.locator("details code")).not_to_be_visible()
        signed_in.first.get_by_text("As recorded").click()
        expect(signed_in.first.locator("details code")).to_have_text("signin.second_factor_ok")
        axe.check(page, "audit log, a record opened")
        page.goto(f"/admin/identity/user/{caller.pk}/change/")
        expect(page.get_by_role("heading", level=1)).to_have_text("Cal Ler (ID caller1)")
        expect(page.locator("#nav-sidebar a[href$='/devices/registration/']")).to_have_text("Devices")
        axe.check(page, "person page")
    assert len(axe.checked) >= 10
    axe.assert_clean()
