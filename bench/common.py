"""What the benchmarks share: the bundled simulator started as a child process, and a
report saved as JSON and Markdown beside the others in bench/results."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def start_simulator(options):
    """A simulator child process on a free port with ``options`` (its command-line flags):
    (process, base URL)."""
    argv = [sys.executable, "-m", "fixtures.simulator", "--port", "0"] + list(options)
    sim = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
    base_url = sim.stdout.readline().strip()
    if not base_url.startswith("http"):
        sim.kill()
        sim.wait()
        raise SystemExit("bench: the simulator did not start")
    return sim, base_url


def save_report(name: str, report: dict, text: str) -> None:
    """``report`` into bench/results/NAME.json, its rendering ``text`` into NAME.md, and
    ``text`` printed."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / (name + ".json")).write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / (name + ".md")).write_text(text)
    print(text)
