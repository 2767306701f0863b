"""Four-eyes in real Chromium, two agents in two browser contexts (BND-08, BND-07, BND-10): agent A asks for bypass
codes for a staff account and is told what happens next; agent B finds the request on the admin home page, reads
it in sentences (who asks what for whom, with what, why, since when) and approves on their phone; the caller rings
back later, A checks them again, finishes the request and reads the codes out. The codes are shown once, to A only:
not after going back or forward, not to a second finish, never to B. axe-core checks the pages on the way."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from devices.models import BypassCode
from devices.tests.browser import PHONE, WITH_MODERATE, Accessibility, chromium, horizontal_overflow
from helpdesk import errors
from helpdesk.models import ApprovalRequest, IdentityCheck
from identity.models import AuditEvent

from .test_browser_desk import _agent_in_admin

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The admin's button colours (--default-button-bg and --button-bg): a main action and the one beside it.
MAIN_BUTTON, OTHER_BUTTON = "rgb(32, 80, 103)", "rgb(65, 118, 144)"


def drawn(element) -> dict:
    """How the browser draws an action: its display, its background colour, and the bullet of its list item."""
    return element.evaluate(
        "e => ({display: getComputedStyle(e).display, background: getComputedStyle(e).backgroundColor,"
        " bullet: getComputedStyle(e.closest('li') || e).listStyleType})"
    )


def test_bnd08_bnd07_bnd10_approved_bypass_codes_are_finished_by_the_requester_and_shown_once(
    live_server, staff_member, second_agent, make_user, enroll, password
):
    person = make_user("nurse7", first_name="Nia", last_name="Ward", is_staff=True)  # a staff account: four eyes
    staff_member.first_name, staff_member.last_name = "Sam", "Lee"
    staff_member.save()
    enroll(person)
    before = AuditEvent.objects.order_by("sequence").last().sequence
    axe = Accessibility(WITH_MODERATE)
    seen_by_b: list[str] = []
    with chromium() as browser:
        a = _agent_in_admin(browser, live_server.url, staff_member, password)
        a.goto(f"/admin/identity/user/{person.pk}/change/")
        # The desk's actions are the page's main actions: the admin's buttons in a row, not links in a bulleted list.
        issue = a.locator(".desk-actions").get_by_role("link", name="Issue bypass codes")
        assert drawn(issue) == {"display": "inline-block", "background": MAIN_BUTTON, "bullet": "none"}
        a.get_by_role("link", name="Issue bypass codes").click()
        a.get_by_label("Photo ID checked on a video call").check()
        a.get_by_label("Ticket or case reference").fill("INC-7001")
        a.get_by_role("button", name="Record the check").click()
        a.get_by_label("How many codes").select_option("2")
        a.get_by_label("15 minutes").check()
        expect(a.get_by_text("A second agent must approve this.")).to_be_visible()
        expect(a.get_by_text("This is a staff account. Actions on staff accounts need a second agent.")).to_be_visible()
        a.get_by_role("button", name="Ask for approval").click()
        [request] = ApprovalRequest.objects.all()
        # A is told why, where the second agent finds it, and what happens after.
        told = a.locator(".messagelist")
        expect(told).to_contain_text(f"Asked a second agent to approve this ({request}). Why: This is a staff account")
        expect(told).to_contain_text("who sees it on the admin home page and under Approval requests")
        expect(told).to_contain_text("Once it is approved, you finish it from the request")
        assert not a.locator(".bypass-codes").count()
        expect(a.get_by_role("heading", level=1)).to_have_text("Nia Ward (ID nurse7)")
        expect(a.locator("#req-h + ul")).to_contain_text(
            "Sam Lee (ID staff1) asks to issue bypass codes for Nia Ward (ID nurse7). Waiting for a second agent since"
        )
        axe.check(a, "person page with a waiting request")
        request_url = f"/admin/helpdesk/approvalrequest/{request.pk}/change/"
        a.goto(request_url)
        expect(a.get_by_text("Another agent (not the one who asked")).to_be_visible()
        expect(a.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
        axe.check(a, "own request, waiting")

        # The caller hangs up; the request waits two hours for a second agent.
        earlier = timezone.now() - timedelta(hours=2)
        IdentityCheck.objects.filter(pk=request.identity_check_id).update(created_at=earlier)
        ApprovalRequest.objects.filter(pk=request.pk).update(created_at=earlier)

        # B signs in at their desk and approves from their phone, in the same session.
        b_desk = _agent_in_admin(browser, live_server.url, second_agent, password)
        b = browser.new_context(base_url=live_server.url, storage_state=b_desk.context.storage_state(), **PHONE)
        b = b.new_page()
        b.set_default_timeout(15_000)
        asks = "Sam Lee (ID staff1) asks to issue bypass codes for Nia Ward (ID nurse7)."
        b_desk.goto("/admin/")
        expect(b_desk.get_by_role("heading", name="Waiting for a second agent: 1")).to_be_visible()
        expect(b_desk.locator("#approvals-module")).to_contain_text(f"{request}: {asks} Asked 2\xa0hours ago.")
        axe.check(b_desk, "admin home page with a waiting request")
        b_desk.get_by_role("link", name="All waiting requests").click()
        queue = b_desk.locator("#result_list")
        expect(queue).to_contain_text(asks)
        expect(queue).to_contain_text("2 bypass codes, valid for 15 minutes")
        expect(queue).to_contain_text("This is a staff account.")
        expect(queue).not_to_contain_text("issue_bypass_codes")
        expect(queue).not_to_contain_text("valid_minutes")
        axe.check(b_desk, "approval queue")
        b.goto("/admin/helpdesk/approvalrequest/")
        seen_by_b.append(b.content())
        axe.check(b, "approval queue, on a phone")
        b.get_by_role("link", name=asks).click()
        # What B decides on, in sentences: who asks what for whom, with what, why a second agent, since when.
        summary = b.locator(".desk-summary")
        expect(summary.get_by_role("heading", level=2)).to_have_text(asks)
        said = dict(zip(summary.locator("dt").all_inner_texts(), summary.locator("dd").all_inner_texts(), strict=True))
        assert said["With"] == "2 bypass codes, valid for 15 minutes"
        assert said["Why a second agent"] == "This is a staff account. Actions on staff accounts need a second agent."
        assert said["Asked"].endswith("(2\xa0hours ago)") or said["Asked"].endswith("(2 hours ago)")
        assert said["Identity check"].startswith("Photo ID checked on a video call (INC-7001), by staff1 at ")
        expect(summary.locator("details")).not_to_have_attribute("open", "")
        expect(b.get_by_text("Approving does not run this now")).to_be_visible()
        expect(b.get_by_role("heading", name="Your decision")).to_be_visible()
        axe.check(b, "approve a request, on a phone")
        assert horizontal_overflow(b) == 0
        # Approve is the main button, Decline the one beside it; neither a grey browser button.
        assert drawn(b.get_by_role("button", name="Approve", exact=True))["background"] == MAIN_BUTTON
        assert drawn(b.get_by_role("button", name="Decline", exact=True))["background"] == OTHER_BUTTON
        b.get_by_role("button", name="Approve", exact=True).click()
        expect(b.get_by_text(f"Approved. {staff_member} finishes it with the caller on the line")).to_be_visible()
        seen_by_b.append(b.content())
        axe.check(b, "after approving, on a phone")
        b.goto(request_url)
        expect(b.get_by_text(f"Approved: {staff_member}, who asked for it, finishes it")).to_be_visible()
        expect(b.locator("form[action$='/finish/']")).to_have_count(0)
        seen_by_b.append(b.content())
        axe.check(b, "approved request, as the approver sees it")

        # The caller rings back: A's check from two hours ago no longer counts, so A checks again, then finishes.
        a.goto(f"/admin/identity/user/{person.pk}/change/")
        expect(a.get_by_text("for you to finish with the caller")).to_be_visible()
        axe.check(a, "person page with an approved request")
        a.get_by_role("link", name=str(request)).click()
        expect(a.get_by_text("First check again who is calling")).to_be_visible()
        expect(a.locator("form[action$='/finish/']")).to_have_count(0)
        axe.check(a, "approved request, check again first")
        a.get_by_role("link", name="Record an identity check").click()
        axe.check(a, "identity check for an approved request")
        a.get_by_label("Called back on the number in the HR record").check()
        a.get_by_label("Ticket or case reference").fill("INC-7002")
        a.get_by_role("button", name="Record the check").click()
        expect(a.get_by_text("Identity check relied on")).to_be_visible()
        axe.check(a, "finish an approved request")
        stale = a.context.new_page()  # the same request left open in a second tab
        stale.goto(request_url)

        a.get_by_role("button", name="Yes, issue bypass codes").click()
        shown = a.locator(".bypass-codes code")
        expect(shown).to_have_count(2)
        codes = shown.all_inner_texts()
        axe.check(a, "bypass codes after approval, shown once")

        # Back to the request: no codes, nothing left to finish. Forward again: the codes page was never stored
        # (no-store), so the browser does not show it from its cache; reloading posts the finish again: refused.
        a.go_back()
        expect(a.get_by_role("heading", name="Approved: finish it with the caller")).to_have_count(0)
        assert not [code for code in codes if code in a.content()]
        with pytest.raises(PlaywrightError, match="ERR_CACHE_MISS"):
            a.go_forward()
        a.wait_for_url("chrome-error://chromewebdata/")  # the browser's own page, asking before it posts again
        expect(a.locator("body")).to_contain_text("Confirm Form Resubmission")
        assert not [code for code in codes if code in a.content()]
        a.reload()
        expect(a.get_by_text(errors.NOT_READY)).to_be_visible()
        assert not [code for code in codes if code in a.content()]

        stale.get_by_role("button", name="Yes, issue bypass codes").click()
        expect(stale.get_by_text(errors.NOT_READY)).to_be_visible()
        assert not [code for code in codes if code in stale.content()]

        for url in (
            request_url,
            "/admin/helpdesk/approvalrequest/?state=all",
            f"/admin/identity/user/{person.pk}/change/",
        ):
            b.goto(url)
            seen_by_b.append(b.content())
            axe.check(b, f"after the codes were issued, {url}")

    assert not [code for code in codes if any(code in page for page in seen_by_b)]
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (ApprovalRequest.Status.APPROVED, second_agent)
    assert BypassCode.objects.filter(device__user=person).count() == 2
    filing_check, fresh_check = IdentityCheck.objects.filter(person=person).order_by("created_at")
    assert (fresh_check.agent, fresh_check.reference) == (staff_member, "INC-7002")
    events = list(AuditEvent.objects.filter(subject=person, sequence__gt=before).order_by("sequence"))
    assert [(e.action, e.actor) for e in events] == [
        ("helpdesk.identity_checked", staff_member),
        ("helpdesk.approval_requested", staff_member),
        ("helpdesk.request_approved", second_agent),
        ("helpdesk.identity_checked", staff_member),
        ("bypass_codes.issued", staff_member),
        ("helpdesk.action", staff_member),
    ]
    approved, finished = events[2], events[-1]
    assert (approved.details["request"], approved.details["check"]) == (request.pk, filing_check.pk)
    assert approved.details["check_age_minutes"] == 120 and approved.details["runs"] != "now"
    assert finished.details["check"] == fresh_check.pk and finished.details["reference"] == "INC-7002"
    assert (finished.details["filed_check"], finished.details["approved_by"]) == (filing_check.pk, second_agent.pk)
    assert not [code for code in codes if any(code in str(e.details) for e in events)]
    axe.assert_clean()
