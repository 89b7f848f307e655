"""Runs the system description's Python usage examples, unchanged, against a live
`sutazai serve` on localhost:8000, and checks what they lead to.

The example files are verbatim copies of the spec's snippets. Like the spec, the
"Complex Multi-Agent Workflow" and "Agent Performance Analysis" snippets continue the
first one (they use its `requests` import), so they run in one shared namespace, the
way a reader would paste them into one session.

Checks: both tasks get a session_id and complete with real model output (the second
after its two required approvals are given through the API); GET /tasks/{id} shows
each agent's steps with tokens and durations; the monitoring example receives
system_status and task_completed events.

The analytics example is cross-checked against the journal. Before it runs, one more
task is cancelled while its model call runs, which journals that step as failed, so the
success rates are not trivially 100%. After it, the serve process's journal (found
through the process listening on port 8000, read-only) answers the same questions with
its own SQL over the example's 24-hour window: the success rate over the steps finished
in it, the mean duration of the completed ones, and each agent's success rate. Both are
printed side by side at the example's precision (`.1%`, `.2f`); any difference fails.
"""

import contextlib
import glob
import io
import json
import os
import pathlib
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timezone

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = "http://localhost:8000"
PORT = 8000
# The journal's file name in the data directory (JOURNAL_FILE_NAME in the CLI's settings).
JOURNAL_FILE_NAME = "journal.sqlite3"


