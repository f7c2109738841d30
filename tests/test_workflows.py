"""The GitHub workflows parse and run what the README and the smoke command promise (they run only on GitHub)."""

import yaml
from conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"


def load(name: str) -> dict:
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as True
    return workflow


def commands(workflow: dict) -> str:
    return "\n".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])


def test_ci_runs_the_readme_test_command_on_push_and_pull_request():
    workflow = load("ci.yml")
    assert set(workflow["on"]) == {"push", "pull_request"}
    assert ".ci/run" in commands(workflow)
    readme_command = "python3 -m pip install -q -r requirements-test.txt && python3 -m ruff check . && " \
                     "python3 -m pytest -n 2 tests"
    assert readme_command in (REPO / "README.md").read_text()
    assert readme_command in (REPO / "CONTRIBUTING.md").read_text()
    assert readme_command in (REPO / ".ci" / "run").read_text()


def test_smoke_runs_nightly_and_on_demand_with_cached_checkpoints_and_a_summary():
    workflow = load("smoke.yml")
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}
    steps = workflow["jobs"]["smoke"]["steps"]
    cache = next(step for step in steps if step.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == "${{ env.TORCH_HOME }}/hub/checkpoints"
    run = commands(workflow)
    assert "python3 -m models smoke --check-predictions --markdown" in run and "$GITHUB_STEP_SUMMARY" in run

