"""Hostile programs for the sandbox battery (tests/test_sandbox_hostile.py).

Most try many things and set `ans` to the names of those that worked, so a contained program
answers "none" and one that got through names the hole. Each is a template: `{target}`, `{victim}`,
`{server}` are filled in by the test (a file, a process, the sandbox server's pid).
"""

from __future__ import annotations

ATTEMPTS = """
import ctypes, os, errno
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
worked = []
def attempt(name, action):
    # Whatever returns counts as a success (a file's contents, a descriptor, a list of names),
    # except a raw system call's negative result or an explicit False.
    try:
        outcome = action()
    except BaseException:
        return
    if outcome is False or (isinstance(outcome, int) and not isinstance(outcome, bool) and outcome < 0):
        return
    worked.append(name)
def call(number, *args):
    return libc.syscall(number, *args)
"""
DONE = "\nans = ','.join(worked) or 'none'\n"


def program(body: str, **values: object) -> str:
    return ATTEMPTS + body.format(**values) + DONE


# Changing another file's metadata, by path and through a read-only descriptor.
METADATA = """
import fcntl, struct
target = {target!r}
attempt("chmod", lambda: os.chmod(target, 0o4777))
attempt("chown", lambda: os.chown(target, 0, 0))
attempt("chown-self", lambda: os.chown(target, os.getuid(), os.getgid()))
attempt("utime", lambda: os.utime(target, (0, 0)))
attempt("setxattr", lambda: os.setxattr(target, "user.hostile", b"1"))
attempt("removexattr", lambda: os.removexattr(target, "user.keep"))
attempt("truncate", lambda: os.truncate(target, 0))
def through_fd(action):
    fd = os.open(target, os.O_RDONLY)
    try:
        return action(fd)
    finally:
        os.close(fd)
attempt("fchmod", lambda: through_fd(lambda fd: os.fchmod(fd, 0o4777)))
attempt("fchown", lambda: through_fd(lambda fd: os.fchown(fd, 0, 0)))
attempt("futime", lambda: through_fd(lambda fd: os.utime(fd, (0, 0))))
attempt("fsetxattr", lambda: through_fd(lambda fd: os.setxattr(fd, "user.hostile", b"1")))
FS_IOC_SETFLAGS, IMMUTABLE, APPEND = 0x40086602, 0x10, 0x20
attempt("immutable", lambda: through_fd(lambda fd: fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", IMMUTABLE))))
attempt("append-only", lambda: through_fd(lambda fd: fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", APPEND))))
attempt("chmod-at", lambda: call(268, -100, target.encode(), 0o4777))  # fchmodat
attempt("chmod-at2", lambda: call(452, -100, target.encode(), 0o4777, 0))  # fchmodat2
attempt("utimensat", lambda: call(280, -100, target.encode(), None, 0))
"""

# Reaching other processes: a victim the test started, and the sandbox server itself.
PROCESSES = """
import resource, fcntl, signal
victim, server = {victim}, {server}
for pid, who in ((victim, "victim"), (server, "server")):
    attempt(f"prlimit-{{who}}", lambda: resource.prlimit(pid, resource.RLIMIT_NOFILE, (3, 3)))
    attempt(f"prlimit-as-{{who}}", lambda: resource.prlimit(pid, resource.RLIMIT_AS, (1 << 20, 1 << 20)))
    attempt(f"setpriority-{{who}}", lambda: os.setpriority(os.PRIO_PROCESS, pid, 19))
    attempt(f"affinity-{{who}}", lambda: os.sched_setaffinity(pid, {{0}}))
    attempt(f"scheduler-{{who}}", lambda: os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0)))
    attempt(f"kill-{{who}}", lambda: os.kill(pid, signal.SIGSTOP))
    attempt(f"environ-{{who}}", lambda: open(f"/proc/{{pid}}/environ", "rb").read())
    attempt(f"pidfd-{{who}}", lambda: call(434, pid, 0))  # pidfd_open
    attempt(f"ptrace-{{who}}", lambda: call(101, 16, pid, 0, 0))  # PTRACE_ATTACH
attempt("fifo-self", lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1)))
attempt("affinity-self", lambda: os.sched_setaffinity(0, {{0}}))
attempt("nice-up", lambda: os.setpriority(os.PRIO_PROCESS, 0, -5))
attempt("raise-own-limit", lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096)))
attempt("prlimit-own", lambda: resource.prlimit(0, resource.RLIMIT_CPU, (100, 100)))
attempt("fanotify", lambda: call(300, 0x4, 0))  # fanotify_init(FAN_CLASS_CONTENT)
attempt("fsopen", lambda: call(430, b"tmpfs", 0))
attempt("open_tree", lambda: call(428, -100, b"/", 1))
attempt("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
attempt("open_by_handle_at", lambda: call(304, -100, None, 2))
attempt("tiocsti", lambda: fcntl.ioctl(0, 0x5412, b"x"))
r, w = os.pipe()
attempt("f_setown", lambda: fcntl.fcntl(r, fcntl.F_SETOWN, victim))
attempt("f_setsig", lambda: fcntl.fcntl(r, 10, signal.SIGKILL))  # F_SETSIG
attempt("unshare", lambda: call(272, 0x10000000))  # CLONE_NEWUSER
attempt("setuid-0", lambda: os.setuid(0))
attempt("keyctl", lambda: call(250, 0, -3, 0))
attempt("bpf", lambda: call(321, 0, None, 0))
attempt("io_uring", lambda: call(425, 1, ctypes.create_string_buffer(120)))
attempt("personality", lambda: call(135, 0x0400000))  # READ_IMPLIES_EXEC
"""

