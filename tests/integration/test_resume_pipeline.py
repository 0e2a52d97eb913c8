"""Scale out and survive: kill -9 at a random point, then `-resume`; the results equal an uninterrupted run's.

Two ways to die, each at a seeded random moment of a `-profile test` run:
- "nextflow": SIGKILL the Nextflow JVM. Its local tasks do not die with it (they are children of the JVM, now
  orphaned, and would keep running and writing); like a crashed node, the test then SIGKILLs the rest of the run's
  process group and any process still working in the run's work dir, and waits until none is left, before
  resuming.
- "embed": SIGKILL the running `virnucpro embed` processes. Nextflow sees exit 137 and retries the task
  (conf/base.config); the run is then resumed as well, which must reuse every task.

Either way the run is resumed with `-resume` in the same launch dir, work dir and --outdir, and every published
result file must be byte-identical to the uninterrupted reference run (the shared `test_run` fixture), with every
frame predicted exactly once. The in-task checkpoint parts (16 frames, TEST_PROFILE_ARGS) are reused on resume.

Seeds: 1 and 2 by default (CI); VIRNUCPRO_RESUME_SEEDS=1,2,3,4,5 (a list) or VIRNUCPRO_RESUME_SEEDS=8 (seeds
1..8) for more.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from nfpipeline import (TEST_PROFILE_ARGS, nextflow_env, nextflow_run_command, read_fasta, run_nextflow,
                        samplesheet_rows)

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

PER_SAMPLE_FILES = ("prediction_results.txt", "prediction_results_highestscore.csv", "{sample}.records.tsv",
                    "{sample}.viral.fa", "preprocess/records.tsv", "preprocess/chunked.fa",
                    "preprocess/identified_nucleotide.fa", "preprocess/identified_protein.faa")
RUN_FILES = ("report/virnucpro_summary_mqc.tsv", "report/virnucpro_calls_mqc.tsv",
             "report/virnucpro_score_histogram_mqc.json")


def seeds() -> list[int]:
    text = os.environ.get("VIRNUCPRO_RESUME_SEEDS", "").strip()
    if not text:
        return [1, 2]
    if "," not in text:
        return list(range(1, int(text) + 1))
    return [int(s) for s in text.split(",") if s.strip()]


def processes_in(workdir: Path) -> dict[int, str]:
    """pid -> command line of every process whose current directory lies in `workdir` (the run's tasks)."""
    found = {}
    root = str(workdir.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone, or not ours to read
            continue
        if cwd == root or cwd.startswith(root + "/"):
            found[int(entry.name)] = cmdline
    return found


def embed_processes(workdir: Path) -> list[int]:
    """The Python processes of running `virnucpro embed` tasks (not their bash wrappers)."""
    return [pid for pid, cmd in processes_in(workdir).items()
            if "-m virnucpro embed" in cmd or cmd.split(" ")[:1] == ["virnucpro"] and " embed " in cmd]


def kill_all(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def kill_leftovers(pgid: int, workdir: Path, timeout: float = 60.0) -> int:
    """SIGKILL the run's process group and whatever still works in its work dir; wait until nothing is left."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        left = processes_in(workdir)
        if not left:
            return len(seen)
        assert time.monotonic() < deadline, f"processes survive SIGKILL: {left}"
        seen.update(left)
        kill_all(left)
        time.sleep(0.2)


def start_run(cwd: Path, outdir: Path, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        # A session of its own: the JVM and every task it starts share one process group, ours to kill.
        return subprocess.Popen(nextflow_run_command([*TEST_PROFILE_ARGS, "--outdir", str(outdir)], cwd),
                                cwd=cwd, env=nextflow_env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def is_java(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "java"
    except OSError:
        return False


def interrupt_nextflow(cwd: Path, outdir: Path, rng: random.Random, reference_seconds: float) -> str:
    proc = start_run(cwd, outdir, cwd / "killed.log")
    # Anywhere from start-up to well before the end (the reference run's length includes the JVM start).
    delay = rng.uniform(0.1, 0.75) * reference_seconds
    try:
        proc.wait(timeout=delay)
        pytest.fail(f"the run ended before the kill at {delay:.1f} s:\n{(cwd / 'killed.log').read_text()[-3000:]}")
    except subprocess.TimeoutExpired:
        pass
    # tools/nextflow/nextflow execs java, so the launched process is the JVM itself.
    assert is_java(proc.pid), "expected the Nextflow JVM"
    running = processes_in(cwd / "work")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The JVM is gone; its tasks are not (orphans, re-parented to init). Note which would survive the group kill.
    outside_group = [pid for pid in processes_in(cwd / "work") if pgid_of(pid) not in (None, proc.pid)]
    still = kill_leftovers(proc.pid, cwd / "work")
    return (f"JVM killed at {delay:.1f} s with {len(running)} task processes running "
            f"({len(outside_group)} outside its process group); {still} seen after the group kill, killed")


def pgid_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def interrupt_embed(cwd: Path, outdir: Path, rng: random.Random, reference_seconds: float) -> str:
    proc = start_run(cwd, outdir, cwd / "killed.log")
    # Wait a random moment, then kill the embed tasks running at the first moment there is one.
    delay = rng.uniform(0.0, 0.5) * reference_seconds
    time.sleep(delay)
    deadline = time.monotonic() + reference_seconds * 2
    victims: list[int] = []
    while not victims:
        assert proc.poll() is None, "the run ended before an embed task could be killed"
        assert time.monotonic() < deadline, "no embed task started"
        victims = embed_processes(cwd / "work")
        if not victims:
            time.sleep(0.1)
    kill_all(victims)
    rc = proc.wait(timeout=1200)
    # Exit 137 is retried (conf/base.config), so this run finishes on its own.
    assert rc == 0, (cwd / "killed.log").read_text()[-4000:]
    return f"{len(victims)} embed process(es) killed at >= {delay:.1f} s"


def published(outdir: Path) -> dict[str, bytes]:
    files = {}
    for sample, _ in samplesheet_rows():
        for pattern in PER_SAMPLE_FILES:
            name = f"{sample}/{pattern.format(sample=sample)}"
            files[name] = (outdir / name).read_bytes()
    for name in RUN_FILES:
        files[name] = (outdir / name).read_bytes()
    return files


@pytest.mark.parametrize("seed", seeds())
@pytest.mark.parametrize("victim", ["nextflow", "embed"])
def test_killed_run_resumes_to_the_uninterrupted_result(test_run, tmp_path, victim, seed):
    assert test_run.result.returncode == 0, "the reference run failed"
    reference = published(test_run.outdir)
    rng = random.Random(f"{victim}-{seed}")
    outdir = tmp_path / "results"
    interrupt = interrupt_nextflow if victim == "nextflow" else interrupt_embed
    what = interrupt(tmp_path, outdir, rng, test_run.seconds)
    print(f"seed {seed}: {what}")

    resumed = run_nextflow([*TEST_PROFILE_ARGS, "--outdir", str(outdir), "-resume"], tmp_path)
    assert resumed.returncode == 0, f"{what}\n{resumed.stdout[-6000:]}"
    if victim == "embed":
        # The interrupted run already finished through retries: the resumed one reuses everything.
        assert "Submitted process" not in resumed.stdout, resumed.stdout
        trace = sorted((outdir / "pipeline_info").glob("execution_trace_*.txt"))[0].read_text()
        assert any(line.split("\t")[3].startswith("VIRNUCPRO:EMBED") and line.split("\t")[5] == "137"
                   for line in trace.splitlines()[1:]), f"no EMBED attempt was killed ({what})\n{trace}"

    result = published(outdir)
    differ = [name for name in reference if result[name] != reference[name]]
    assert not differ, f"{what}: differs from the uninterrupted run: {differ}"

    for sample, _ in samplesheet_rows():
        frames = [fid for fid, _ in read_fasta(outdir / sample / "preprocess" / "identified_protein.faa")]
        lines = (outdir / sample / "prediction_results.txt").read_text().splitlines()[1:]
        predicted = [line.split("\t")[0] for line in lines]
        assert len(predicted) == len(set(predicted)), f"{sample}: a frame is predicted twice ({what})"
        assert predicted == frames, f"{sample}: predicted frames differ from the sample's frames ({what})"
