"""Start and stop a single-node SLURM cluster (munged, slurmctld, slurmd) on localhost from
tests/slurm/slurm.conf.in, for tests/test_cluster.py.

``LocalCluster(tmp).start()`` returns the environment (SLURM_CONF) that clients need, or raises
:class:`Unavailable` with the exact reason SLURM cannot run here (missing binaries, not root, a
daemon that does not come up: its log tail).  ``stop()`` ends the three daemons it started, by
the pids their pid files name.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel")


class Unavailable(Exception):
    """SLURM cannot run on this machine; the message says why."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 8) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return f"(no {path.name})"


class LocalCluster:
    def __init__(self, root: Path, cpus: int = 2):
        self.dir = Path(root)
        self.cpus = cpus
        self.conf = self.dir / "slurm.conf"
        self.pid_files = {"slurmd": self.dir / "slurmd.pid",
                          "slurmctld": self.dir / "slurmctld.pid",
                          "munged": self.dir / "munge" / "munged.pid"}

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def start(self) -> dict:
        missing = [b for b in BINARIES if shutil.which(b) is None]
        if missing:
            raise Unavailable(f"SLURM is not installed here ({', '.join(missing)} not on PATH; "
                              ".ci/run installs slurmctld, slurmd, slurm-client and munge with "
                              "apt-get when it can)")
        if os.geteuid() != 0:
            raise Unavailable("the test cluster's slurmd runs jobs as root (SlurmdUser=root); "
                              "this test process is not root")
        for sub in ("munge", "spool", "state", "log"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "munge").chmod(0o700)
        key = self.dir / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        text = (HERE / "slurm.conf.in").read_text()
        for field, value in (("@DIR@", str(self.dir)), ("@CTLD_PORT@", str(_free_port())),
                             ("@SLURMD_PORT@", str(_free_port())), ("@CPUS@", str(self.cpus))):
            text = text.replace(field, value)
        self.conf.write_text(text)
        m = self.dir / "munge"
        # --force: munged refuses a socket below world-writable /tmp otherwise
        self._daemon(["munged", "--force", f"--key-file={key}", f"--socket={m}/munge.socket",
                      f"--pid-file={m}/munged.pid", f"--log-file={m}/munged.log",
                      f"--seed-file={m}/munged.seed"], m / "munged.log")
        self._daemon(["slurmctld", "-c", "-f", str(self.conf)], self.dir / "log" / "slurmctld.log")
        self._daemon(["slurmd", "-N", "localhost", "-f", str(self.conf)],
                     self.dir / "log" / "slurmd.log")
        self._wait_idle()
        return self.env

    def _daemon(self, cmd: list[str], log: Path) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=60)
        if proc.returncode != 0:
            self.stop()
            raise Unavailable(f"`{' '.join(cmd)}` failed ({proc.returncode}): "
                              f"{(proc.stderr or proc.stdout).strip()[-500:]} / log: {_tail(log)}")

    def _wait_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True,
                                  text=True, env=self.env, timeout=60)
            state = (proc.stdout.strip() or proc.stderr.strip())
            if proc.returncode == 0 and state.startswith("idle"):
                return
            time.sleep(0.5)
        self.stop()
        raise Unavailable(f"the node did not become idle within {timeout:.0f} s (sinfo: "
                          f"{state!r}); slurmctld log: {_tail(self.dir / 'log' / 'slurmctld.log')}"
                          f"; slurmd log: {_tail(self.dir / 'log' / 'slurmd.log')}")

    def stop(self) -> None:
        """SIGTERM each daemon this cluster started (pid from its pid file), then wait for it."""
        for name, pid_file in self.pid_files.items():
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            for _ in range(100):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                os.kill(pid, signal.SIGKILL)
            pid_file.unlink(missing_ok=True)
