"""Review pages through the HTTP layer: queues with counts and SLA state, leasing the next
item, the item view (escaped content, highlighted evidence, definitions, history, blurred
images), submitting a decision, appeal tasks for senior reviewers, admin policy and stats."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update
from ui_helpers import DEFAULT_POLICY, UIEnv, csrf_of, login, seed, seed_spec

from warden.store.models import ReviewTaskRow
from warden.store.review_repo import ReviewRepository
from warden.store.sqltypes import utcnow

Client = Callable[[], TestClient]
PIXEL = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
         "AAAABJRU5ErkJggg==")


def _client(make: Client, username: str) -> TestClient:
    c = make()
    assert login(c, username).status_code == 303
    return c


def _waiting(page: str, queue: str) -> int:
    m = re.search(rf'data-queue="{queue}".*?class="num waiting">(\d+)<', page, re.S)
    assert m, page
    return int(m.group(1))


def test_queue_counts_lease_view_and_decide(client_factory: Client, ui_env: UIEnv) -> None:
    seed(ui_env, [("old-1", "earlier spam: buy now", "actor-7")])
    repo = ReviewRepository(ui_env.store, policy=ui_env.moderator.policy)
    first = repo.lease_next("default", "user:someone-else")
    repo.submit(first.id, "user:someone-else", labels={"spam": True}, action="remove", note="",
                policy_version="v")
    seed(ui_env, [("c-1", "Hello <script>alert('x')</script> please buy now!", "actor-7"),
                  ("c-2", "nothing to see", "actor-8")])  # c-2 is allowed: never queued
    c = _client(client_factory, "reviewer")
    page = c.get("/ui/queues").text
    assert _waiting(page, "default") == 1 and _waiting(page, "appeals") == 0

    token = csrf_of(c)
    r = c.post("/ui/queues/default/next", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/tasks/")
    task_page = c.get(r.headers["location"])
    html = task_page.text
    assert task_page.status_code == 200
    # content escaped, evidence highlighted on the exact span
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert re.search(r'<mark class="evidence" data-categories="spam"[^>]*>buy now</mark>', html)
    # the definition of the category in question, the signals and the actor's history
    assert "Unsolicited" in html or "spam" in html
    definition = ui_env.moderator.policy.categories["spam"].definition
    assert definition.split()[0] in html and 'id="signals"' in html and "0.700" in html
    assert "old-1" in html and "reviewed remove by user:someone-else" in html
    # shortcuts are shown, categories are numbered
    assert 'data-key="1" data-category="spam"' in html and 'data-key="r"' in html and "Enter" in html

    task_id = int(r.headers["location"].rsplit("/", 1)[1])
    r = c.post(f"/ui/tasks/{task_id}/decision", data={"csrf_token": token, "category": ["spam"],
                                                      "violating": ["spam"], "action": "remove", "note": "ad"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/queues?done=decided"
    page = c.get("/ui/queues?done=decided").text
    assert "Decision recorded." in page and _waiting(page, "default") == 0
    view = repo.get_task(task_id)
    assert view.task.status == "done"
    decided = view.review_decisions[-1]
    assert decided.reviewer == "user:reviewer" and dict(decided.labels) == {"spam": True}
    assert decided.policy_version == ui_env.moderator.policy.version and decided.note == "ad"
    # deciding again is a conflict, not a crash
    r = c.post(f"/ui/tasks/{task_id}/decision", data={"csrf_token": token, "category": ["spam"],
                                                      "action": "allow"})
    assert r.status_code == 409


def test_unchecked_categories_in_question_are_negative_labels(client_factory: Client, ui_env: UIEnv) -> None:
    seed(ui_env, [("n-1", "buy now", None)])
    c = _client(client_factory, "reviewer")
    token = csrf_of(c)
    loc = c.post("/ui/queues/default/next", data={"csrf_token": token}).headers["location"]
    task_id = int(loc.rsplit("/", 1)[1])
    r = c.post(f"/ui/tasks/{task_id}/decision", data={"csrf_token": token, "category": ["spam"],
                                                      "violating": ["scam"], "action": "allow"})
    assert r.status_code == 303
    labels = ReviewRepository(ui_env.store).get_task(task_id).review_decisions[-1].labels
    assert dict(labels) == {"spam": False, "scam": True}


def test_invalid_action_is_422(client_factory: Client, ui_env: UIEnv) -> None:
    seed(ui_env, [("bad-1", "buy now", None)])
    c = _client(client_factory, "reviewer")
    token = csrf_of(c)
    task_id = int(c.post("/ui/queues/default/next", data={"csrf_token": token}).headers["location"].rsplit("/")[-1])
    r = c.post(f"/ui/tasks/{task_id}/decision", data={"csrf_token": token, "category": ["spam"],
                                                      "action": "hold_for_review"})
    assert r.status_code == 422 and "unknown action" in r.text


def test_empty_queue_and_release(client_factory: Client, ui_env: UIEnv) -> None:
    c = _client(client_factory, "reviewer")
    token = csrf_of(c)
    r = c.post("/ui/queues/default/next", data={"csrf_token": token})
    assert r.headers["location"] == "/ui/queues?done=queue_empty"
    seed(ui_env, [("r-1", "buy now", None)])
    loc = c.post("/ui/queues/default/next", data={"csrf_token": token}).headers["location"]
    task_id = int(loc.rsplit("/", 1)[1])
    assert f"/ui/tasks/{task_id}" in c.get("/ui/queues").text  # listed under "your open leases"
    other = _client(client_factory, "senior-reviewer")
    page = other.get(loc).text
    assert "leased by another reviewer" in page and 'id="decision-form"' not in page
    r = c.post(f"/ui/tasks/{task_id}/release", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/ui/queues?done=released"
    r = other.post(f"/ui/tasks/{task_id}/lease", data={"csrf_token": csrf_of(other)})
    assert r.status_code == 303 and 'id="decision-form"' in other.get(loc).text


def test_skip_releases_and_takes_the_next(client_factory: Client, ui_env: UIEnv) -> None:
    seed(ui_env, [("s-1", "buy now", None), ("s-2", "buy now too", None)])
    c = _client(client_factory, "reviewer")
    token = csrf_of(c)
    first = int(c.post("/ui/queues/default/next", data={"csrf_token": token}).headers["location"].rsplit("/")[-1])
    nxt = c.post("/ui/queues/default/next", data={"csrf_token": token, "release": str(first)})
    second = int(nxt.headers["location"].rsplit("/")[-1])
    assert second != first
    assert ReviewRepository(ui_env.store).get_task(first).task.status == "open"


def test_overdue_queue_is_highlighted(client_factory: Client, ui_env: UIEnv) -> None:
    seed(ui_env, [("late-1", "buy now", None)])
    with ui_env.store.transaction() as s:
        s.execute(update(ReviewTaskRow).values(due_at=utcnow() - timedelta(hours=1)))
    c = _client(client_factory, "reviewer")
    page = c.get("/ui/queues").text
    assert re.search(r'<tr data-queue="default" class="overdue">', page)
    assert 'class="num overdue-count sla-overdue">1<' in page
    task_id = int(c.post("/ui/queues/default/next", data={"csrf_token": csrf_of(c)}).headers["location"]
                  .rsplit("/")[-1])
    assert 'class="sla-overdue" id="sla"' in c.get(f"/ui/tasks/{task_id}").text


def test_images_are_blurred_and_unsafe_urls_dropped(client_factory: Client, ui_env: UIEnv) -> None:
    task_id = seed_spec(ui_env, content_id="img-1", text="look at this",
                        details={"image_urls": [PIXEL, "javascript:alert(1)", "https://cdn.example/a.jpg"]})
    c = _client(client_factory, "reviewer")
    html = c.get(f"/ui/tasks/{task_id}").text
    imgs = re.findall(r'<img src="([^"]+)"[^>]*class="blur"', html)
    assert imgs == [PIXEL, "https://cdn.example/a.jpg"] and "javascript:" not in html


def test_appeals_are_for_senior_reviewers(client_factory: Client, ui_env: UIEnv) -> None:
    seed(ui_env, [("ap-1", "buy now", "actor-1")])
    repo = ReviewRepository(ui_env.store, policy=ui_env.moderator.policy)
    first = repo.lease_next("default", "user:reviewer")
    repo.submit(first.id, "user:reviewer", labels={"spam": True}, action="remove", policy_version="v")
    appeal = repo.create_appeal(first.decision_id, reason="It was <b>not</b> spam", appellant="actor-1")
    task_id = appeal.task.id
    rev = _client(client_factory, "reviewer")
    token = csrf_of(rev)
    page = rev.get("/ui/queues").text
    assert re.search(r'data-queue="appeals".*?senior reviewers', page, re.S)
    assert rev.post("/ui/queues/appeals/next", data={"csrf_token": token}).status_code == 403
    assert rev.get(f"/ui/tasks/{task_id}").status_code == 403
    assert rev.post(f"/ui/tasks/{task_id}/lease", data={"csrf_token": token}).status_code == 403

    senior = _client(client_factory, "senior-reviewer")
    stoken = csrf_of(senior)
    loc = senior.post("/ui/queues/appeals/next", data={"csrf_token": stoken}).headers["location"]
    assert loc == f"/ui/tasks/{task_id}"
    html = senior.get(loc).text
    assert "It was &lt;b&gt;not&lt;/b&gt; spam" in html and 'id="appeal"' in html
    r = senior.post(f"/ui/tasks/{task_id}/decision", data={"csrf_token": stoken, "category": ["spam"],
                                                          "action": "allow"})
    assert r.status_code == 303
    assert repo.get_task(task_id).appeal.status == "overturned"


def test_admin_queue_stats_and_agreement_pages(client_factory: Client, ui_env: UIEnv) -> None:
    seed(ui_env, [("q-1", "buy now", None)])
    adm = _client(client_factory, "admin")
    html = adm.get("/ui/admin/queues").text
    assert 'id="queue-stats"' in html and "General review queue" not in html  # description only on /ui/queues
    assert re.search(r"<td>default</td>\s*<td>24 h</td>\s*<td class=\"num\">1</td>", html)
    page = adm.get("/ui/agreement").text
    assert "No double-reviewed items yet" in page


def test_agreement_shows_kappa(client_factory: Client, ui_env: UIEnv) -> None:
    repo = ReviewRepository(ui_env.store, policy=ui_env.moderator.policy)
    seed(ui_env, [(f"k-{i}", f"buy now {i}", None) for i in range(6)])
    for i in range(6):
        t = repo.lease_next("default", "user:a")
        res = repo.submit(t.id, "user:a", labels={"spam": i % 2 == 0}, action="remove", policy_version="v",
                          double_review_rate=1.0)
        second = repo.lease(res.double_review_task_id, "user:b")
        repo.submit(second.id, "user:b", labels={"spam": i % 2 == 0 if i < 5 else True}, action="remove",
                    policy_version="v")
    senior = _client(client_factory, "senior-reviewer")
    html = senior.get("/ui/agreement").text
    m = re.search(r'data-category="spam">.*?class="num kappa">([^<]+)<', html, re.S)
    assert m and m.group(1) == "0.67", html


def test_policy_page_validates_and_diffs(client_factory: Client, ui_env: UIEnv) -> None:
    seed(ui_env, [("p-1", "buy now", None)])
    adm = _client(client_factory, "admin")
    html = adm.get("/ui/admin/policy").text
    policy = ui_env.moderator.policy
    assert policy.version in html and re.search(r'id="live-fingerprint">[0-9a-f]{64}<', html)
    assert re.search(r"<td>default</td><td>" + re.escape(policy.version) + r"</td>\s*<td class=\"num\">1</td>", html)
    token = csrf_of(adm, "/ui/admin/policy")

    r = adm.post("/ui/admin/policy/validate", data={"csrf_token": token,
                                                    "policy_yaml": "name: x\nversion: 1\ncategories: <script>"})
    assert r.status_code == 422 and 'id="policy-problems"' in r.text and "<script>" not in r.text
    assert "pasted policy" in r.text and "surfaces" in r.text  # exact problems, with the key path

    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    candidate = text.replace(f'version: "{policy.version}"', 'version: "candidate-2"').replace(
        "default: {flag: 0.8, review: 0.5}", "default: {flag: 0.75, review: 0.5}", 1)
    r = adm.post("/ui/admin/policy/validate", data={"csrf_token": token, "policy_yaml": candidate})
    assert r.status_code == 200 and "Valid: default version candidate-2" in r.text
    assert "<code>version</code>" in r.text and "thresholds.default.flag</code>" in r.text