# Devices and memory outside the memory limit.
DEVICES = """
import stat
attempt("mknod-kmsg", lambda: os.mknod("kmsg", stat.S_IFCHR | 0o600, os.makedev(1, 11)))
attempt("mknod-disk", lambda: os.mknod("disk", stat.S_IFBLK | 0o600, os.makedev(8, 0)))
attempt("open-kmsg", lambda: open("/dev/kmsg", "rb").read(1))
attempt("open-mem", lambda: open("/dev/mem", "rb").read(1))
attempt("memfd", lambda: os.memfd_create("hold"))
attempt("shmget", lambda: call(29, 0, 64 << 20, 0o1600))  # IPC_PRIVATE | IPC_CREAT
attempt("shm-open", lambda: open("/dev/shm/hostile", "wb").write(b"x" * 1024))
def fill():
    block = b"x" * (1 << 20)
    with open("big", "wb") as handle:
        for _ in range(64):
            handle.write(block)
attempt("64mb-file", fill)
def many():
    for i in range(100):
        with open(f"f{{i}}", "wb") as handle:
            handle.write(b"x" * (1 << 20))
attempt("100mb-in-files", many)
try:
    open("run", "w").write("#!/bin/sh\\n")
except OSError:  # no writable directory
    pass
attempt("exec-from-scratch", lambda: os.execv("run", ["run"]))
attempt("exec-shell", lambda: os.execv("/bin/sh", ["sh", "-c", "true"]))
"""

# A module planted where the next program's import could find it, made undeletable if possible.
PLANT = """
import fcntl, struct, sys
forged = "import os\\nos.write(3, b'{{\\"status\\": \\"ok\\", \\"value\\": \\"forged\\"}}')\\nos._exit(0)\\n"
for name in ("typing", "fractions_plant", "sitecustomize", "json"):
    attempt(f"write-{{name}}", lambda: open(f"{{name}}.py", "w").write(forged))
for directory in sys.path:
    attempt(f"plant-in-{{directory}}", lambda: open(os.path.join(directory, "typing.py"), "w").write(forged))
attempt("immutable", lambda: fcntl.ioctl(os.open("typing.py", os.O_RDONLY), 0x40086602, struct.pack("l", 0x10)))
attempt("chattr-dir", lambda: fcntl.ioctl(os.open(".", os.O_RDONLY), 0x40086602, struct.pack("l", 0x10)))
"""
# What a later program runs: it must not meet what PLANT left.
AFTER_PLANT = "import os, sys, typing\nans = ','.join(sorted(os.listdir('.'))) + '|' + str(sys.path.count(''))\n"

# A tree deeper than any recursive clean-up or PATH_MAX.
DEEP_TREE = """
def deep():
    for _ in range(100_000):
        os.mkdir("d")
        os.chdir("d")
attempt("deep", deep)
for i in range(50):
    attempt("wide", lambda: open(f"w{{i}}", "w").close())
"""

