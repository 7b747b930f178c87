"""An arm64 Debian rootfs run under qemu-user, with the package installed as a device installs it (no torch), for the
ARM lane (`make test-arm`, tests/arm/test_arm_lane.py).

Built once and cached under $DWPOSE_EDGE_ARM_ROOT (default ~/.cache/dwpose_edge/arm): the host packages
(qemu-user-static, binfmt-support, mmdebstrap) are installed when missing, binfmt_misc is mounted and qemu-aarch64
registered; the rootfs is made by mmdebstrap (~3-5 min) into a staging folder and renamed when complete; its venv
(/opt/venv) gets the dependencies once per pyproject.toml and the package itself, from a clean copy of this tree,
whenever one of its files changes. Needs root (chroot, mount). Timings under emulation mean nothing: the lane
checks numbers, not speed.

Run `python tests/arm/arm_rootfs.py` to build or refresh it by hand; `python tests/arm/arm_rootfs.py --shell CPU`
prints the command that opens a shell in it.
"""
from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from lean_venv import _tree_files, _tree_key, clean_copy  # noqa: E402

ARM_ROOT = Path(os.environ.get("DWPOSE_EDGE_ARM_ROOT", Path.home() / ".cache" / "dwpose_edge" / "arm"))
SUITE = "bookworm"
ROOTFS = ARM_ROOT / f"{SUITE}-arm64"
EXTRAS = "openvino,ncnn,litert"
HOST_PACKAGES = ("qemu-user-static", "binfmt-support", "mmdebstrap")
# the emulated cores: one without fp16 arithmetic, one with it (what Raspberry Pi 5 and Jetson Orin cores compute)
CPUS = {
    "cortex-a72": "ARMv8.0: fp16 storage only (Raspberry Pi 4)",
    "neoverse-n1": "ARMv8.2 with fp16 arithmetic and dot product (as Cortex-A76 / A78: Raspberry Pi 5, Jetson Orin)",
}
BINFMT = Path("/proc/sys/fs/binfmt_misc")
# what the emulated core reports where a Linux arm64 kernel would: MIDR fields and /proc/cpuinfo features (qemu
# 7.2's linux-user emulates neither sysfs nor an arm64 /proc/cpuinfo; hwloc, cpuinfo and Arm Compute Library read them)
CORES = {
    "cortex-a72": {"implementer": 0x41, "variant": 0x0, "part": 0xD08, "revision": 3,
                   "features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"},
    "neoverse-n1": {"implementer": 0x41, "variant": 0x3, "part": 0xD0C, "revision": 1,
                    "features": "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
                                "dcpop asimddp ssbs"},
}
N_CPUS = 2


class LaneUnavailable(RuntimeError):
    """The lane cannot run on this machine (not root, not Linux x86-64, no package registry)."""


def log(msg: str) -> None:
    print(f"[arm] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], what: str, timeout: float = 1800, env: dict | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (rc {proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-2000:]}"
                           f"\n{proc.stderr[-4000:]}")
    return proc.stdout


