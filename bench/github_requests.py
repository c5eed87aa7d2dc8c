"""GitHub API requests per event: a `pull_request.synchronize` on a warm cache (target ≤ 4
that cost rate limit) and a duplicate delivery (target 0), against the fake GitHub of the
tests (which counts what PyGithub sends, and whether GitHub would charge it). The events are
GitHub's published synchronize payload, told about the seeded PR, as the receiver stores it.

    python bench/github_requests.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def main() -> None:
    import shutil

    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from flows.deliver_outbox import deliver_outbox
    from flows.process_inbox import process_inbox
    from flows.runtime import runtime
    from gates.store import Store
    from tests.github_world import BRANCH, deliver, pull_request_event, seed
    from tests.paths import POLICIES
    from tests.servers import serving
    from tests.world import World

    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        shutil.copytree(POLICIES, root / "policies")
        os.chdir(root)
        url = f"sqlite:///{root / 'phasegate.db'}"
        os.environ.update(
            PHASEGATE_DATABASE_URL=url,
            PHASEGATE_POLICIES=str(root / "policies"),
            PHASEGATE_CHECKOUTS=str(root / "checkouts"),
        )
        store = Store(url)
        store.migrate()
        world = World(root, store)
        fake, repo, number, _, private = seed(world)

        def event(delivery: str) -> None:
            """GitHub's published synchronize payload, for the PR as the fake holds it."""
            deliver(world, "pull_request", pull_request_event(repo, number), delivery)

        def measure(step) -> tuple[int, int]:
            before = len(fake.requests)
            step()
            calls = fake.requests[before:]
            return len(calls), sum(c.counted for c in calls)

        with (
            serving(fake.app) as base,
            prefect_test_harness(server_startup_timeout=90),
            temporary_settings(updates={"flows.heartbeat_frequency": None}),
        ):
            os.environ.update(
                PHASEGATE_GITHUB_API_URL=f"{base}/api/v3",
                PHASEGATE_GITHUB_APP_ID="42",
                PHASEGATE_GITHUB_PRIVATE_KEY=private,
            )
            runtime.cache_clear()
            cold = measure(lambda: (event("e1"), process_inbox()))
            deliver_outbox()
            repo.push(BRANCH, {"src/train.py": "# retrained\n"})
            warm = measure(lambda: (event("e2"), process_inbox()))
            write = measure(deliver_outbox)  # the check run on the new head
            card = repo.commits[repo.branches[BRANCH]].files["docs/model_card.md"].decode()
            repo.push(BRANCH, {"docs/model_card.md": card + "\nUpdated.\n"})
            warm_card = measure(lambda: (event("e3"), process_inbox()))
            duplicate = measure(lambda: (event("e3"), process_inbox()))
    print("GitHub API requests to collect evidence (sent / charged to the rate limit):")
    print(f"  first event for the PR (cold cache)          : {cold[0]:3d} / {cold[1]}")
    print(
        f"  synchronize, a file the gates don't read     : {warm[0]:3d} / {warm[1]}   (target ≤ 4 charged)"
    )
    print(f"    + writing its check run                    : {write[0]:3d} / {write[1]}")
    print(f"  synchronize, the model card changed          : {warm_card[0]:3d} / {warm_card[1]}")
    print(
        f"  duplicate delivery                           : {duplicate[0]:3d} / {duplicate[1]}   (target 0)"
    )


if __name__ == "__main__":
    main()