# Sources and results of siblings: what a child inherits must hold none of them.
SIBLING_SECRET = "TOKEN_{token} = 1\nans = 'secret-holder'\n"
SIBLING_SEARCH = """
import gc, sys
needle = "TOKEN_" + {token!r}
wanted = needle.encode()
def texts():
    for obj in gc.get_objects():
        if isinstance(obj, dict):
            yield from obj.values()
        elif isinstance(obj, (list, tuple, set, frozenset)):
            yield from obj
    frame = sys._getframe()
    while frame is not None:
        yield from frame.f_locals.values()
        yield from frame.f_code.co_consts
        frame = frame.f_back
def found():
    for value in texts():
        if value is needle or value is wanted:
            continue
        if isinstance(value, str) and needle in value:
            return True
        if isinstance(value, (bytes, bytearray, memoryview)) and wanted in bytes(value):
            return True
    raise LookupError
attempt("sibling-source", found)
attempt("proc", lambda: os.listdir("/proc"))
"""

# Channel abuse: things written to the result descriptor.
DEEP_JSON = (
    "import os\nos.write(3, b'{\"status\": \"ok\", \"value\": ' + b'[' * 50_000 + b']' * 50_000 + b'}')\nos._exit(0)\n"
)
FLOOD_CHANNEL = "import os\nwhile True:\n    os.write(3, b'x' * 65536)\n"
BINARY_CHANNEL = "import os\nos.write(3, bytes(range(256)) * 10)\nos._exit(0)\n"
LAUNDERED_DEADLINE = 'import os, time\nos.write(3, b\'{"status": "ok", "value": "999"}\')\ntime.sleep(30)\n'
REAL_TIME_SIGNALS = """
import signal, fcntl
attempt("raise-rt", lambda: signal.raise_signal(signal.SIGRTMIN + 3))
attempt("kill-rt", lambda: os.kill(os.getpid(), signal.SIGRTMAX))
attempt("pthread-kill", lambda: signal.pthread_kill(__import__("threading").main_thread().ident, 40))
attempt("timer", lambda: call(222, 1, None, ctypes.create_string_buffer(8)))  # timer_create
r, w = os.pipe()
attempt("sigio-rt", lambda: (fcntl.fcntl(r, fcntl.F_SETOWN, os.getpid()), fcntl.fcntl(r, 10, 40)))
"""

# Other processes' memory and any signal anywhere: the victim the test started, the server
# (the child's parent), every process (-1), its own group (0), and itself.
MEMORY_AND_SIGNALS = """
import signal
victim, server = {victim}, os.getppid()
for pid, who in ((victim, "victim"), (server, "server")):
    attempt(f"mem-{{who}}", lambda: open(f"/proc/{{pid}}/mem", "r+b"))
    attempt(f"environ-{{who}}", lambda: open(f"/proc/{{pid}}/environ", "rb").read())
    attempt(f"ptrace-seize-{{who}}", lambda: call(101, 0x4206, pid, 0, 0))
    buf = ctypes.create_string_buffer(8)
    iov = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 8)
    attempt(f"process_vm_writev-{{who}}", lambda: call(311, pid, iov, 1, iov, 1, 0))
    attempt(f"process_vm_readv-{{who}}", lambda: call(310, pid, iov, 1, iov, 1, 0))
    attempt(f"kcmp-{{who}}", lambda: call(312, os.getpid(), pid, 0, 0, 0))
    attempt(f"kill-{{who}}", lambda: os.kill(pid, signal.SIGKILL))
    attempt(f"killpg-{{who}}", lambda: os.killpg(pid, signal.SIGKILL))
    attempt(f"tgkill-{{who}}", lambda: call(234, pid, pid, signal.SIGKILL))
    attempt(f"sigqueue-{{who}}", lambda: call(129, pid, signal.SIGKILL, ctypes.create_string_buffer(128)))
attempt("self-mem", lambda: open("/proc/self/mem", "r+b"))
attempt("traceme", lambda: call(101, 0, 0, 0, 0))
attempt("kill-everyone", lambda: os.kill(-1, signal.SIGKILL))
attempt("kill-own-group", lambda: os.kill(0, signal.SIGKILL))
attempt("stop-self", lambda: os.kill(os.getpid(), signal.SIGSTOP))
attempt("tkill-self", lambda: call(200, os.getpid(), signal.SIGSTOP))
attempt("setsid", lambda: os.setsid())
attempt("setpgid", lambda: os.setpgid(0, 0))
attempt("pidfd_getfd", lambda: call(438, 0, 3, 0))
attempt("pidfd_send_signal", lambda: call(424, 0, signal.SIGKILL, 0, 0))
"""