def ensure_host() -> None:
    """qemu-user-static, binfmt-support and mmdebstrap installed; binfmt_misc mounted with qemu-aarch64 enabled."""
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        raise LaneUnavailable(f"the ARM lane emulates arm64 from an x86-64 Linux host, this is {os.uname().machine}")
    if os.geteuid() != 0:
        raise LaneUnavailable("the ARM lane needs root (chroot, mount binfmt_misc, apt-get); run it as root")
    if not all(shutil.which(t) for t in ("qemu-aarch64-static", "mmdebstrap", "update-binfmts")):
        log(f"installing {' '.join(HOST_PACKAGES)}")
        _run(["apt-get", "update", "-qq"], "apt-get update", timeout=600)
        _run(["apt-get", "install", "-y", "-qq", *HOST_PACKAGES], "apt-get install", timeout=900,
             env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    if not (BINFMT / "register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], "mounting binfmt_misc")
    entry = BINFMT / "qemu-aarch64"
    if not entry.exists() or "enabled" not in entry.read_text():
        _run(["update-binfmts", "--enable", "qemu-aarch64"], "registering qemu-aarch64")
    flags = next((ln.split(":", 1)[1].strip() for ln in entry.read_text().splitlines() if ln.startswith("flags")), "")
    if "F" not in flags:  # without F the interpreter is looked up inside the chroot, where it does not exist
        raise LaneUnavailable(f"qemu-aarch64 is registered without the F (fix binary) flag ({flags!r}); "
                              "reinstall qemu-user-static")


def _unmount_below(path: Path) -> None:
    mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
    for m in sorted((m for m in mounts if m == str(path) or m.startswith(f"{path}/")), reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


def ensure_rootfs() -> Path:
    """The arm64 rootfs with python3 and venv, built on first use (staged, then renamed)."""
    done = ROOTFS / ".dwpose-edge-rootfs"
    if done.is_file():
        return ROOTFS
    staging = ROOTFS.with_name(ROOTFS.name + ".partial")
    _unmount_below(staging)  # an interrupted mmdebstrap leaves its /proc mounted
    shutil.rmtree(staging, ignore_errors=True)
    log(f"building the arm64 {SUITE} rootfs with mmdebstrap (a few minutes)")
    _run(["mmdebstrap", "--arch=arm64", "--variant=minbase", "--include=python3,python3-venv,ca-certificates",
          SUITE, str(staging)], "mmdebstrap", timeout=1800)
    _unmount_below(staging)
    shutil.rmtree(ROOTFS, ignore_errors=True)
    (staging / done.name).write_text(f"{SUITE} arm64 minbase, {time.ctime()}\n")
    os.rename(staging, ROOTFS)
    return ROOTFS


def fake_system(cpu: str) -> Path:
    """A small sysfs CPU tree and /proc/cpuinfo as an arm64 kernel on `cpu` would show them (two cores, one
    cluster), bind-mounted over the rootfs's /sys and /proc for runs on that core: without them OpenVINO's
    hwloc and ACL crash, and onnxruntime's cpuinfo reads nothing (or the host's x86 /proc/cpuinfo)."""
    core = CORES[cpu]
    root = ARM_ROOT / "fake" / cpu
    midr = (core["implementer"] << 24) | (core["variant"] << 20) | (0xF << 16) | (core["part"] << 4) | core["revision"]
    cpus = f"0-{N_CPUS - 1}"
    files = {f"sys/devices/system/cpu/{n}": f"{cpus}\n" for n in ("possible", "present", "online")}
    files["sys/devices/system/cpu/kernel_max"] = "511\n"
    files["sys/devices/system/node/online"] = "0\n"
    files["sys/devices/system/node/possible"] = "0\n"
    files["sys/devices/system/node/node0/cpulist"] = f"{cpus}\n"
    caches = [(1, "Data", "64K"), (1, "Instruction", "64K"), (2, "Unified", "1024K"), (3, "Unified", "8192K")]
    for i in range(N_CPUS):
        base = f"sys/devices/system/cpu/cpu{i}"
        files[f"{base}/online"] = "1\n"
        files[f"{base}/regs/identification/midr_el1"] = f"0x{midr:016x}\n"
        files[f"{base}/regs/identification/revidr_el1"] = "0x0000000000000000\n"
        own, every = f"{1 << i:x}", f"{(1 << N_CPUS) - 1:x}"  # cpumask files: hex, as the kernel writes them
        for name, value in {"core_id": i, "physical_package_id": 0, "cluster_id": 0, "die_id": 0,
                            "thread_siblings_list": i, "core_cpus_list": i, "core_siblings_list": cpus,
                            "package_cpus_list": cpus, "cluster_cpus_list": cpus, "thread_siblings": own,
                            "core_cpus": own, "core_siblings": every, "package_cpus": every,
                            "cluster_cpus": every}.items():
            files[f"{base}/topology/{name}"] = f"{value}\n"
        for j, (level, kind, size) in enumerate(caches):
            shared = i if level < 3 else cpus
            mask = f"{1 << i:x}" if level < 3 else f"{(1 << N_CPUS) - 1:x}"
            for name, value in {"level": level, "type": kind, "size": size, "shared_cpu_list": shared,
                                "shared_cpu_map": mask,
                                "coherency_line_size": 64, "id": 0 if level == 3 else i}.items():
                files[f"{base}/cache/index{j}/{name}"] = f"{value}\n"
    files["proc/cpuinfo"] = "".join(
        f"processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: {core['features']}\nCPU implementer\t: "
        f"0x{core['implementer']:02x}\nCPU architecture: 8\nCPU variant\t: 0x{core['variant']:x}\nCPU part\t: "
        f"0x{core['part']:03x}\nCPU revision\t: {core['revision']}\n\n" for i in range(N_CPUS))
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def rootfs_env(cpu: str | None) -> dict[str, str]:
    env = {"PATH": "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "ORT_DISABLE_TELEMETRY": "1", "OPENVINO_TELEMETRY": "0", "CI": "true",
           "DWPOSE_EDGE_CACHE": "/root/.cache/dwpose_edge"}
    if cpu:
        env["QEMU_CPU"] = cpu  # read by each qemu-aarch64 the kernel starts for an arm64 binary
    return env


def in_rootfs(args: list[str], cpu: str | None, what: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run `args` inside the rootfs (the arm64 binaries under qemu with core `cpu`); returns the finished process."""
    env = rootfs_env(cpu)
    host_env = {**os.environ, **({"QEMU_CPU": cpu} if cpu else {})}
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    inner = [chroot, str(ROOTFS), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()), *args]
    if cpu in CORES:  # the core's sysfs and /proc/cpuinfo, in a mount namespace of this run only
        fake = fake_system(cpu)
        script = (f"mount --bind {fake}/sys {ROOTFS}/sys && mount --bind {fake}/proc {ROOTFS}/proc && "
                  'exec "$@"')
        inner = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *inner]
    return subprocess.run(inner, capture_output=True, text=True, timeout=timeout, env=host_env)


def _in_rootfs_ok(args: list[str], what: str, timeout: float = 1800) -> str:
    proc = in_rootfs(args, "cortex-a72", what, timeout)  # a named core: qemu's default 'max' (SVE) is ~20x slower
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed in the arm64 rootfs (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n"
                           f"{proc.stderr[-4000:]}")
    return proc.stdout


def ensure_venv(extras: str = EXTRAS) -> str:
    """/opt/venv in the rootfs holding `pip install .[extras]` of a clean copy of this tree; returns its python."""
    shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", ROOTFS / "etc/ssl/certs/ca-certificates.crt")
    shutil.copyfile("/etc/resolv.conf", ROOTFS / "etc/resolv.conf")
    venv = ROOTFS / "opt" / "venv"
    deps_key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + extras.encode()).hexdigest()[:12]
    files = _tree_files()
    tree_key = _tree_key(files)
    deps_stamp, tree_stamp = venv / ".deps-key", venv / ".package-key"
    if tree_stamp.is_file() and tree_stamp.read_text() == f"{deps_key}|{tree_key}":
        return "/opt/venv/bin/python"
    src = ROOTFS / "src" / "dwpose-edge"
    shutil.rmtree(src, ignore_errors=True)
    clean_copy(src, files)
    if not (deps_stamp.is_file() and deps_stamp.read_text() == deps_key):
        log(f"creating /opt/venv in the rootfs: pip install .[{extras}] (arm64 wheels, under emulation)")
        shutil.rmtree(venv, ignore_errors=True)
        _in_rootfs_ok(["/usr/bin/python3", "-m", "venv", "/opt/venv"], "python3 -m venv")
        _in_rootfs_ok(["/opt/venv/bin/pip", "install", "-q", "--upgrade", "pip", "setuptools>=77", "wheel"],
                      "pip upgrade", timeout=1800)
        _in_rootfs_ok(["/opt/venv/bin/pip", "install", "-q", "--no-build-isolation", f"/src/dwpose-edge[{extras}]"],
                      f"pip install .[{extras}]", timeout=3600)
        deps_stamp.write_text(deps_key)
    else:
        log("reinstalling the package into the rootfs venv (its files changed)")
        _in_rootfs_ok(["/opt/venv/bin/pip", "install", "-q", "--no-deps", "--force-reinstall", "--no-build-isolation",
                       "/src/dwpose-edge"], "pip install --no-deps .", timeout=1800)
    tree_stamp.write_text(f"{deps_key}|{tree_key}")
    return "/opt/venv/bin/python"


def ensure_lane() -> str:
    """Everything the lane needs, built or refreshed; returns the rootfs venv's python (a path inside the rootfs)."""
    ARM_ROOT.mkdir(parents=True, exist_ok=True)
    with open(ARM_ROOT / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_host()
        ensure_rootfs()
        return ensure_venv()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shell", metavar="CPU", choices=sorted(CPUS), help="print a command opening a shell in it")
    args = parser.parse_args()
    python = ensure_lane()
    log(f"ready: {ROOTFS} ({python})")
    if args.shell:
        env = " ".join(f"{k}={v}" for k, v in rootfs_env(args.shell).items())
        print(f"QEMU_CPU={args.shell} chroot {ROOTFS} /usr/bin/env -i {env} /bin/bash")
    return 0


if __name__ == "__main__":
    sys.exit(main())
