"""Real Chromium for browser tests: Debian's build, driven by Playwright, checked with axe-core.

Browsers are never downloaded: Playwright launches the system ``chromium``.
"""

import io
import os
from contextlib import contextmanager
from urllib.parse import parse_qs, unquote, urlparse

import zxingcpp
from axe_playwright_python.sync_playwright import Axe
from django.db import connections
from PIL import Image
from playwright.sync_api import sync_playwright

from testsupport import CHROMIUM, fresh_code

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}
BLOCKING_IMPACTS = {"serious", "critical"}
# The help desk's walks (helpdesk/tests) hold their pages to moderate violations too.
WITH_MODERATE = BLOCKING_IMPACTS | {"moderate"}


@contextmanager
def chromium():
    """A headless Chromium for one test.

    Playwright's sync API runs an event loop in this thread, so Django would
    refuse the test's own ORM calls without DJANGO_ALLOW_ASYNC_UNSAFE.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()
                # The test's ORM calls ran in Playwright's context, which has its own
                # database connections; left open, they keep the test database from being dropped.
                connections.close_all()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Accessibility:
    """Runs axe-core on each page a test visits and collects the violations of the ``blocking`` impacts (serious and
    critical unless a test asks for more, as ``WITH_MODERATE``)."""

    def __init__(self, blocking: set[str] = BLOCKING_IMPACTS):
        self.axe = Axe()
        self.blocking = blocking
        self.checked: list[str] = []
        self.violations: list[str] = []

    def check(self, page, name: str) -> None:
        # A click that navigates returns once the new page starts loading: axe on a half-parsed page finds no main
        # landmark, no heading, a skip link without its target.
        page.wait_for_load_state()
        results = self.axe.run(page)
        self.checked.append(name)
        for violation in results.response["violations"]:
            if violation["impact"] in self.blocking:
                targets = "; ".join(", ".join(node["target"]) for node in violation["nodes"])
                self.violations.append(
                    f"{name} ({page.url}): {violation['id']} [{violation['impact']}] {violation['help']} -> {targets}"
                )

    def assert_clean(self) -> None:
        impacts = ", ".join(sorted(self.blocking))
        assert not self.violations, f"axe-core found violations ({impacts}):\n" + "\n".join(self.violations)


def page_with_authenticator(browser, base_url, screen, *, init_script: str | None = None, **options):
    """A page in a new browser context with one of Chromium's virtual WebAuthn authenticators (DevTools' WebAuthn
    domain), the browser running the real ceremonies with it; returns ``(page, cdp session, authenticator id)``.

    ``options`` are the authenticator's (``transport``, ``hasResidentKey``, ``isUserVerified``...); it speaks CTAP2.
    ``init_script`` runs in every page before the site's own scripts.
    """
    context = browser.new_context(base_url=base_url, **screen)
    context.set_default_timeout(15_000)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    options = {"protocol": "ctap2", **options}
    authenticator = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]
    return page, cdp, authenticator


def sign_in_with_app(page, person, password: str, device) -> None:
    """On the sign-in page (where the site and the admin send an unverified visitor): the institution ID and the
    password, then a fresh code from the person's authenticator app ``device``."""
    page.get_by_label("Institution ID").fill(person.username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_label("Code", exact=True).fill(fresh_code(device))
    page.get_by_role("button", name="Verify").click()


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page is wider than the screen (0 when nothing scrolls sideways).

    Compared with the configured width too: a mobile browser widens its layout
    viewport (and ``innerWidth``) to fit content that is too wide, which would
    hide the overflow from ``innerWidth`` alone.
    """
    screen = min(page.viewport_size["width"], page.evaluate("window.innerWidth"))
    return page.evaluate("document.documentElement.scrollWidth") - screen


def decode_qr(png: bytes) -> str:
    """The text of the one QR code in a screenshot, read by a real decoder (zxing-cpp)."""
    # QR codes only: read for every format, a row of a QR code's modules now and then also passes for a 1-D barcode
    # (ITF, Codabar: about 1 image in 400), which no authenticator app looks for.
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)), formats=zxingcpp.BarcodeFormat.QRCode)
    # The decoder now and then reports the same symbol twice (seen once in CI-like runs): count distinct texts.
    texts = {result.text for result in results}
    assert len(texts) == 1, f"expected one QR code in the image, found {len(texts)}"
    return texts.pop()


def parse_otpauth(uri: str) -> dict:
    """Type, label parts, issuer and secret of an ``otpauth://`` URI (Key URI Format)."""
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth", uri
    label = unquote(parsed.path.lstrip("/"))
    label_issuer, _, account = label.rpartition(":")
    params = {key: values[0] for key, values in parse_qs(parsed.query).items()}
    return {
        "type": parsed.netloc,
        "label_issuer": label_issuer.strip(),
        "account": account.strip(),
        "issuer": params.get("issuer"),
        "secret": params["secret"],
        "digits": int(params.get("digits", 6)),
        "period": int(params.get("period", 30)),
        "algorithm": params.get("algorithm", "SHA1"),
    }