def run_example(name, namespace):
    path = os.path.join(HERE, name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(open(path).read(), path, "exec"), namespace)
    print(f"--- {name} printed:\n{out.getvalue()}", end="")
    return out.getvalue()


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(BASE + path, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def wait_done(task_id, limit=600):
    began = time.time()
    while time.time() - began < limit:
        task = call("GET", f"/tasks/{task_id}")
        if task["status"] in ("completed", "failed", "cancelled"):
            return task
        time.sleep(0.5)
    raise SystemExit(f"task {task_id} did not finish in {limit}s")


def show_steps(task):
    print(f"task {task['name']!r}: {task['status']}, agents {task['assigned_agents']}")
    for s in sorted(task["steps"], key=lambda s: s["seq"]):
        print(f"  {s['key']:<14} {s['agent_id']:<34} prompt_tokens={s['prompt_tokens']:<4} "
              f"completion_tokens={s['completion_tokens']:<4} duration={s['duration']:.2f}s")
        assert s["status"] == "completed", s
        assert s["completion_tokens"] > 0 and s["duration"] > 0, s
    out = task["result"]["output"]
    assert isinstance(out, str) and out.strip(), task["result"]
    print(f"  result: {out[:120]!r}")


def fail_one_step(attempts=5):
    """Submits a one-step task and cancels it while its step's model call runs: the
    orchestrator journals an in-flight step of a cancelled task as failed. Returns the
    task id, or None if every attempt's step finished before the cancel landed."""
    for attempt in range(1, attempts + 1):
        submitted = call("POST", "/tasks", {
            "name": f"Cancelled mid-step ({attempt})",
            "description": "Write a long essay on the history of computing.",
            "requirements": ["code_generation"],
            "coordination_pattern": "pipeline",
            "constraints": {"max_agents": 1},
        })
        task_id = submitted["task_id"]
        began = time.time()
        while time.time() - began < 120:
            task = call("GET", f"/tasks/{task_id}")
            if task["status"] in ("completed", "failed", "cancelled"):
                break
            if any(s["status"] == "running" for s in task["steps"]):
                try:
                    call("DELETE", f"/tasks/{task_id}")
                except urllib.error.HTTPError as e:
                    if e.code != 409:  # 409: it finished first
                        raise
                break
            time.sleep(0.01)
        task = wait_done(task_id)
        failed = [s for s in task["steps"] if s["status"] == "failed"]
        print(f"task {task['name']!r}: {task['status']}, steps "
              + ", ".join(f"{s['key']}={s['status']} ({s['agent_id']})" for s in task["steps"]))
        if task["status"] == "cancelled" and failed:
            return task_id
    return None


def listening_pids(port):
    """The processes with a TCP socket listening on `port` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{inode}]")
    pids = set()
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in inodes:
                pids.add(int(fd.split("/")[2]))
        except OSError:
            pass
    return pids


def find_journal():
    """The journal the server on PORT writes: `$SUTAZAI_DATA_DIR/journal.sqlite3` when that
    is set here, else the `journal.sqlite3` the listening process holds open (run.sh
    gives serve a fresh data directory of its own)."""
    data_dir = os.environ.get("SUTAZAI_DATA_DIR")
    if data_dir:
        return os.path.join(data_dir, JOURNAL_FILE_NAME)
    found = set()
    for pid in listening_pids(PORT):
        for fd in glob.glob(f"/proc/{pid}/fd/*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if os.path.basename(target) == JOURNAL_FILE_NAME:
                found.add(target)
    if len(found) != 1:
        raise SystemExit(f"cannot tell the server's journal: found {sorted(found) or 'none'}")
    return found.pop()


def journal_time(naive_local):
    """A naive local datetime (what the example sends; the server reads it as local time)
    as the journal writes time: RFC 3339 UTC with nine fractional digits, so text order is
    time order."""
    utc = naive_local.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def cross_check_analytics(printed, ns):
    """Recomputes the analytics example's figures from the journal with SQL of its own and
    compares them, as printed, with what the example printed. Returns the mismatches."""
    since, until = journal_time(ns["start_date"]), journal_time(ns["end_date"])
    path = find_journal()
    db = sqlite3.connect(pathlib.Path(path).as_uri() + "?mode=ro", uri=True)
    try:
        window = "finished_at >= ? AND finished_at < ? AND status IN ('completed', 'failed')"
        completed, failed, mean = db.execute(
            "SELECT COUNT(*) FILTER (WHERE status = 'completed'),"
            "       COUNT(*) FILTER (WHERE status = 'failed'),"
            "       AVG(duration) FILTER (WHERE status = 'completed')"
            f" FROM steps WHERE {window}", (since, until)).fetchone()
        agents = db.execute(
            "SELECT agent_id, COUNT(*) FILTER (WHERE status = 'completed'),"
            "       COUNT(*) FILTER (WHERE status = 'failed')"
            f" FROM steps WHERE {window} GROUP BY agent_id ORDER BY agent_id",
            (since, until)).fetchall()
    finally:
        db.close()

    def rate(ok, bad):
        return ok / (ok + bad) if ok + bad else 0.0

    expected = [
        ("average success rate", "Average Success Rate: ", f"{rate(completed, failed):.1%}",
         f"{completed} completed, {failed} failed"),
        ("average response time", "Average Response Time: ", f"{mean or 0.0:.2f}s",
         f"mean of {completed} completed steps' durations"),
    ]
    for agent_id, ok, bad in agents:
        expected.append((f"agent {agent_id}", f"{agent_id}: ", f"{rate(ok, bad):.1%} success rate",
                         f"{ok} completed, {bad} failed"))

    lines = printed.splitlines()
    print(f"analytics cross-check: journal {path} (read-only), window [{since}, {until})")
    print(f"  {'figure':<48} {'example printed':>22} {'journal (SQL)':>22}")
    mismatches = []
    for label, prefix, value, note in expected:
        shown = [line[len(prefix):] for line in lines if line.startswith(prefix)]
        got = shown[0] if len(shown) == 1 else f"<{len(shown)} lines>"
        verdict = "ok" if got == value else "MISMATCH"
        print(f"  {label:<48} {got:>22} {value:>22}  {verdict}  ({note})")
        if got != value:
            mismatches.append(f"analytics {label}: the example printed {got!r}, "
                              f"the journal gives {value!r}")
    agent_line = re.compile(r"^(\S+): .* success rate$")
    listed = {m.group(1) for m in map(agent_line.match, lines) if m}
    extra = listed - {a[0] for a in agents}
    if extra:
        mismatches.append(f"the example printed agents the journal has no steps for: {sorted(extra)}")
    if failed == 0:
        mismatches.append("no failed step in the window: the rates are trivially 100%")
    return mismatches


def main():
    failures = []
    monitor = subprocess.Popen([sys.executable, "-u", os.path.join(HERE, "realtime_monitoring.py")],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)

    ns = {}
    printed = run_example("basic_task_submission.py", ns)
    basic = ns["task_response"]
    assert ns["session_id"] and "Session ID:" in printed
    print(f"basic task: task_id={basic['task_id']} session_id={basic['session_id']}")

    run_example("complex_multi_agent_workflow.py", ns)
    complex_response = ns["response"].json()
    print(f"complex task: status={complex_response['status']} "
          f"session_id={complex_response['session_id']} "
          f"pending={complex_response['pending_approvals']}")
    assert complex_response["session_id"]
    assert complex_response["status"] == "awaiting_approval"
    complex_id = complex_response["task_id"]

    for approval in ["security-review", "infrastructure-review"]:
        r = call("POST", f"/tasks/{complex_id}/approve",
                 {"approval": approval, "approved_by": "spec-example-runner"})
        print(f"approved {approval}: status now {r['status']}")

    basic_task = wait_done(basic["task_id"])
    complex_task = wait_done(complex_id)
    for task in (basic_task, complex_task):
        if task["status"] != "completed":
            failures.append(f"{task['name']}: {task['status']} {task.get('error')}")
        else:
            show_steps(task)
    stages = [s for s in complex_task["steps"] if s["kind"] == "stage"]
    if len(stages) != 4:
        failures.append(f"the pipeline ran {len(stages)} stages, expected 4 (one per requirement)")

    if fail_one_step() is None:
        failures.append("could not cancel a task while its step ran (no failed step)")

    printed = run_example("agent_performance_analysis.py", ns)
    if "Average Success Rate:" not in printed:
        failures.append("analytics example printed no success rate")
    failures.extend(cross_check_analytics(printed, ns))

    time.sleep(3)  # one more heartbeat
    monitor.terminate()
    monitor_out = monitor.communicate(timeout=10)[0]
    print(f"--- realtime_monitoring.py printed:\n{monitor_out}", end="")
    for needle in ["System Health:", "Active Tasks:",
                   "Task completed: Generate Authentication Module",
                   "Task completed: Full Stack Application Deployment"]:
        if needle not in monitor_out:
            failures.append(f"monitoring example never printed {needle!r}")

    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        print(f"spec examples: 0 passed, {len(failures)} failed")
        sys.exit(1)
    print("spec examples: 4 passed, 0 failed")


if __name__ == "__main__":
    main()
