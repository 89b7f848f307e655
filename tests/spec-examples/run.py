"""Runs the system description's Python usage examples, unchanged, against a live
`sutazai serve` on localhost:8000, and checks what they lead to.

The example files are verbatim copies of the spec's snippets. Like the spec, the
"Complex Multi-Agent Workflow" and "Agent Performance Analysis" snippets continue the
first one (they use its `requests` import), so they run in one shared namespace, the
way a reader would paste them into one session.

Checks: both tasks get a session_id and complete with real model output (the second
after its two required approvals are given through the API); GET /tasks/{id} shows
each agent's steps with tokens and durations; the monitoring example receives
system_status and task_completed events; the analytics example prints rates.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = "http://localhost:8000"


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

    printed = run_example("agent_performance_analysis.py", ns)
    if "Average Success Rate:" not in printed:
        failures.append("analytics example printed no success rate")

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