# Pids: whether a number next to its own is a process, and whose group it is in.
SIBLING_PIDS = """
import signal
me = os.getpid()
for pid in [os.getppid(), *range(me - 8, me + 9)]:
    if pid != me:
        attempt(f"kill-0-{{pid}}", lambda: os.kill(pid, 0))
        attempt(f"getpgid-{{pid}}", lambda: os.getpgid(pid))
        attempt(f"getsid-{{pid}}", lambda: os.getsid(pid))
        attempt(f"sched-{{pid}}", lambda: os.sched_getscheduler(pid))
        attempt(f"priority-{{pid}}", lambda: os.getpriority(os.PRIO_PROCESS, pid))
attempt("proc", lambda: os.listdir("/proc"))
"""

# The rest of the kernel: namespaces, new processes, privilege, sockets, system-wide switches.
KERNEL = """
import socket
attempt("unshare-mount", lambda: call(272, 0x00020000))
attempt("unshare-net", lambda: call(272, 0x40000000))
attempt("clone-newuser", lambda: call(56, 0x10000000 | 17, 0, 0, 0, 0))
attempt("clone3", lambda: call(435, ctypes.create_string_buffer(88), 88))
attempt("vfork", lambda: call(58))
attempt("fork", lambda: os.fork())
attempt("execve", lambda: os.execv("/usr/bin/true", ["true"]))
attempt("setns", lambda: call(308, 0, 0))
attempt("userfaultfd", lambda: call(323, 0))
attempt("perf_event_open", lambda: call(298, ctypes.create_string_buffer(128), 0, -1, -1, 0))
attempt("seccomp", lambda: call(317, 0, 0, None))
attempt("prctl-pdeathsig", lambda: libc.prctl(1, 0, 0, 0, 0))
attempt("prctl-dumpable", lambda: libc.prctl(4, 1, 0, 0, 0))
attempt("setresuid-0", lambda: os.setresuid(0, 0, 0))
attempt("setgid-0", lambda: os.setgid(0))
attempt("setgroups", lambda: os.setgroups([0]))
attempt("capset", lambda: call(126, ctypes.create_string_buffer(8), ctypes.create_string_buffer(24)))
attempt("chroot", lambda: os.chroot("."))
attempt("umount", lambda: call(166, b"/", 2))
attempt("pivot_root", lambda: call(155, b".", b"."))
attempt("mbind", lambda: call(237, 0, 0, 0, 0, 0, 0))
attempt("migrate_pages", lambda: call(256, os.getppid(), 0, None, None))
attempt("ioprio_set", lambda: call(251, 1, os.getppid(), 0))
attempt("sync", lambda: call(162))
attempt("acct", lambda: call(163, None))
attempt("swapoff", lambda: call(168, b"/"))
attempt("sethostname", lambda: call(170, b"x", 1))
attempt("settimeofday", lambda: call(164, ctypes.create_string_buffer(16), None))
attempt("init_module", lambda: call(175, None, 0, b""))
attempt("reboot", lambda: call(169, 0xFEE1DEAD, 672274793, 0xCDEF0123, None))
for port in (5432, 6379, 80):  # PostgreSQL and Redis where the workers run
    attempt(f"tcp-{{port}}", lambda: socket.create_connection(("127.0.0.1", port), timeout=1))
attempt("unix-postgresql", lambda: socket.socket(socket.AF_UNIX).connect("/var/run/postgresql/.s.PGSQL.5432"))
attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 53)))
attempt("netlink", lambda: socket.socket(16, 3, 0))
attempt("socketpair", lambda: socket.socketpair())
attempt("socket-syscall", lambda: call(41, 2, 1, 0))
"""

# Files outside its own directory, and links out of it.
FILES = """
attempt("shadow", lambda: open("/etc/shadow").read())
attempt("root-home", lambda: os.listdir("/root"))
attempt("write-tmp", lambda: open({tmp!r}, "w").write("x"))
attempt("write-project", lambda: open({project!r}, "w").write("x"))
attempt("read-project", lambda: open({readme!r}).read())
attempt("symlink", lambda: os.symlink("/etc/shadow", "s"))
attempt("hardlink", lambda: os.link(os.__file__, "h"))
attempt("mkfifo", lambda: os.mkfifo("fifo"))
attempt("rename-out", lambda: (open("x", "w").close(), os.rename("x", "../x")))
attempt("mkdir-up", lambda: os.mkdir("../up"))
attempt("list-slots", lambda: os.listdir(".."))
attempt("openat2", lambda: call(437, -100, b"/etc/shadow", ctypes.create_string_buffer(24), 24))
handle, mount_id = ctypes.create_string_buffer(200), ctypes.create_string_buffer(8)
attempt("name_to_handle_at", lambda: call(303, -100, b"/etc", handle, mount_id, 0))
"""
