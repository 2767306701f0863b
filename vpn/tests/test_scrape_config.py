"""deploy/prometheus.yml against what the processes serve: the web and API nodes of deploy/haproxy.cfg by their
addresses (the proxy refuses /metrics), the RADIUS and worker ports their units name, the token every job sends, and a
node answering such a scrape with the production example's settings. A RADIUS server and a worker answering one are
in test_metrics.py."""

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.handlers.wsgi import WSGIHandler

from identity.tests.test_http_security import example_values
from testsupport import REQUIRE_SERVICES
from vpn.tests.test_wsgi import call

pytestmark = pytest.mark.django_db
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TOKEN = "scrape-token-for-the-tests-0123456789"  # noqa: S105

PROMETHEUS_CONFIG = DEPLOY / "prometheus.yml"
JOBS = ("enrollment-web", "enrollment-api", "enrollment-radius", "enrollment-workers")


def scrape_jobs() -> dict[str, dict]:
    """deploy/prometheus.yml's jobs: name -> scheme, metrics_path, credentials_file, targets. The keys are read as
    written there, one a line (promtool, below, checks the file is one Prometheus loads)."""
    jobs = {}
    for block in re.split(r"^  - job_name: ", PROMETHEUS_CONFIG.read_text(), flags=re.MULTILINE)[1:]:

        def key(name: str, default: str | None, block: str = block) -> str | None:
            found = re.search(rf"^ +{name}: (\S+)$", block, flags=re.MULTILINE)
            return found.group(1) if found else default

        groups = re.findall(r"targets: \[(.*?)\]", block, flags=re.DOTALL)
        jobs[block.split("\n", 1)[0].strip()] = {
            "scheme": key("scheme", "http"),
            "metrics_path": key("metrics_path", "/metrics"),
            "credentials_file": key("credentials_file", None),
            "targets": [target for group in groups for target in json.loads(f"[{group}]")],
        }
    return jobs


def haproxy_servers(backend: str) -> list[str]:
    """The address:port of each server of ``backend`` in deploy/haproxy.cfg."""
    text = (DEPLOY / "haproxy.cfg").read_text()
    section = re.search(rf"^backend {backend}\n(.*?)(?=^\S|\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert section, backend
    return re.findall(r"^ +server \S+ (\S+)", section.group(1), flags=re.MULTILINE)


def ports(targets: list[str]) -> set[int]:
    return {int(target.rsplit(":", 1)[1]) for target in targets}


def test_the_scrape_config_asks_each_node_where_it_serves_with_the_token():
    jobs = scrape_jobs()
    assert set(jobs) == set(JOBS)
    for name, job in jobs.items():
        # Plain HTTP, /metrics (the site's URL; the metrics port answers any path), and the token: METRICS_NETWORKS
        # names loopback alone in the production example, so a scrape from Prometheus's machine needs it.
        assert (job["scheme"], job["metrics_path"]) == ("http", "/metrics"), name
        assert job["credentials_file"], name
        assert job["targets"], name
    # The proxy answers /metrics with 404: the web and API jobs ask the nodes behind it, by their addresses.
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    assert re.search(r"http-request deny deny_status 404 if \{ path [^}]*/metrics", haproxy)
    assert jobs["enrollment-web"]["targets"] == haproxy_servers("web")
    assert jobs["enrollment-api"]["targets"] == haproxy_servers("auth_api")
    # The RADIUS servers' and the workers' ports are the ones their units tell radius.env and worker-<queue>.env.
    radius_unit = (DEPLOY / "enrollment-radius@.service").read_text()
    assert ports(jobs["enrollment-radius"]["targets"]) == {
        int(p) for p in re.findall(r"METRICS_PORT=(\d+)", radius_unit)
    }
    worker_unit = (DEPLOY / "enrollment-worker@.service").read_text()
    per_queue = dict(re.findall(r"([a-z-]+)=(\d+)", re.search(r"# +METRICS_PORT (.*)", worker_unit).group(1)))
    queues = set(re.findall(r"@([a-z][a-z-]*)", worker_unit))  # the instances it tells you to start
    assert set(per_queue) == queues and len(set(per_queue.values())) == len(queues)
    machines: dict[str, set[int]] = {}
    for target in jobs["enrollment-workers"]["targets"]:
        machines.setdefault(target.rsplit(":", 1)[0], set()).add(int(target.rsplit(":", 1)[1]))
    assert machines and all(found == {int(p) for p in per_queue.values()} for found in machines.values()), machines
    # The production example makes those ports reachable from Prometheus's machine.
    assert example_values().get("METRICS_HOST") not in (None, "127.0.0.1", "localhost", "::1")
    # The alert on a failing scrape covers every job.
    rule = re.search(r'up\{job=~"([^"]+)"\}', (DEPLOY / "prometheus-alerts.yml").read_text())
    assert rule and all(re.fullmatch(rule.group(1), name) for name in JOBS)


def test_promtool_accepts_the_scrape_config(tmp_path):
    if not shutil.which("promtool"):
        if REQUIRE_SERVICES:
            pytest.fail("promtool (Debian's prometheus package) is needed to check the scrape configuration")
        pytest.skip("needs promtool (Debian's prometheus package)")
    (tmp_path / "enrollment-token").write_text(TOKEN + "\n")
    config = PROMETHEUS_CONFIG.read_text()
    config = config.replace("/etc/prometheus/enrollment-token", str(tmp_path / "enrollment-token"))
    config = config.replace("/etc/prometheus/enrollment-alerts.yml", str(DEPLOY / "prometheus-alerts.yml"))
    (tmp_path / "prometheus.yml").write_text(config)
    result = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout, result.stdout


@pytest.mark.parametrize(
    ("job", "settings_module"), [("enrollment-web", None), ("enrollment-api", "config.settings_api")]
)
def test_a_node_answers_the_scrape_config_by_its_address_with_the_production_settings(settings, job, settings_module):
    """As deploy/prometheus.yml asks a node of deploy/haproxy.cfg: its address as the Host, plain HTTP, the token;
    with the production example's settings (HTTPS redirect, its own host only, one proxy in front). Prometheus's
    address is outside METRICS_NETWORKS here, so the token alone lets it in."""
    example = example_values()
    settings.ALLOWED_HOSTS = example["ALLOWED_HOSTS"].split(",")
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXY_COUNT = int(example["TRUSTED_PROXY_COUNT"])
    settings.METRICS_NETWORKS = ["10.0.9.0/24"]
    settings.METRICS_TOKEN = TOKEN
    if settings_module:
        module = importlib.import_module(settings_module)
        settings.MIDDLEWARE, settings.ROOT_URLCONF = module.MIDDLEWARE, module.ROOT_URLCONF
    application = WSGIHandler()  # its middleware built with the settings above
    scrape_config = scrape_jobs()[job]
    for target in scrape_config["targets"]:
        headers = {"Host": target, "Authorization": f"Bearer {TOKEN}"}
        status, _, content = call(application, "GET", scrape_config["metrics_path"], headers=headers)
        assert status == 200, (target, status, content[:300])
        assert b"enrollment_vpn_checks_total" in content
        status, _, content = call(application, "GET", scrape_config["metrics_path"], headers={"Host": target})
        assert status == 403 and b"enrollment_" not in content
    if settings_module is None:  # only the metrics and the probes: a page of the site still checks the Host
        assert call(application, "GET", "/account/sign-in/", headers={"Host": target})[0] == 400
